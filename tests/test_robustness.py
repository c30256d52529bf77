"""Hostile and odd input for `ainn convert`: every case converts correctly or fails in one clear line.

Every input is built here in tmp_path (no committed audio). Tests run from inside tmp_path (chdir) so that
messages name short relative paths. A case either
  - converts: exit 0, output finite, within [-1, 1], at 22050 Hz (or --sample-rate), with a warning on
    stderr for doubtful input (clipping, beyond full scale, NaN), or
  - fails: exit 1 with ONE line on stderr naming the file and the cause, no traceback, no partial output,
or is a usage error: exit 2.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner, Result

from ainn_cli.audio import SAMPLE_RATE, prepare, read_audio, write_wav
from ainn_cli.cli import app
from ainn_cli.errors import AudioError, OutputError
from tests.conftest import tone

SECONDS = 0.5
N = int(SECONDS * SAMPLE_RATE)  # samples of a SECONDS clip at 22050 Hz


# ---------------------------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


@pytest.fixture()
def ref(tmp_path: Path) -> Path:
    path = tmp_path / "ref.wav"
    sf.write(path, tone(SECONDS, f0=210, seed=1), SAMPLE_RATE)
    return Path("ref.wav")


def convert(bundle: Path, *args: str | Path) -> Result:
    return CliRunner().invoke(app, ["convert", *map(str, args), "--model", str(bundle), "--device", "cpu"])


def no_crash(result: Result) -> None:
    """No traceback printed and no exception other than the deliberate exit."""
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def fails(result: Result, *needles: str, code: int = 1) -> str:
    """Exit `code` with exactly one stderr line that contains every needle; returns that line."""
    no_crash(result)
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def valid_wav(path: Path, length: int | None = N, rate: int = SAMPLE_RATE, slack: int = 0) -> np.ndarray:
    data: np.ndarray
    data, got_rate = sf.read(path, dtype="float32")
    assert got_rate == rate
    assert data.ndim == 1
    assert np.all(np.isfinite(data)) and np.max(np.abs(data)) <= 1.0
    if length is not None:
        assert abs(len(data) - length) <= slack, (len(data), length)
    return data


def parts(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.part"))


def snapshot(*paths: Path) -> dict[Path, tuple[bytes, int]]:
    return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths}


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (SIGALRM; the test runs in the main thread)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"hung for more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def write_tone(path: Path, seconds: float = SECONDS, rate: int = SAMPLE_RATE, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, rate), rate, **kwargs)
    return path


# ------------------------------------------------------------------------------------------ lying files


def _lying(kind: str, path: Path) -> None:
    wav = write_tone(path.with_name("real.wav"))
    good = wav.read_bytes()
    content = {
        "text": b"this is not audio\n" * 50,
        "png": b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        "truncated-header": good[:20],
        "header-only": good[:44],
        "zero-bytes": b"",
    }[kind]
    path.write_bytes(content)


@pytest.mark.parametrize(
    ("kind", "cause"),
    [("text", "not a readable audio file"), ("png", "not a readable audio file"),
     ("truncated-header", "not a readable audio file"), ("header-only", "too short"),
     ("zero-bytes", "not a readable audio file")],
)
def test_lying_file_fails_in_one_line(tiny_bundle: Path, ref: Path, tmp_path: Path, kind: str, cause: str) -> None:
    _lying(kind, tmp_path / "x.wav")
    result = convert(tiny_bundle, "x.wav", ref, "-o", "out.wav")
    fails(result, "x.wav", cause)
    assert not (tmp_path / "out.wav").exists() and not parts(tmp_path)


def test_lying_reference_fails_in_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "src.wav")
    _lying("png", tmp_path / "ref.wav")
    fails(convert(tiny_bundle, "src.wav", "ref.wav", "-o", "out.wav"), "ref.wav", "not a readable audio file")


def test_truncated_data_converts_what_is_there(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    good = write_tone(tmp_path / "good.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(good[: 44 + (len(good) - 44) * 3 // 4 // 2 * 2])  # header still says N
    result = convert(tiny_bundle, "cut.wav", ref, "-o", "out.wav")
    no_crash(result)
    assert result.exit_code == 0, result.output
    valid_wav(tmp_path / "out.wav", length=sf.info("cut.wav").frames)


def test_folder_named_wav(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    (tmp_path / "x.wav").mkdir()
    fails(convert(tiny_bundle, "x.wav", ref, "-o", "out.wav"), "x.wav", "no audio files", code=2)
    write_tone(tmp_path / "src.wav")
    fails(convert(tiny_bundle, "src.wav", "x.wav", "-o", "out.wav"), "x.wav", "folder", code=2)
    # inside a batch folder a folder named like a file is just a folder
    write_tone(tmp_path / "in" / "a.wav")
    (tmp_path / "in" / "empty.wav").mkdir()
    write_tone(tmp_path / "in" / "sub.wav" / "b.wav")
    result = convert(tiny_bundle, "in", ref, "-o", "out", "--json")
    no_crash(result)
    assert result.exit_code == 0, result.output
    valid_wav(tmp_path / "out" / "a.wav")
    valid_wav(tmp_path / "out" / "sub.wav" / "b.wav")


def test_symlink_loops_in_batch_folder(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    write_tone(folder / "good.wav")
    (folder / "loop").symlink_to(folder, target_is_directory=True)  # in/loop -> in
    (folder / "sub").mkdir()
    (folder / "sub" / "up").symlink_to("..", target_is_directory=True)  # in/sub/up -> in
    (folder / "self.wav").symlink_to("self.wav")  # ELOOP
    (folder / "ping.wav").symlink_to("pong.wav")
    (folder / "pong.wav").symlink_to("ping.wav")
    with deadline(60):
        result = convert(tiny_bundle, "in", ref, "-o", "out", "--json")
    no_crash(result)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert [Path(c["source"]).name for c in report["converted"]] == ["good.wav"]
    failed = {Path(f["source"]).name: f["reason"] for f in report["failed"]}
    assert set(failed) == {"self.wav", "ping.wav", "pong.wav"}
    assert all("symbolic link" in reason for reason in failed.values()), failed
    valid_wav(tmp_path / "out" / "good.wav")
    assert not parts(tmp_path / "out")


def test_fifo_in_batch_folder_does_not_hang(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "in" / "good.wav")
    os.mkfifo(tmp_path / "in" / "pipe.wav")
    with deadline(60):
        result = convert(tiny_bundle, "in", ref, "-o", "out", "--json")
    no_crash(result)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert len(report["converted"]) == 1
    assert report["failed"] == [{"source": str(Path("in", "pipe.wav")), "reason": "in/pipe.wav: not a regular file"}]


def test_hidden_files_in_batch_folder_are_ignored(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    """macOS `._x.wav` resource forks and our own leftover `.x.wav.*.part` temp files are not sources."""
    write_tone(tmp_path / "in" / "x.wav")
    (tmp_path / "in" / "._x.wav").write_bytes(b"\x00\x05\x16\x07" + b"\x00" * 80)
    (tmp_path / "in" / ".x.wav.abc123.part").write_bytes(b"RIFF")
    result = convert(tiny_bundle, "in", ref, "-o", "out", "--json")
    no_crash(result)
    assert result.exit_code == 0, result.output
    assert [Path(c["source"]).name for c in json.loads(result.stdout)["converted"]] == ["x.wav"]


# ------------------------------------------------------------------------------------ degenerate signals


@pytest.mark.parametrize(
    ("samples", "cause"),
    [
        (np.zeros(0, np.float32), "too short"),
        (tone(1.0)[:300], "too short"),  # shorter than one 1024-sample analysis frame
        (np.zeros(N, np.float32), "silent"),
        (np.full(N, 0.4, np.float32), "silent"),  # DC offset only
        (np.full(N, np.nan, np.float32), "NaN"),
    ],
    ids=["0-samples", "under-one-frame", "digital-silence", "dc-only", "all-nan"],
)
def test_degenerate_signal_fails_in_one_line(tiny_bundle: Path, ref: Path, tmp_path: Path, samples: np.ndarray,
                                             cause: str) -> None:
    sf.write(tmp_path / "x.wav", samples, SAMPLE_RATE, subtype="FLOAT")
    fails(convert(tiny_bundle, "x.wav", ref, "-o", "out.wav"), "x.wav", cause)
    assert not (tmp_path / "out.wav").exists() and not parts(tmp_path)


def _square() -> np.ndarray:
    t = np.arange(N) / SAMPLE_RATE
    return np.sign(np.sin(2 * np.pi * 140 * t)).astype(np.float32)  # hard-clipped at full scale


def _with_nan() -> np.ndarray:
    wave = tone(SECONDS)
    wave[1000:1100], wave[2000], wave[3000] = np.nan, np.inf, -np.inf
    return wave


@pytest.mark.parametrize(
    ("samples", "subtype", "warning"),
    [
        (_square(), "PCM_16", "clipped"),
        (_with_nan(), "FLOAT", "102 NaN/infinite samples replaced by 0"),
        (tone(SECONDS) * 250.0, "FLOAT", "beyond full scale"),  # peaks near 50
        (np.sign(tone(SECONDS)) * np.float32(3e38), "FLOAT", "beyond full scale"),  # float32 extremes
    ],
    ids=["clipped-square", "nan-inf", "loud-50", "loud-3e38"],
)
def test_doubtful_signal_converts_with_a_warning(tiny_bundle: Path, ref: Path, tmp_path: Path, samples: np.ndarray,
                                                 subtype: str, warning: str) -> None:
    sf.write(tmp_path / "x.wav", samples, SAMPLE_RATE, subtype=subtype)
    result = convert(tiny_bundle, "x.wav", ref, "-o", "out.wav")
    no_crash(result)
    assert result.exit_code == 0, result.output
    assert "warning" in result.stderr and "x.wav" in result.stderr and warning in result.stderr, result.stderr
    valid_wav(tmp_path / "out.wav")


def test_dc_offset_under_a_tone_converts_quietly(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", tone(SECONDS) + 0.5, SAMPLE_RATE)
    result = convert(tiny_bundle, "x.wav", ref, "-o", "out.wav")
    no_crash(result)
    assert result.exit_code == 0 and not result.stderr.strip(), result.output
    valid_wav(tmp_path / "out.wav")


def test_loud_and_nan_input_is_cleaned_by_prepare() -> None:
    huge = prepare(np.sign(tone(SECONDS)) * np.float32(3e38), SAMPLE_RATE)
    assert np.all(np.isfinite(huge.samples)) and np.max(np.abs(huge.samples)) == pytest.approx(1.0)
    nan = prepare(_with_nan(), 8000)
    assert np.all(np.isfinite(nan.samples)) and np.max(np.abs(nan.samples)) <= 1.0
    assert nan.warnings == ("102 NaN/infinite samples replaced by 0",)


@pytest.mark.parametrize("rate", [0, 1, 1000, 1_000_000])
def test_absurd_sample_rate_is_refused(rate: int) -> None:
    with pytest.raises(AudioError, match="sample rate"):
        prepare(np.ones(max(rate, 1) * 2, np.float32), rate, "x.wav")


def test_lying_sample_rate_header_fails_in_one_line(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    """A header claiming 1 Hz would otherwise resample 0.5 s into 5.6 hours of audio."""
    sf.write(tmp_path / "x.wav", tone(SECONDS), 1)
    fails(convert(tiny_bundle, "x.wav", ref, "-o", "out.wav"), "x.wav", "sample rate 1 Hz")


# ------------------------------------------------------------------------------------------ odd formats


FORMATS = {  # id: (file name, sample rate, channels, soundfile format, subtype)
    "8kHz": ("x.wav", 8000, 1, None, None),
    "11.025kHz": ("x.wav", 11025, 1, None, None),
    "96kHz": ("x.wav", 96000, 1, None, None),
    "192kHz": ("x.wav", 192000, 1, None, None),
    "u8": ("x.wav", SAMPLE_RATE, 1, None, "PCM_U8"),  # PCM_S8 is not valid in wav
    "24bit": ("x.wav", SAMPLE_RATE, 1, None, "PCM_24"),
    "float32": ("x.wav", SAMPLE_RATE, 1, None, "FLOAT"),
    "stereo": ("x.wav", SAMPLE_RATE, 2, None, None),
    "6ch": ("x.wav", SAMPLE_RATE, 6, None, None),
    "flac": ("x.flac", SAMPLE_RATE, 1, None, None),
    "ogg-vorbis": ("x.ogg", SAMPLE_RATE, 1, "OGG", "VORBIS"),
}


@pytest.mark.parametrize("case", list(FORMATS))
def test_odd_format_converts(tiny_bundle: Path, ref: Path, tmp_path: Path, case: str) -> None:
    name, rate, channels, fmt, subtype = FORMATS[case]
    wave = tone(SECONDS, rate)
    data = np.stack([wave * (0.5 + 0.1 * c) for c in range(channels)], axis=1)
    sf.write(tmp_path / name, data, rate, format=fmt, subtype=subtype)
    before = snapshot(tmp_path / name)
    result = convert(tiny_bundle, name, ref, "-o", "out.wav")
    no_crash(result)
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    valid_wav(tmp_path / "out.wav", slack=2)
    assert snapshot(tmp_path / name) == before


@pytest.mark.parametrize("rate", [8000, 44100])
def test_output_sample_rate(tiny_bundle: Path, ref: Path, tmp_path: Path, rate: int) -> None:
    write_tone(tmp_path / "x.wav")
    result = convert(tiny_bundle, "x.wav", ref, "-o", "out.wav", "--sample-rate", str(rate))
    no_crash(result)
    assert result.exit_code == 0, result.output
    valid_wav(tmp_path / "out.wav", length=int(SECONDS * rate), rate=rate, slack=2)


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--strength", "2"], "--strength"), (["--sample-rate", "100"], "--sample-rate"),
     (["--emotion", "angry"], "not both"), (["--pairing", "zip"], "--pairing"), (["--shard", "3/2"], "--shard"),
     (["--tempo"], "rate_weight")],
)
def test_usage_errors_exit_2(tiny_bundle: Path, ref: Path, tmp_path: Path, args: list[str], needle: str) -> None:
    write_tone(tmp_path / "x.wav")
    fails(convert(tiny_bundle, "x.wav", ref, "-o", "out.wav", *args), needle, code=2)
    assert not (tmp_path / "out.wav").exists()


def test_missing_source_is_a_usage_error(tiny_bundle: Path, ref: Path) -> None:
    fails(convert(tiny_bundle, "nope.wav", ref, "-o", "out.wav"), "nope.wav", "no such file", code=2)


# ------------------------------------------------------------------------------------- files and batches


def test_existing_output_is_kept_without_overwrite(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "x.wav")
    (tmp_path / "out.wav").write_bytes(b"precious, not even audio")
    before = snapshot(tmp_path / "out.wav")
    fails(convert(tiny_bundle, "x.wav", ref, "-o", "out.wav"), "out.wav", "--overwrite")
    assert snapshot(tmp_path / "out.wav") == before
    assert not parts(tmp_path)


@pytest.mark.parametrize("spelling", ["same", "dotted", "symlink"])
@pytest.mark.parametrize("overwrite", [False, True])
def test_output_equal_to_input_is_refused(tiny_bundle: Path, ref: Path, tmp_path: Path, spelling: str,
                                          overwrite: bool) -> None:
    src = write_tone(tmp_path / "sub" / "x.wav")
    (tmp_path / "link.wav").symlink_to(src)
    out = {"same": "sub/x.wav", "dotted": "./sub/../sub/x.wav", "symlink": "link.wav"}[spelling]
    before = snapshot(src, tmp_path / ref)
    fails(convert(tiny_bundle, "sub/x.wav", ref, "-o", out, *(["--overwrite"] if overwrite else [])),
          "would overwrite its input")
    assert snapshot(src, tmp_path / ref) == before
    assert not parts(tmp_path)


def test_output_equal_to_reference_is_refused(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "x.wav")
    before = snapshot(tmp_path / ref)
    fails(convert(tiny_bundle, "x.wav", ref, "-o", str(ref), "--overwrite"), "would overwrite its input")
    assert snapshot(tmp_path / ref) == before


def test_output_folder_equal_to_input_folder_is_refused(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    files = [write_tone(tmp_path / "in" / f"{k}.wav") for k in "ab"]
    before = snapshot(*files)
    fails(convert(tiny_bundle, "in", ref, "-o", "in", "--overwrite"), "would overwrite its input")
    assert snapshot(*files) == before


def test_inputs_are_never_modified(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    files = [write_tone(tmp_path / "in" / f"{k}.wav") for k in "ab"] + [write_tone(tmp_path / "in" / "c.flac")]
    before = snapshot(*files, tmp_path / ref)
    time.sleep(0.01)
    for _ in range(2):
        assert convert(tiny_bundle, "in", ref, "-o", "out", "--overwrite", "-q").exit_code == 0
        assert convert(tiny_bundle, "in/a.wav", ref, "-o", "one.wav", "--overwrite", "-q").exit_code == 0
    assert convert(tiny_bundle, "in", ref, "-o", "in", "-q").exit_code == 1  # refused: a.wav -> in/a.wav
    assert snapshot(*files, tmp_path / ref) == before


def test_batch_with_one_bad_file(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    for k in "abc":
        write_tone(tmp_path / "in" / f"{k}.wav")
    (tmp_path / "in" / "bad.wav").write_text("not audio")
    result = convert(tiny_bundle, "in", ref, "-o", "out", "--json")
    no_crash(result)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert sorted(Path(c["source"]).name for c in report["converted"]) == ["a.wav", "b.wav", "c.wav"]
    assert len(report["failed"]) == 1
    failure = report["failed"][0]
    assert failure["source"] == str(Path("in", "bad.wav"))
    assert "bad.wav" in failure["reason"] and "not a readable audio file" in failure["reason"]
    for k in "abc":
        valid_wav(tmp_path / "out" / f"{k}.wav")
    assert not (tmp_path / "out" / "bad.wav").exists() and not parts(tmp_path / "out")


def test_batch_failures_without_json_go_to_stderr(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "in" / "a.wav")
    (tmp_path / "in" / "bad.wav").write_text("not audio")
    result = convert(tiny_bundle, "in", ref, "-o", "out")
    no_crash(result)
    assert result.exit_code == 1
    assert "bad.wav" in result.stderr and "not a readable" in result.stderr


def test_rerun_resumes(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    for k in "abcd":
        write_tone(tmp_path / "in" / f"{k}.wav")
    assert convert(tiny_bundle, "in", ref, "-o", "out", "-q").exit_code == 0
    out = tmp_path / "out"
    (out / "b.wav").unlink()
    kept = snapshot(out / "a.wav", out / "c.wav", out / "d.wav")
    result = convert(tiny_bundle, "in", ref, "-o", "out", "--json")
    no_crash(result)
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert [Path(c["output"]).name for c in report["converted"]] == ["b.wav"]
    assert sorted(Path(s).name for s in report["skipped"]) == ["a.wav", "c.wav", "d.wav"]
    assert snapshot(out / "a.wav", out / "c.wav", out / "d.wav") == kept
    valid_wav(out / "b.wav")


def test_output_folder_inside_source_folder_is_not_reconverted(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    for k in "ab":
        write_tone(tmp_path / "in" / f"{k}.wav")
    for run in range(2):
        result = convert(tiny_bundle, "in", ref, "-o", "in/converted", "--json")
        no_crash(result)
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert len(report["converted"]) == (2 if run == 0 else 0) and len(report["skipped"]) == (0 if run == 0 else 2)
    assert sorted(p.name for p in (tmp_path / "in" / "converted").iterdir()) == ["a.wav", "b.wav"]


@pytest.mark.parametrize("mode", ["file", "folder"])
def test_output_under_a_regular_file(tiny_bundle: Path, ref: Path, tmp_path: Path, mode: str) -> None:
    """Fails for root too, unlike chmod: `afile/out.wav` cannot be created when `afile` is a file."""
    write_tone(tmp_path / "in" / "x.wav")
    (tmp_path / "afile").write_text("I am a file")
    source, out = ("in/x.wav", "afile/out.wav") if mode == "file" else ("in", "afile/out")
    fails(convert(tiny_bundle, source, ref, "-o", out), "afile", "not a folder")
    assert (tmp_path / "afile").read_text() == "I am a file"
    assert not parts(tmp_path)


def test_output_folder_is_a_file(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "in" / "x.wav")
    (tmp_path / "out").write_text("I am a file")
    fails(convert(tiny_bundle, "in", ref, "-o", "out"), "out", "not a folder")
    assert (tmp_path / "out").read_text() == "I am a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0o500")
def test_unwritable_output_folder(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "x.wav")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        fails(convert(tiny_bundle, "x.wav", ref, "-o", "locked/out.wav"), "locked", "not writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(stat.S_IRWXU)


def test_output_that_is_not_a_regular_file_is_refused(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "x.wav")
    os.mkfifo(tmp_path / "out.wav")
    fails(convert(tiny_bundle, "x.wav", ref, "-o", "out.wav", "--overwrite"), "out.wav", "not a regular file")
    assert stat.S_ISFIFO((tmp_path / "out.wav").stat().st_mode)


def _failing_write(calls: list[int], exc: BaseException, fail_on: int = 1):  # type: ignore[no-untyped-def]
    real = sf.write

    def write(file: object, data: np.ndarray, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) != fail_on:
            real(file, data, *args, **kwargs)
            return
        real(file, data[: len(data) // 3], *args, **kwargs)  # some bytes reach the temp file
        raise exc

    return write


@pytest.mark.parametrize(
    "exc", [OSError(28, "No space left on device"), sf.LibsndfileError(2), KeyboardInterrupt()],
    ids=["disk-full", "libsndfile", "ctrl-c"],
)
def test_write_failure_leaves_target_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       exc: BaseException) -> None:
    target = tmp_path / "out.wav"
    target.write_bytes(b"old")
    monkeypatch.setattr(sf, "write", _failing_write([], exc))
    expected = KeyboardInterrupt if isinstance(exc, KeyboardInterrupt) else OutputError
    with pytest.raises(expected):
        write_wav(target, tone(SECONDS), overwrite=True)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.wav"]


def test_write_failure_in_a_batch_is_recorded(tiny_bundle: Path, ref: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    for k in "abc":
        write_tone(tmp_path / "in" / f"{k}.wav")
    monkeypatch.setattr(sf, "write", _failing_write([], OSError(28, "No space left on device"), fail_on=2))
    result = convert(tiny_bundle, "in", ref, "-o", "out", "--json")
    no_crash(result)
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert len(report["converted"]) == 2
    assert report["failed"] == [{"source": str(Path("in", "b.wav")),
                                 "reason": "out/b.wav: cannot write (No space left on device)"}]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.wav", "c.wav"]


def test_write_failure_single_file(tiny_bundle: Path, ref: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write_tone(tmp_path / "x.wav")
    monkeypatch.setattr(sf, "write", _failing_write([], sf.LibsndfileError(2)))
    fails(convert(tiny_bundle, "x.wav", ref, "-o", "out.wav"), "out.wav", "cannot write")
    assert not (tmp_path / "out.wav").exists() and not parts(tmp_path)


def test_read_audio_library_errors(tmp_path: Path) -> None:
    (tmp_path / "loop.wav").symlink_to("loop.wav")
    (tmp_path / "dir.wav").mkdir()
    for name, cause in [("missing.wav", "no such file"), ("loop.wav", "symbolic link"), ("dir.wav", "is a folder")]:
        with pytest.raises(AudioError, match=cause):
            read_audio(tmp_path / name)


# --------------------------------------------------------------------- changes needed outside audio/batch


def test_file_name_with_brackets_is_printed_verbatim(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    (tmp_path / "take [live].wav").write_text("not audio")
    fails(convert(tiny_bundle, "take [live].wav", ref, "-o", "out.wav"), "take [live].wav")


def test_doubtful_reference_warns(tiny_bundle: Path, tmp_path: Path) -> None:
    write_tone(tmp_path / "x.wav")
    sf.write(tmp_path / "ref.wav", _with_nan(), SAMPLE_RATE, subtype="FLOAT")
    result = convert(tiny_bundle, "x.wav", "ref.wav", "-o", "out.wav")
    assert result.exit_code == 0
    assert "ref.wav" in result.stderr and "NaN" in result.stderr


def test_warning_is_one_line_for_a_long_path(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    name = "a-rather-long-folder-name-for-a-recording-session/" * 2 + "clipped.wav"
    (tmp_path / name).parent.mkdir(parents=True)
    sf.write(tmp_path / name, _square(), SAMPLE_RATE)
    result = convert(tiny_bundle, name, ref, "-o", "out.wav")
    assert result.exit_code == 0
    assert [line for line in result.stderr.splitlines() if line.strip()] == [f"warning: {name}: more than 1% of "
                                                                              "samples are clipped"]


# ------------------------------------------------------------------------------------------- kill test


@pytest.mark.slow
def test_sigkill_mid_batch_leaves_only_complete_outputs(tiny_bundle: Path, ref: Path, tmp_path: Path) -> None:
    lengths = {}
    for k in range(30):
        seconds = 0.3 + 0.01 * k
        write_tone(tmp_path / "in" / f"{k:02d}.wav", seconds=seconds)
        lengths[f"{k:02d}.wav"] = int(seconds * SAMPLE_RATE)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "ainn_cli", "convert", "in", str(ref), "-o", "out", "--model", str(tiny_bundle),
           "--device", "cpu", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        limit = time.monotonic() + 120
        while not (out.is_dir() and any(out.glob("*.wav"))):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < limit, "no output appeared"
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = sorted(p.name for p in out.glob("*.wav"))
    assert 1 <= len(done) < 30, done  # killed mid-batch
    for path in out.iterdir():
        if path.suffix == ".wav":
            valid_wav(path, length=lengths[path.name])
        else:  # only our hidden temp file may be left by SIGKILL
            assert path.name.startswith(".") and path.name.endswith(".part"), path.name

    rerun = convert(tiny_bundle, "in", ref, "-o", "out", "--json")  # in-process: saves a second torch import
    no_crash(rerun)
    assert rerun.exit_code == 0, rerun.output
    report = json.loads(rerun.stdout)
    assert sorted(Path(s).name for s in report["skipped"]) == done
    assert len(report["converted"]) == 30 - len(done) and not report["failed"]
    for name, length in lengths.items():
        valid_wav(out / name, length=length)
