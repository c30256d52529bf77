"""Nothing lost, nothing outside its folder: bundle destinations, folder-mode collisions and concurrent runs,
output formats, plots and long names. Every test works in tmp_path (chdir) and checks what is left on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner, Result

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.bundle import load_bundle, save_bundle
from ainn_cli.bundle_files import check_destination
from ainn_cli.cli import app
from ainn_cli.errors import OutputError, OutputExists
from ainn_cli.files import atomic_output
from tests.conftest import make_tiny_bundle, one_line, tiny_modules, tone


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (hidden ones too) with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def clip(path: Path, seconds: float = 0.4, f0: float = 140.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, f0=f0), SAMPLE_RATE)
    return path


# ------------------------------------------------------------------------------------- bundle destinations


def test_export_never_empties_a_folder_it_did_not_write(tiny_bundle: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "thesis.txt").write_text("four years of work\n")
    one_line(run("export", tiny_bundle, victim, "--overwrite"), 1, "not an ainn bundle")
    assert tree(victim) == {"thesis.txt": b"four years of work\n"}


def test_export_refuses_the_source_and_its_ancestors(tiny_bundle: Path, tmp_path: Path) -> None:
    parent = tmp_path / "par"
    source = Path(__import__("shutil").copytree(tiny_bundle, parent / "bnd"))
    (parent / "keep").mkdir()
    (parent / "keep" / "data.txt").write_text("keep me\n")
    before = tree(tmp_path)
    one_line(run("export", source, parent, "--overwrite"), 1, "is or holds")
    one_line(run("export", source, source, "--overwrite"), 1, "is or holds")
    one_line(run("export", source, ".", "--overwrite"), 1, "is or holds")
    assert tree(tmp_path) == before


def test_export_replaces_an_ainn_bundle_by_swapping_it_in(tiny_bundle: Path, tmp_path: Path) -> None:
    assert run("export", tiny_bundle, "hub").exit_code == 0
    one_line(run("export", tiny_bundle, "hub"), 1, "use --overwrite")
    other = make_tiny_bundle(tmp_path / "other", seed=3)
    assert run("export", other, "hub", "--overwrite").exit_code == 0
    assert load_bundle(tmp_path / "hub").modules["generator"].state_dict()["out.bias"].equal(
        load_bundle(other).modules["generator"].state_dict()["out.bias"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "other"]  # no temp or old folder left
    (tmp_path / "hub" / "mine.txt").write_text("not the bundle's\n")
    one_line(run("export", tiny_bundle, "hub", "--overwrite"), 1, "holds mine.txt")
    assert (tmp_path / "hub" / "mine.txt").is_file()


def test_export_into_an_empty_folder_and_a_symlink(tiny_bundle: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert run("export", tiny_bundle, "empty").exit_code == 0
    assert (tmp_path / "empty" / "bundle.json").is_file()
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target")
    one_line(run("export", tiny_bundle, "link"), 1, "is a symbolic link")


def test_save_bundle_replaces_only_bundles(tmp_path: Path) -> None:
    first = make_tiny_bundle(tmp_path / "out", seed=1)
    from ainn_cli.bundle import BundleInfo

    save_bundle(first, BundleInfo(name="second", labels=("neutral", "angry", "happy", "sad", "surprise")),
                tiny_modules(seed=2))
    assert load_bundle(first).info.name == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    (first / "notes.txt").write_text("mine\n")
    with pytest.raises(OutputError, match="holds notes.txt"):
        save_bundle(first, BundleInfo(name="third", labels=("neutral", "angry")), tiny_modules())
    assert (first / "notes.txt").read_text() == "mine\n" and load_bundle(first).info.name == "second"


def test_check_destination_protects_the_run_folder(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "r1"
    (run_dir / "stage1").mkdir(parents=True)
    for target in (run_dir, tmp_path / "runs", tmp_path):
        with pytest.raises(OutputError, match="is or holds"):
            check_destination(target, overwrite=True, protect=(run_dir,))
    check_destination(run_dir / "bundle", overwrite=True, protect=(run_dir,))  # inside the run folder is fine


# ------------------------------------------------------------------------------------------ folder mode


def test_two_sources_with_one_output_name_are_refused_up_front(tiny_bundle: Path, tmp_path: Path) -> None:
    clip(tmp_path / "in" / "x.wav")
    sf.write(tmp_path / "in" / "x.flac", tone(0.4), SAMPLE_RATE)
    ref = clip(tmp_path / "ref.wav", f0=220)
    line = one_line(run("convert", "in", ref, "-o", "out", "--model", tiny_bundle, "--device", "cpu"), 2)
    assert "in/x.flac" in line and "in/x.wav" in line and "out/x.wav" in line
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_references_with_one_name_are_refused_for_both_pairings(tiny_bundle: Path, tmp_path: Path) -> None:
    clip(tmp_path / "in" / "r.wav")
    clip(tmp_path / "refs" / "a" / "r.wav", f0=200)
    clip(tmp_path / "refs" / "b" / "r.wav", f0=240)
    line = one_line(run("convert", "in", "refs", "-o", "out", "--pairing", "all", "--model", tiny_bundle,
                        "--device", "cpu"), 2, "out/r__ref-r.wav")
    assert "refs/a/r.wav" in line and "refs/b/r.wav" in line
    one_line(run("convert", "in", "refs", "-o", "out", "--model", tiny_bundle, "--device", "cpu"), 2,
             "share its name")


def test_an_output_that_appears_meanwhile_is_skipped_not_replaced(tiny_bundle: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """As if another run into the same folder finished x.wav while this one was converting it."""
    from ainn_cli.audio import write_wav as real_write
    from ainn_cli.commands import convert as convert_command

    for name in ("x", "y"):
        clip(tmp_path / "in" / f"{name}.wav")
    ref = clip(tmp_path / "ref.wav", f0=220)

    def racing_write(path: Path, *args: object, **kwargs: object) -> Path:
        if path.name == "x.wav":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"the other run's output")
        return real_write(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(convert_command, "write_wav", racing_write)
    result = run("convert", "in", ref, "-o", "out", "--model", tiny_bundle, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["skipped"] == ["out/x.wav"] and not report["failed"] and len(report["converted"]) == 1
    assert (tmp_path / "out" / "x.wav").read_bytes() == b"the other run's output"
    assert not list((tmp_path / "out").glob(".*"))  # no temp file left


def test_the_final_link_never_replaces_a_file_that_appeared(tmp_path: Path) -> None:
    target = tmp_path / "o.wav"
    with pytest.raises(OutputExists), atomic_output(target, overwrite=False) as tmp:
        Path(tmp).write_bytes(b"ours")
        target.write_bytes(b"theirs")  # created after every check, before the rename
    assert target.read_bytes() == b"theirs" and sorted(p.name for p in tmp_path.iterdir()) == ["o.wav"]
    with atomic_output(target, overwrite=True) as tmp:
        Path(tmp).write_bytes(b"ours")
    assert target.read_bytes() == b"ours"


def test_two_runs_into_one_folder_at_once(tiny_bundle: Path, tmp_path: Path) -> None:
    for k in range(6):
        clip(tmp_path / "in" / f"{k}.wav", seconds=0.3 + 0.02 * k)
    ref = clip(tmp_path / "ref.wav", f0=220)
    command = [sys.executable, "-m", "ainn_cli", "convert", "in", str(ref), "-o", "out", "--model", str(tiny_bundle),
               "--device", "cpu", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in runs]
    reports = [json.loads(out) for out, _ in outputs]
    assert [p.returncode for p in runs] == [0, 0], [err.decode() for _, err in outputs]
    assert all(not r["failed"] for r in reports)
    converted = [c["output"] for r in reports for c in r["converted"]]
    skipped = [s for r in reports for s in r["skipped"]]
    assert sorted(set(converted)) == sorted(f"out/{k}.wav" for k in range(6))
    assert len(converted) + len(skipped) == 12
    for k in range(6):
        data, rate = sf.read(tmp_path / "out" / f"{k}.wav")
        assert rate == SAMPLE_RATE and len(data) == int((0.3 + 0.02 * k) * SAMPLE_RATE)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{k}.wav" for k in range(6)]


# ------------------------------------------------------------------------------------------ output names


@pytest.mark.parametrize(("name", "kind"), [("o.wav", "WAV"), ("o.flac", "FLAC"), ("o.ogg", "OGG"), ("O.FLAC", "FLAC")])
def test_output_format_follows_the_extension(tiny_bundle: Path, tmp_path: Path, name: str, kind: str) -> None:
    src, ref = clip(tmp_path / "s.wav"), clip(tmp_path / "r.wav", f0=220)
    assert run("convert", src, ref, "-o", name, "--model", tiny_bundle, "--device", "cpu").exit_code == 0
    info = sf.info(tmp_path / name)
    assert info.format == kind and info.samplerate == SAMPLE_RATE
    assert abs(info.frames - int(0.4 * SAMPLE_RATE)) <= (2048 if kind == "OGG" else 0)


@pytest.mark.parametrize("name", ["o.mp3", "o.txt", "o", "o.opus"])
def test_other_extensions_are_refused_before_converting(tiny_bundle: Path, tmp_path: Path, name: str) -> None:
    src, ref = clip(tmp_path / "s.wav"), clip(tmp_path / "r.wav", f0=220)
    one_line(run("convert", src, ref, "-o", name, "--model", tiny_bundle, "--device", "cpu"), 1, "cannot write",
             ".wav, .flac or .ogg")
    assert not (tmp_path / name).exists()


def test_a_name_of_255_bytes_converts_and_256_fails_up_front(tiny_bundle: Path, tmp_path: Path) -> None:
    src, ref = clip(tmp_path / "s.wav"), clip(tmp_path / "r.wav", f0=220)
    longest = "y" * 251 + ".wav"
    assert run("convert", src, ref, "-o", longest, "--model", tiny_bundle, "--device", "cpu").exit_code == 0
    assert (tmp_path / longest).is_file() and not list(tmp_path.glob(".*"))
    for name in ("z" * 252 + ".wav", "z" * 400 + ".wav"):
        result = run("convert", src, ref, "-o", name, "--model", "no-such-model", "--device", "cpu")
        one_line(result, result.exit_code, "too long")  # refused before the model is even looked up
        assert result.exit_code in (1, 2)


def test_a_source_whose_output_name_is_too_long_fails_alone(tiny_bundle: Path, tmp_path: Path) -> None:
    clip(tmp_path / "in" / "short.wav")
    sf.write(tmp_path / "in" / ("x" * 252 + ".au"), tone(0.4), SAMPLE_RATE)  # 255 bytes; x...x.wav would be 256
    ref = clip(tmp_path / "r.wav", f0=220)
    result = run("convert", "in", ref, "-o", "out", "--model", tiny_bundle, "--device", "cpu", "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert [Path(c["output"]).name for c in report["converted"]] == ["short.wav"]
    assert len(report["failed"]) == 1 and "256 bytes long" in report["failed"][0]["reason"]


def test_an_empty_model_name_is_an_error(tmp_path: Path) -> None:
    src, ref = clip(tmp_path / "s.wav"), clip(tmp_path / "r.wav", f0=220)
    one_line(run("convert", src, ref, "-o", "o.wav", "--model", ""), 2, "--model is empty")
    one_line(run("strength", src, "--model", " "), 2, "--model is empty")


# ------------------------------------------------------------------------------------------------ plots


def test_a_plot_is_not_replaced_without_overwrite(tiny_bundle: Path, tmp_path: Path) -> None:
    src = clip(tmp_path / "s.wav")
    (tmp_path / "report.pdf").write_bytes(b"my report")
    one_line(run("strength", src, "--model", tiny_bundle, "--device", "cpu", "--plot", "report.pdf"), 1,
             "exists already")
    assert (tmp_path / "report.pdf").read_bytes() == b"my report"
    result = run("strength", src, "--model", tiny_bundle, "--device", "cpu", "--plot", "report.pdf", "--overwrite")
    assert result.exit_code == 0 and (tmp_path / "report.pdf").read_bytes()[:4] == b"%PDF"


def test_plots_get_one_name_per_input(tiny_bundle: Path, tmp_path: Path) -> None:
    for path in ("d1/x.wav", "d2/x.wav", "d2/y.wav"):
        clip(tmp_path / path)
    sf.write(tmp_path / "d2" / "y.flac", tone(0.4), SAMPLE_RATE)
    result = run("strength", "d1", "d2", "d1/x.wav", "--model", tiny_bundle, "--device", "cpu", "--json",
                 "--plot", "plots")
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 4  # d1/x.wav given twice is read once
    made = sorted(str(p.relative_to(tmp_path / "plots")) for p in (tmp_path / "plots").rglob("*") if p.is_file())
    assert made == ["d1/x.png", "d2/x.png", "d2/y.flac.png", "d2/y.wav.png"]
    one_line(run("strength", "d1", "d2", "--model", tiny_bundle, "--device", "cpu", "--plot", "plots"), 1,
             "exists already")


def test_plot_to_a_file_for_a_folder_run_is_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    clip(tmp_path / "d" / "a.wav")
    clip(tmp_path / "d" / "b.wav")
    (tmp_path / "taken.png").write_bytes(b"x")
    one_line(run("strength", "d", "--model", tiny_bundle, "--device", "cpu", "--plot", "taken.png"), 2, "is a file")
    one_line(run("strength", "d/a.wav", "--model", tiny_bundle, "--device", "cpu", "--plot", "a.txt"), 2,
             ".png, .pdf or .svg")


def test_a_long_recording_is_read_in_bounded_pieces(tiny_bundle: Path) -> None:
    """The recognizer and the mel front end see at most a chunk (plus context) at a time; the reading matches."""
    import torch

    from ainn_cli.models.recognizer import Recognizer
    from ainn_cli.pipeline import CONTEXT, load_pipeline

    pipe = load_pipeline(str(tiny_bundle), "cpu")
    wave = np.tile(tone(2.0, f0=180), 10)  # 20 s, 1722 frames
    whole = pipe.strength(wave)
    pipe.read_chunk_frames = 256
    seen: list[int] = []
    recognizer = cast(Recognizer, pipe.recognizer)
    features = recognizer.features

    def spy(mel: torch.Tensor) -> torch.Tensor:
        seen.append(mel.shape[-1])
        return features(mel)

    recognizer.features = spy  # type: ignore[method-assign]
    chunked = pipe.strength(wave)
    assert len(seen) == 7 and max(seen) <= 256 + 2 * CONTEXT
    assert chunked.label == whole.label and len(chunked.cue) == len(whole.cue) == len(wave) // 256
    assert abs(chunked.strength - whole.strength) < 0.05
    assert np.corrcoef(chunked.cue, whole.cue)[0, 1] > 0.9


def test_one_chunk_is_exactly_the_recognizer(tiny_bundle: Path) -> None:
    """`_recognize_in_chunks` repeats Recognizer.forward's heads: with one chunk the outputs are identical."""
    import torch

    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(str(tiny_bundle), "cpu")
    mel = pipe._mel(tone(3.0))
    with torch.inference_mode():
        direct, chunked = pipe.recognizer(mel), pipe._recognize_in_chunks(mel, 10**6)
    for name in ("logits", "strength", "cue", "features"):
        torch.testing.assert_close(getattr(chunked, name), getattr(direct, name), rtol=0, atol=0, msg=name)


