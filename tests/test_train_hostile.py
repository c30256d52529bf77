"""`ainn train` against odd configs, manifests, checkpoints and export folders: one line, nothing touched."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner, Result

from ainn_cli.cli import app
from ainn_cli.errors import UsageError
from ainn_cli.train.config import DataConfig, load_config
from ainn_cli.train.data import Utterance, load_source, split_speakers
from ainn_cli.train.loop import read_checkpoint
from tests.conftest import one_line
from tests.test_train import TINY, manifest  # noqa: F401  (the five-speaker corpus fixture)


def train(manifest: Path, tmp_path: Path, *args: str) -> Result:  # noqa: F811
    settings = [*TINY, f'data.cache_dir="{tmp_path / "cache"}"', "stage1.steps=1", "stage2.steps=1"]
    sets = [x for s in settings for x in ("--set", s)]
    return CliRunner().invoke(app, ["train", "--data", f"manifest:{manifest}", *sets, "--quiet", *args])


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def fake_run(run: Path) -> Path:
    """A run folder as a finished Stage I leaves it (the checkpoint's content does not matter here)."""
    (run / "stage1").mkdir(parents=True)
    (run / "config.json").write_text(load_config(None).to_json() + "\n")
    (run / "split.json").write_text('{"train": ["s0"], "val": [], "test": []}\n')
    (run / "stage1" / "latest.pt").write_bytes(b"checkpoint")
    return run


def test_an_existing_run_refuses_before_rewriting_anything(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    run = fake_run(tmp_path / "run")
    before = snapshot(run)
    one_line(train(manifest, tmp_path, "--out", str(run), "--set", "seed=99"), 2, "pass --resume")
    assert snapshot(run) == before


@pytest.mark.parametrize(("setting", "needle"), [
    ("data.batch_size=0", "data.batch_size: 0 is outside 1..4096"),
    ("data.segment_frames=0", "data.segment_frames: 0 is outside"),
    ("data.workers=-1", "data.workers: -1 is outside"),
    ("stage1.lr=nan", "stage1.lr: nan is outside"),
    ("stage2.lr=inf", "stage2.lr: inf is outside"),
    ("log_every=0", "log_every: 0 is outside 1.."), ("val_every=0", "val_every: 0 is outside 1.."),
    ("checkpoint_every=0", "checkpoint_every: 0 is outside 1.."),
    ("model.recognizer.labels=[]", "model.recognizer.labels"),
    ("stage1.steps=-1", "stage1.steps: -1 is outside 0.."),
    ("stage1.lambdas.rec=-1.0", "stage1.lambdas.rec: -1.0 is outside"),
    ("seed=-5", "seed: -5 is outside"),
    ("model.generator.channels=1000000000", "model.generator: channels: 1000000000 is outside"),
    ("model.recognizer.channels=30000", "parameters, more than the limit"),
    ("model.content_encoder.layers=10000000", "layers: 10000000 is outside"),
    ("data=5", "config key data: expected a table, got 5"), ("data.batch_size.x=1", "batch_size is not a table"),
])
def test_hostile_settings_are_one_line_and_touch_nothing(manifest: Path, tmp_path: Path, setting: str,  # noqa: F811
                                                         needle: str) -> None:
    one_line(train(manifest, tmp_path, "--out", str(tmp_path / "run"), "--set", setting), 2, needle)
    assert not (tmp_path / "run").exists()


def test_device_and_data_replace_the_configs(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    """--device and --data win over --set (and the config file), as the run's resolved config shows."""
    run = tmp_path / "run"
    result = train(manifest, tmp_path, "--out", str(run), "--stage", "stage1", "--set", 'device="cuda:7"',
                   "--set", 'data.sources=["esd:/nowhere"]', "--device", "cpu")
    assert result.exit_code == 0, result.output
    saved = json.loads((run / "config.json").read_text())
    assert saved["device"] == "cpu" and saved["data"]["sources"] == [f"manifest:{manifest}"]


def test_no_validation_speakers_means_none(tmp_path: Path) -> None:
    utterances = [Utterance(f"{s}.wav", s, "neutral", 0.0) for s in ("a", "b", "c", "d")]
    split = split_speakers(utterances, DataConfig(n_val=0, n_test=0))
    assert split == {"train": ["a", "b", "c", "d"], "val": [], "test": []}
    assert load_config(None, ["data.n_val=0"]).data.n_val == 0


@pytest.mark.parametrize(("content", "needle"), [
    (b"file,speaker,emotion\na.wav,s1,angry\n", "needs the columns path, speaker and emotion (missing ['path'])"),
    (b"path,emotion\na.wav,angry\n", "missing ['speaker']"),
    (b"", "missing ['emotion', 'path', 'speaker']"),
    (b"path,speaker,emotion\n\x00\x01\x02,s1,angry\n", "row 1 has control characters"),
    (b"\xff\xfe\x00p\x00a\x00t\x00h", "not a readable CSV manifest"),
    (b"path,speaker,emotion\na.wav,,angry\n", "row 1 has no path or no speaker"),
    (b"path,speaker,emotion\na.wav\n", "row 1 has no path or no speaker"),
])
def test_bad_manifests_are_one_line(tmp_path: Path, content: bytes, needle: str) -> None:
    (tmp_path / "m.csv").write_bytes(content)
    with pytest.raises(UsageError, match="m.csv: ") as caught:
        load_source(f"manifest:{tmp_path / 'm.csv'}")
    assert needle in str(caught.value)


def test_a_folder_as_manifest_and_a_missing_audio_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="is a folder"):
        load_source(f"manifest:{tmp_path}")
    (tmp_path / "m.csv").write_text("path,speaker,emotion\nnothere.wav,s1,angry\n")
    from ainn_cli.errors import AudioError
    from ainn_cli.train.data import cached_mel

    with pytest.raises(AudioError, match="nothere.wav: cannot read"):
        cached_mel(str(tmp_path / "nothere.wav"), tmp_path / "cache")


def test_a_binary_manifest_through_the_cli(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)) * 4)
    result = CliRunner().invoke(app, [
        "train", "--out", str(tmp_path / "run"), "--data", f"manifest:{tmp_path / 'bin.csv'}"])
    one_line(result, 2, "bin.csv")
    assert not (tmp_path / "run").exists()


