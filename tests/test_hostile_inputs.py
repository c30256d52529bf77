"""Round two of hostile input for `ainn convert`, `strength` and `evaluate`: what can be checked before converting
is (unreadable folders and files, an output folder that cannot be written), names of any bytes and trees of any
depth work, and a failed file costs milliseconds. Every test works in tmp_path (chdir)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner, Result

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.cli import app
from ainn_cli.files import make_folders
from tests.conftest import one_line, tone

ROOT = os.geteuid() == 0  # root reads and writes through permission bits: those cases are also simulated


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def run(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


def clip(path: Path | str, seconds: float = 0.4, f0: float = 140.0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, f0=f0), SAMPLE_RATE)
    return path


def unreadable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """`folder` cannot be listed (as chmod 000 makes it for anyone but root)."""
    real = os.scandir

    def scandir(path: object = ".") -> object:
        if os.path.realpath(str(path)) == os.path.realpath(folder):
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "scandir", scandir)


# ------------------------------------------------------------------------------ found before converting


def test_an_unreadable_subfolder_is_a_failure_not_a_silence(tiny_bundle: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    clip("in/a.wav")
    clip("in/locked/b.wav")
    unreadable(monkeypatch, tmp_path / "in" / "locked")
    result = run("convert", "in", "--emotion", "sad", "-o", "out", "--model", tiny_bundle, "--device", "cpu", "--json")
    assert result.exit_code == 1 and "Traceback" not in result.output
    report = json.loads(result.stdout)
    assert [Path(c["source"]).name for c in report["converted"]] == ["a.wav"]
    assert report["failed"] == [{"source": "in/locked",
                                 "reason": "in/locked: cannot read the folder (Permission denied)"}]
    reading = run("strength", "in", "--model", tiny_bundle, "--device", "cpu", "--json")
    assert reading.exit_code == 1 and "in/locked: cannot read the folder (Permission denied)" in reading.stderr
    assert Path(json.loads(reading.stdout)["file"]).name == "a.wav"  # one file read: one object


@pytest.mark.skipif(ROOT, reason="root lists a chmod 000 folder")
def test_a_chmod_000_subfolder_is_a_failure(tiny_bundle: Path, tmp_path: Path) -> None:
    clip("in/a.wav")
    clip("in/locked/b.wav")
    (tmp_path / "in" / "locked").chmod(0)
    try:
        result = run("convert", "in", "--emotion", "sad", "-o", "out", "--model", tiny_bundle, "--device", "cpu")
        assert result.exit_code == 1 and "in/locked: cannot read the folder" in result.stderr
    finally:
        (tmp_path / "in" / "locked").chmod(0o755)


def test_an_output_folder_that_cannot_be_written_is_refused_before_the_model_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It was discovered only after every file had been converted."""
    clip("in/a.wav")
    (tmp_path / "ro").mkdir()
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if Path(path).name == "ro" else real(path, mode))
    one_line(run("convert", "in", "--emotion", "sad", "-o", "ro/out", "--model", "no-such-model"), 1,
             "ro: folder is not writable")
    assert list((tmp_path / "ro").iterdir()) == []


@pytest.mark.skipif(ROOT, reason="root writes in a chmod 500 folder")
def test_a_read_only_output_folder_is_refused_up_front(tmp_path: Path) -> None:
    clip("in/a.wav")
    (tmp_path / "ro").mkdir(mode=0o500)
    try:
        one_line(run("convert", "in", "--emotion", "sad", "-o", "ro/out", "--model", "no-such-model"), 1,
                 "not writable")
    finally:
        (tmp_path / "ro").chmod(0o755)


def test_files_that_cannot_be_read_fail_before_any_model_loads(tmp_path: Path) -> None:
    """Empty, not audio, a FIFO, a link loop: each a failure found by its header, none needing the model."""
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "empty.wav").write_bytes(b"")
    (tmp_path / "in" / "text.wav").write_text("not audio")
    os.mkfifo(tmp_path / "in" / "pipe.wav")
    (tmp_path / "in" / "loop.wav").symlink_to("loop.wav")
    result = run("convert", "in", "--emotion", "sad", "-o", "out", "--model", "no-such-model", "--json")
    assert result.exit_code == 1 and "no-such-model" not in result.output, result.output
    reasons = {Path(f["source"]).name: f["reason"] for f in json.loads(result.stdout)["failed"]}
    assert set(reasons) == {"empty.wav", "text.wav", "pipe.wav", "loop.wav"}
    assert "not a regular file" in reasons["pipe.wav"] and "symbolic link" in reasons["loop.wav"]
    assert all("not a readable audio file" in reasons[k] for k in ("empty.wav", "text.wav"))