def test_mel_in_chunks_is_the_mel() -> None:
    import torch

    from ainn_cli.mel import log_mel, log_mel_in_chunks

    wave = torch.from_numpy(tone(3.0)) + 0.01 * torch.randn(3 * SAMPLE_RATE, generator=torch.Generator().manual_seed(0))
    whole = log_mel(wave)
    for chunk in (1, 7, 100, 10_000):
        torch.testing.assert_close(log_mel_in_chunks(wave, chunk), whole, rtol=0, atol=1e-4)


# ------------------------------------------------------------------ round two: outputs that become inputs


def test_outputs_inside_the_reference_folder_never_become_references(tiny_bundle: Path, tmp_path: Path) -> None:
    """--pairing all with the output folder inside the reference folder: a re-run skips, it never converts the
    previous outputs as new references (so resuming ends)."""
    clip(tmp_path / "in" / "a.wav")
    clip(tmp_path / "refs" / "r.wav", f0=220)
    args = ("convert", "in", "refs", "-o", "refs/out", "--pairing", "all", "--model", tiny_bundle, "--device", "cpu",
            "--json")
    first = json.loads(run(*args).stdout)
    assert [Path(c["output"]).name for c in first["converted"]] == ["a__ref-r.wav"]
    second = run(*args)
    assert second.exit_code == 0 and json.loads(second.stdout) == {
        "converted": [], "skipped": ["refs/out/a__ref-r.wav"], "failed": [], "shard": None}
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.wav")) == [
        "in/a.wav", "refs/out/a__ref-r.wav", "refs/r.wav"]