def _checkpoint_kinds(tmp_path: Path) -> dict[str, Path]:
    good = tmp_path / "good.pt"
    torch.save({"nets": {"w": torch.ones(2)}, "step": 1, "best": 1.0, "optimizer": {}}, good)
    kinds = {"zero-byte": b"", "truncated": good.read_bytes()[: len(good.read_bytes()) // 2], "text": b"hello\n" * 9}
    out = {}
    for name, data in kinds.items():
        (tmp_path / f"{name}.pt").write_bytes(data)
        out[name] = tmp_path / f"{name}.pt"
    torch.save(torch.ones(3), tmp_path / "tensor.pt")
    torch.save({"nets": {"w": "not a tensor"}}, tmp_path / "foreign.pt")
    (tmp_path / "folder.pt").mkdir()
    return {**out, **{name: tmp_path / f"{name}.pt" for name in ("tensor", "foreign", "folder")}}


def test_unreadable_checkpoints_are_one_usage_error(tmp_path: Path) -> None:
    for name, file in _checkpoint_kinds(tmp_path).items():
        with pytest.raises(UsageError, match="not an ainn checkpoint|not a readable ainn checkpoint"):
            read_checkpoint(file)
        assert name


@pytest.mark.parametrize("kind", ["zero-byte", "truncated", "foreign", "other-model"])
def test_resume_from_a_bad_latest_is_one_line_and_touches_nothing(manifest: Path, tmp_path: Path,  # noqa: F811
                                                                   kind: str) -> None:
    run = fake_run(tmp_path / "run")
    latest = run / "stage1" / "latest.pt"
    if kind == "other-model":
        torch.save({"nets": {"recognizer.inp.weight": torch.zeros(3)}, "step": 1, "best": 1.0, "optimizer": {}}, latest)
    else:
        latest.write_bytes(_checkpoint_kinds(tmp_path)[kind].read_bytes())
    before = snapshot(run)
    line = one_line(train(manifest, tmp_path, "--out", str(run), "--resume"), 2 if kind != "other-model" else 1)
    assert "latest.pt" in line
    assert snapshot(run) == before


def test_init_from_a_foreign_file_is_one_line(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "init.pt").write_bytes(b"\x80\x04K\x01.")  # a pickle, not a torch zip
    one_line(train(manifest, tmp_path, "--out", str(tmp_path / "run"), "--stage", "stage2", "--init",
                   str(tmp_path / "init.pt")), 2, "init.pt: not an ainn checkpoint")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("target", ["victim", "run", ".", "parent"])
def test_export_never_deletes_what_ainn_did_not_write(manifest: Path, tmp_path: Path,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "victim").mkdir()
    (tmp_path / "victim" / "thesis.txt").write_text("four years\n")
    run = fake_run(tmp_path / "parent" / "run")
    (run / "stage1" / "latest.pt").unlink()
    destination = {"victim": "victim", "run": str(run), ".": ".", "parent": str(tmp_path / "parent")}[target]
    before = snapshot(tmp_path)
    result = train(manifest, tmp_path, "--out", str(run), "--export", destination)
    one_line(result, 1, "not an ainn bundle" if target == "victim" else "is or holds")
    assert snapshot(tmp_path) == before


@pytest.mark.slow
def test_train_export_replaces_its_own_bundle(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    from ainn_cli.bundle import load_bundle

    for run in ("r1", "r2"):
        result = train(manifest, tmp_path, "--out", str(tmp_path / run), "--stage", "stage1", "--export",
                       str(tmp_path / "bundle"))
        assert result.exit_code == 0, result.output
    assert load_bundle(tmp_path / "bundle").info.metadata["checkpoint"] == "best.pt"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_manifest_written_with_the_csv_module_still_loads(tmp_path: Path) -> None:
    with open(tmp_path / "m.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "speaker", "emotion", "text"])
        writer.writeheader()
        writer.writerow({"path": "a.wav", "speaker": "s1", "emotion": "angry", "text": "hello, world"})
    assert load_source(f"manifest:{tmp_path / 'm.csv'}")[0].text == "hello, world"


def test_stage2_alone_starts_from_the_configs_init_bundle(manifest: Path, tmp_path: Path,  # noqa: F811
                                                          tiny_bundle: Path) -> None:
    """As `configs/reshape.toml` is documented: `--stage stage2` with no Stage I run and no --init warm-starts
    from the config's init_bundle; with none of the three it says which are missing."""
    run = tmp_path / "run"
    result = train(manifest, tmp_path, "--out", str(run), "--stage", "stage2", "--set", f'init_bundle="{tiny_bundle}"')
    assert result.exit_code == 0, result.output
    assert (run / "stage2" / "best.pt").is_file() and not (run / "stage1").exists()
    one_line(train(manifest, tmp_path, "--out", str(tmp_path / "other"), "--stage", "stage2"), 2, "init_bundle")
    assert not (tmp_path / "other").exists()


# ------------------------------------------------------------------ round two: untrusted training files


def one_row(tmp_path: Path, path: str | Path) -> Path:
    """A manifest of the five-speaker corpus plus one row naming `path`."""
    rows = [{"path": str(path), "speaker": "s9", "emotion": "angry"}]
    with open(tmp_path / "m.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "speaker", "emotion"])
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path / "m.csv"


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "huge", "folder"])
def test_a_manifest_row_that_is_no_regular_file_is_one_line(manifest: Path, tmp_path: Path,  # noqa: F811
                                                            kind: str) -> None:
    """/dev/zero read until MemoryError, a FIFO hung (SIGTERM did not stop it), a 2 GB file was read whole."""
    import os
    import time

    target: str | Path = "/dev/zero"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe.wav")
        target = tmp_path / "pipe.wav"
    elif kind == "huge":
        with open(tmp_path / "huge.wav", "wb") as handle:  # sparse: 2 GB long, no disk used
            handle.truncate(2 << 30)
        target = tmp_path / "huge.wav"
    elif kind == "folder":
        (tmp_path / "dir.wav").mkdir()
        target = tmp_path / "dir.wav"
    start = time.monotonic()
    listing = one_row(tmp_path, target)
    result = train(manifest, tmp_path, "--out", str(tmp_path / "run"), "--data", f"manifest:{listing}")
    needle = "MiB a training file may have" if kind == "huge" else "not a regular file"
    one_line(result, 1, str(target), needle)
    assert time.monotonic() - start < 60


def test_rows_naming_one_file_share_its_features(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    """20,000 rows naming six files took 2.3 GB: one array per row. Now one per file."""
    from ainn_cli.emotions import LABELS
    from ainn_cli.train.data import build_corpus

    files = load_source(f"manifest:{manifest}")[:6]
    rows = [Utterance(u.path, f"s{k % 7}", u.emotion, u.intensity) for k in range(20_000) for u in files[k % 6:][:1]]
    corpus = build_corpus(rows, LABELS, tmp_path / "cache")
    assert len(corpus.mels) == 20_000 and len({id(m) for m in corpus.mels}) == 6
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        f"{k}.npy" for k in {__import__("ainn_cli.train.features", fromlist=["x"]).cache_key(u.path) for u in files})


def test_a_hash_reads_the_file_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    from ainn_cli.train import features

    (tmp_path / "a.wav").write_bytes(b"x" * (3 * features.HASH_BLOCK + 5))
    sizes: list[int] = []
    real = hashlib.sha256

    class Spy:
        def __init__(self, data: bytes) -> None:
            self.digest = real(data)

        def update(self, block: bytes) -> None:
            sizes.append(len(block))
            self.digest.update(block)

        def hexdigest(self) -> str:
            return self.digest.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", Spy)
    features._content_key.cache_clear()
    key = features.cache_key(str(tmp_path / "a.wav"))
    assert sizes == [features.HASH_BLOCK] * 3 + [5] and len(key) == 32


def test_sigterm_ends_a_blocked_read_within_a_second() -> None:
    """Reading training files, a read the kernel blocks (here a pipe nobody writes to) ends on SIGTERM."""
    import os
    import signal
    import threading
    import time

    from ainn_cli.train.features import interruptible

    read_end, write_end = os.pipe()
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    start = time.monotonic()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt), interruptible():
            os.read(read_end, 1)
    finally:
        timer.cancel()
        os.close(read_end)
        os.close(write_end)
    assert time.monotonic() - start < 1.3 and signal.getsignal(signal.SIGTERM) is before


BLOCKED_TRAIN = """
import os, sys
from ainn_cli.train import features
read_end, write_end = os.pipe()
real = features._identity
def blocked(path):
    print("blocked", flush=True)
    os.read(read_end, 1)  # nobody writes: the read blocks, as on a hung file system
    return real(path)
features._identity = blocked
sys.argv = ["ainn", *sys.argv[1:]]
from ainn_cli.cli import main
main()
"""


@pytest.mark.slow
def test_sigterm_stops_ainn_train_in_a_blocked_read(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    import os
    import signal
    import subprocess
    import sys
    import threading
    import time

    sets = [x for s in [*TINY, f'data.cache_dir="{tmp_path / "cache"}"'] for x in ("--set", s)]
    proc = subprocess.Popen([sys.executable, "-c", BLOCKED_TRAIN, "train", "--data", f"manifest:{manifest}", *sets,
                             "--out", str(tmp_path / "run"), "--quiet"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    said: list[str] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None and proc.stdout.readline() == "blocked\n"
        time.sleep(0.2)
        listener = threading.Thread(target=lambda: said.append(proc.stderr.readline()))  # type: ignore[union-attr]
        listener.start()
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        listener.join(timeout=1.0)
        assert said and said[0].startswith("interrupted"), "no word within a second of SIGTERM"
        heard = time.monotonic() - sent
        proc.wait(timeout=30)  # then torch's own teardown (about a second on a loaded machine)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130 and heard < 1.0 and not (tmp_path / "run").exists()


def test_the_feature_cache_is_where_the_user_says(manifest: Path, tmp_path: Path,  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = train(manifest, tmp_path, "--out", str(tmp_path / "run"), "--stage", "stage1", "--cache", "features")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "features").glob("*.npy"))) == 50 and not (tmp_path / "cache").exists()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["cache_dir"] == "features"


# ------------------------------------------------------------------ round two: the run folder's files


@pytest.mark.parametrize("name", ["config.json", "split.json"])
def test_a_run_folder_file_ainn_did_not_write_is_kept(manifest: Path, tmp_path: Path, name: str) -> None:  # noqa: F811
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / name).write_text('{"editor.fontSize": 14}\n')
    before = snapshot(tmp_path / "run")
    one_line(train(manifest, tmp_path, "--out", str(tmp_path / "run")), 2, f"run/{name}", "not written by an ainn run")
    assert snapshot(tmp_path / "run") == before


def test_a_run_never_writes_over_its_own_config_file(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.json").write_text("seed = 7\n")  # TOML, named like the run file
    before = snapshot(tmp_path / "run")
    config = str(tmp_path / "run" / "config.json")
    one_line(train(manifest, tmp_path, "--out", str(tmp_path / "run"), "--config", config), 2,
             "is one of this run's inputs")
    assert snapshot(tmp_path / "run") == before


@pytest.mark.slow
def test_an_earlier_runs_files_are_replaced_by_the_next_stage(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    run = tmp_path / "run"
    assert train(manifest, tmp_path, "--out", str(run), "--stage", "stage1").exit_code == 0
    result = train(manifest, tmp_path, "--out", str(run), "--stage", "stage2", "--set", "seed=99")
    assert result.exit_code == 0, result.output
    assert json.loads((run / "config.json").read_text())["seed"] == 99


@pytest.mark.slow
def test_a_checkpoint_that_cannot_be_written_is_one_line(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    """torch.save's zip writer stops with "unexpected pos" on a full disk: one line naming the file, no temp file."""
    from tests.test_no_clobber import limited, one_line_from

    sets = [x for s in [*TINY, f'data.cache_dir="{tmp_path / "cache"}"', "stage1.steps=1"] for x in ("--set", s)]
    done = limited(100_000, "train", "--data", f"manifest:{manifest}", *sets, "--out", tmp_path / "run", "--stage",
                   "stage1", "--quiet")
    one_line_from(done, 1, "stage1/", ".pt: cannot write")
    assert not [p for p in (tmp_path / "run").rglob("*") if p.name.startswith(".")]