def test_ten_thousand_empty_wav_files_are_reported_in_seconds(tmp_path: Path) -> None:
    """70-130 ms a file before (a collection after every failure): 10,000 took 12-22 minutes."""
    (tmp_path / "in").mkdir()
    for k in range(10_000):
        (tmp_path / "in" / f"{k:05d}.wav").touch()
    start = time.monotonic()
    command = [sys.executable, "-m", "ainn_cli", "convert", "in", "--emotion", "sad", "-o", "out", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    report = json.loads(done.stdout)
    assert done.returncode == 1 and len(report["failed"]) == 10_000 and not report["converted"], done.stderr[-500:]
    assert elapsed < 30, f"{elapsed:.1f} s"
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- names and shapes


def test_file_names_that_are_not_utf8(tiny_bundle: Path, tmp_path: Path) -> None:
    name = os.fsdecode(b"take \xff\xfe.wav")  # what Linux gives Python for bytes that are not UTF-8
    (tmp_path / "in").mkdir()
    sf.write(os.fsencode(tmp_path / "in" / name), tone(0.4), SAMPLE_RATE)  # bytes: soundfile encodes str strictly
    (tmp_path / "in" / os.fsdecode(b"bad\xff.wav")).write_text("not audio")
    clip("ref.wav", f0=220)
    single = run("convert", f"in/{name}", "ref.wav", "-o", "one.wav", "--model", tiny_bundle, "--device", "cpu")
    assert single.exit_code == 0 and single.exception is None, single.output
    assert single.stdout.startswith("one.wav: ")
    named = run("convert", f"in/{name}", "ref.wav", "--model", tiny_bundle, "--device", "cpu")
    assert named.exit_code == 0 and named.stdout.startswith("take \\xff\\xfe-ref.wav: "), named.output
    folder = run("convert", "in", "ref.wav", "-o", "out", "--model", tiny_bundle, "--device", "cpu", "--json")
    assert folder.exit_code == 1 and "Traceback" not in folder.output
    report = json.loads(folder.stdout)
    assert len(report["converted"]) == 1 and (tmp_path / "out" / name).with_suffix(".wav").is_file()
    assert report["failed"][0]["reason"].endswith("not a readable audio file (Format not recognised.)")
    table = run("convert", "in", "ref.wav", "-o", "out2", "--model", tiny_bundle, "--device", "cpu")
    assert table.exit_code == 1 and isinstance(table.exception, SystemExit) and "bad\\xff.wav" in table.stderr
    reading = run("strength", "in", "--model", tiny_bundle, "--device", "cpu")
    assert reading.exit_code == 1 and isinstance(reading.exception, SystemExit)
    assert "take \\xff\\xfe.wav" in reading.stdout and "bad\\xff.wav: not a readable audio file" in reading.stderr


def test_the_current_folder_as_source(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`ainn convert . REF` raised ValueError ('.' has an empty name) deriving the output folder's name."""
    clip("in/a.wav")
    clip("ref.wav", f0=220)
    monkeypatch.chdir(tmp_path / "in")
    result = run("convert", ".", "../ref.wav", "--model", tiny_bundle, "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "in-ainn" / "a.wav").is_file()


@pytest.mark.slow
def test_a_tree_1100_folders_deep(tiny_bundle: Path, tmp_path: Path) -> None:
    """Walking it and making its mirror both recursed once per level (RecursionError past ~1000)."""
    deep = Path("in", *["d"] * 1100)
    make_folders(deep)  # os.makedirs recurses once per level too
    try:
        with open(deep / "x.wav", "wb") as handle:  # libsndfile itself opens no path over 1024 bytes
            sf.write(handle, tone(0.4), SAMPLE_RATE, format="WAV")
        result = run("convert", "in", "--emotion", "sad", "-o", "out", "--model", tiny_bundle, "--device", "cpu",
                     "--json")
        assert result.exit_code == 0 and len(json.loads(result.stdout)["converted"]) == 1, result.output[-500:]
        assert (tmp_path / "out" / deep.relative_to("in") / "x.wav").is_file()
        reading = run("strength", "in", "--model", tiny_bundle, "--device", "cpu", "--json")
        assert reading.exit_code == 0 and len(json.loads(reading.stdout)["cue"]) > 0
    finally:
        for top in ("in", "out"):
            remove_deep(tmp_path / top)


def remove_deep(top: Path) -> None:
    """Delete a tree without recursion (shutil.rmtree, and so pytest's tmp_path cleanup, recurse per level)."""
    while top.exists():
        folder = top
        while True:
            inner = [p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()]
            if not inner:
                break
            folder = inner[0]
        for item in folder.iterdir():
            item.unlink()
        folder.rmdir()


@pytest.mark.parametrize("device", ["cuda:", "cuda:99999999999999999999", "cuda:\u0663", "cuda:-1", "x" * 5000])
def test_a_device_that_cannot_be_one_is_one_line(device: str) -> None:
    clip("s.wav")
    line = one_line(run("convert", "s.wav", "--emotion", "sad", "-o", "o.wav", "--device", device), 2,
                    "unknown device")
    assert len(line) < 200 and line.isascii()


@pytest.mark.parametrize(("content", "needle"), [
    (b"converted,target_emotion\n\xff\xfe.wav,angry\n", "pairs.csv: not UTF-8 text"),
    (b"converted,target_emotion\n" + b"x" * 131_073 + b".wav,angry\n", "pairs.csv: not a readable CSV (field larger"),
    (b"converted,target_emotion\nx.wav,angry\x00\n", "is not one of"),
])
def test_an_evaluate_csv_that_is_not_one_is_one_line(tmp_path: Path, content: bytes, needle: str) -> None:
    (tmp_path / "pairs.csv").write_bytes(content)
    one_line(run("evaluate", "pairs.csv"), 2, needle)