@pytest.mark.parametrize(("inputs", "output"), [("in", "in"), ("refs", "refs"), ("in", "data")])
def test_an_output_folder_that_is_an_input_folder_is_refused_whatever_the_extension(
        tiny_bundle: Path, tmp_path: Path, inputs: str, output: str) -> None:
    """x.flac would give x.wav beside it (not its own name: refused or not by the extension, before); an input
    folder inside the output folder can be written into by the mirrored tree too."""
    source = "data/in" if output == "data" else "in"
    sf.write(clip(tmp_path / source / "in" / "x.wav").with_suffix(".flac"), tone(0.4), SAMPLE_RATE)
    (tmp_path / source / "in" / "x.wav").unlink()
    clip(tmp_path / "refs" / "x.wav", f0=220)
    before = tree(tmp_path)
    line = one_line(run("convert", source, "refs", "-o", output, "--pairing", "all", "--model", "no-such-model"),
                    1, "inside the input folder")
    assert ("refs" if inputs == "refs" else source) in line
    assert tree(tmp_path) == before


def test_plan_walks_leave_out_the_output_folder_for_sources_and_references(tmp_path: Path) -> None:
    from ainn_cli.batch import plan

    clip(tmp_path / "in" / "a.wav")
    clip(tmp_path / "in" / "out" / "old.wav")
    clip(tmp_path / "refs" / "r.wav", f0=220)
    clip(tmp_path / "refs" / "out2" / "stale.wav", f0=220)
    jobs = plan(tmp_path / "in", tmp_path / "refs", tmp_path / "in" / "out", pairing="all")
    assert [(j.source.name, j.reference and j.reference.name) for j in jobs] == [("a.wav", "r.wav"),
                                                                                ("a.wav", "stale.wav")]
    jobs = plan(tmp_path / "in", tmp_path / "refs", tmp_path / "refs" / "out2", pairing="all")
    assert [(j.source.name, j.reference and j.reference.name) for j in jobs] == [("a.wav", "r.wav"),
                                                                                ("old.wav", "r.wav")]


# ------------------------------------------------------------------ round two: files ainn did not make


def test_evaluate_never_writes_over_its_own_inputs(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    pairs = tmp_path / "results" / "results.csv"
    pairs.write_text("converted,target_emotion\nx.wav,angry\n")
    clip(tmp_path / "results" / "x.wav")
    before = tree(tmp_path)
    one_line(run("evaluate", pairs, "--out", "results", "--overwrite"), 1, "is an input of this evaluation")
    assert tree(tmp_path) == before


@pytest.mark.parametrize(("name", "rate", "needle"), [("o.ogg", 220000, "ogg files hold at most 200000 Hz"),
                                                      ("o.flac", 700000, "flac files hold at most 655350 Hz")])
def test_a_rate_the_format_cannot_hold_is_refused_before_anything_runs(tmp_path: Path, name: str, rate: int,
                                                                       needle: str) -> None:
    """libvorbis killed the process (SIGSEGV) above 200 kHz and left its hidden temp file; FLAC failed at the end."""
    src, ref = clip(tmp_path / "s.wav"), clip(tmp_path / "r.wav", f0=220)
    one_line(run("convert", src, ref, "-o", name, "--sample-rate", str(rate), "--model", "no-such-model"), 2, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.wav", "s.wav"]


FILE_SIZE_LIMIT = ("import resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({0}, {0})); "
                   "sys.argv = ['ainn', *sys.argv[1:]]; from ainn_cli.cli import main; main()")


def limited(limit: int, *args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`ainn ARGS` in a process that may write no file larger than `limit` bytes (a full disk, as the writers see
    it: Python ignores SIGXFSZ, so a write past the limit fails with EFBIG)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", FILE_SIZE_LIMIT.format(limit), *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=timeout)


def one_line_from(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    assert done.returncode == code, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert all(needle in lines[0] for needle in needles), lines[0]
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("seconds", [2.0, 125.0])
def test_a_write_that_fails_is_one_line_naming_the_file_and_leaves_nothing(tiny_bundle: Path, tmp_path: Path,
                                                                          seconds: float) -> None:
    """A file-size limit while writing the output (2 s: one write; 125 s: streamed, its scratch files too):
    one line naming the output, exit 1, no hidden temp file, the old output untouched."""
    clip(tmp_path / "s.wav", seconds=seconds)
    clip(tmp_path / "r.wav", f0=220)
    (tmp_path / "o.wav").write_bytes(b"the old output")
    done = limited(20_000 if seconds < 10 else 2_000_000, "convert", tmp_path / "s.wav", tmp_path / "r.wav", "-o",
                   tmp_path / "o.wav", "--overwrite", "--model", tiny_bundle, "--device", "cpu", "--quiet")
    one_line_from(done, 1, "o.wav: cannot write (File too large)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.wav", "r.wav", "s.wav"]
    assert (tmp_path / "o.wav").read_bytes() == b"the old output"
