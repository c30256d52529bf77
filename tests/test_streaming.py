"""Recordings of hours as streams: `stream_convert` and `stream_strength` give what the whole-array pipeline gives
(the three model variants, resampled input, output rates and formats), show their progress, bound their plot, and
fail in one line without leaving a file behind. Long inputs are made short here by shrinking the chunks."""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from typer.testing import CliRunner

from ainn_cli.audio import SAMPLE_RATE, read_audio, write_wav
from ainn_cli.audio_stream import STREAM_SECONDS, AudioReader, AudioWriter
from ainn_cli.bundle import BundleInfo, Calibration, save_bundle
from ainn_cli.cli import app
from ainn_cli.emotions import LABELS
from ainn_cli.errors import DeviceError
from ainn_cli.models.generator import Generator, GeneratorConfig
from ainn_cli.models.predictor import ProsodyPredictor, ProsodyPredictorConfig
from ainn_cli.pipeline import Pipeline, load_pipeline
from ainn_cli.prosody import NEPER_TO_DB
from ainn_cli.stream_convert import convert_file
from ainn_cli.stream_strength import PLOT_COLUMNS, read_file
from tests.conftest import one_line, tiny_modules, tone

CHUNK = 64  # mel frames: a 3-second source is five chunks, each read with more context than its own length
LSB = 1 / 32768  # one step of a 16-bit output


def speech(seconds: float, rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """Syllables with pauses between them (silence spans for the vocoder to skip), at `rate`."""
    wave = tone(seconds, rate, f0=110, seed=seed)
    t = np.arange(wave.size) / rate
    return (wave * (np.sin(2 * np.pi * 0.7 * t) > -0.3)).astype(np.float32)


def bundle(tmp_path: Path, variant: str) -> Path:
    """Tiny bundles: `paper` (no prosody path), `reshape` (the default's: reshaped mel, guidance, energy matched, low
    voice, a contour, 1.2 x longer), `quiet` (reshape with a G 80 dB quieter, under the source, so that the waveform
    is raised back, `prosody.level_lift`) and `rendered` (G renders the prosody channels)."""
    modules = tiny_modules(seed=3)
    if variant == "paper":
        return save_bundle(tmp_path / variant, _info(), modules)
    if variant == "quiet":
        with torch.no_grad():
            bias = cast(Generator, modules["generator"]).out.bias
            assert bias is not None
            bias -= 80 / NEPER_TO_DB
    options = {"match_energy": "lower", "blend_neutral": True, "guidance": 2.0, "low_voice_hz": 400.0,
               "contour_bins": 4, "rate_weight": 0.4} if variant in ("reshape", "quiet") else {}
    predictor = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8, **options))  # type: ignore[arg-type]
    with torch.no_grad():
        last = cast(torch.nn.Linear, predictor.net[-1])
        last.bias.copy_(torch.tensor([math.log(2 ** (2 / 12)), 0.1, 0.3, math.log(1.2)]))
        last.weight.zero_()
        if predictor.contour_table is not None:
            predictor.contour_table.uniform_(-0.3, 0.3)
    if variant == "rendered":
        modules["generator"] = Generator(GeneratorConfig(content_dim=8, emotion_dim=8, timbre_dim=8, channels=16,
                                                         layers=2, prosody_dim=3))
    return save_bundle(tmp_path / variant, _info(), {**modules, "prosody": predictor})


def _info() -> BundleInfo:
    rng = np.random.default_rng(1)
    return BundleInfo(name="tiny-stream", labels=LABELS, calibration=Calibration(low={}, high={}),
                      prototypes={k: list(map(float, rng.standard_normal(8) / np.sqrt(8))) for k in LABELS})


def chunked(path: Path) -> Pipeline:
    pipe = load_pipeline(str(path), "cpu")
    pipe.chunk_frames, pipe.read_chunk_frames = CHUNK, 2 * CHUNK
    return pipe


@pytest.mark.parametrize("variant", ["paper", *(pytest.param(v, marks=pytest.mark.slow)
                                                 for v in ("reshape", "quiet", "rendered"))])
def test_a_stream_converts_as_the_whole_array_does(tmp_path: Path, variant: str) -> None:
    pipe = chunked(bundle(tmp_path, variant))
    source = tmp_path / "src.flac"
    sf.write(source, soxr.resample(speech(3.0), SAMPLE_RATE, 44100), 44100)  # resampled on the way in
    sf.write(tmp_path / "ref.wav", tone(1.0, f0=220, seed=2), SAMPLE_RATE)
    reference = read_audio(tmp_path / "ref.wav")
    tempo = variant in ("reshape", "quiet") or None  # the reshape bundles follow the reference's speaking rate (hama)
    whole = pipe.convert(read_audio(source), reference, tempo=tempo)
    write_wav(tmp_path / "whole.wav", whole.wave)
    streamed = convert_file(pipe, AudioReader(source), reference, tmp_path / "stream.wav", tempo=tempo)
    a, b = (sf.read(tmp_path / name, dtype="float32")[0] for name in ("whole.wav", "stream.wav"))
    assert a.shape == b.shape == whole.wave.shape
    assert (len(a) == read_audio(source).samples.size) == (variant == "paper")  # the others change the duration
    assert np.abs(a - b).max() <= 4 * LSB, np.abs(a - b).max()  # the retiming's float rounding, a few steps at most
    assert np.abs(a).max() > 100 * LSB  # not two silences
    if variant == "quiet":  # the waveform was raised (by the same gain in both): the level the source had
        samples = read_audio(source).samples
        with torch.inference_mode():
            mel = pipe._mel(samples)
            target = pipe._ask(samples, mel, reference, None, None, tempo)[3]
            lift = pipe.convert_mel(mel, target, pipe.chunk_frames)[1]
        assert lift is not None and float(lift[0]) * NEPER_TO_DB > 10.0
    assert streamed.emotion == whole.emotion and streamed.strength == whole.strength
    assert streamed.prosody == whole.prosody
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["ref.wav", "src.flac", "stream.wav",
                                                                         "whole.wav"]  # no scratch file left


@pytest.mark.parametrize(("name", "rate"), [("o.wav", 16000), ("o.flac", SAMPLE_RATE), ("o.ogg", 44100)])
def test_a_stream_writes_what_write_wav_writes(tmp_path: Path, name: str, rate: int) -> None:
    wave = speech(2.0) * 3.0  # beyond full scale: the whole output is scaled under it, as write_wav does
    peaks: list[float] = []
    write_wav(tmp_path / f"whole-{name}", wave, rate)
    with AudioWriter(tmp_path / name, rate, on_limit=peaks.append) as writer:
        for block in np.array_split(wave, 7):
            writer.write(block)
        writer.finish()
    a, b = (sf.read(tmp_path / n, dtype="float32")[0] for n in (f"whole-{name}", name))
    assert sf.info(tmp_path / name).samplerate == rate and a.shape == b.shape and len(peaks) == 1
    assert np.abs(a - b).max() <= (0.02 if name.endswith(".ogg") else 0.0)  # vorbis frames its own blocks


def test_a_stream_reads_what_read_audio_reads(tmp_path: Path) -> None:
    """Pass 1's mean, peak and warnings, then the prepared blocks: read_audio's samples, sample for sample."""
    stereo = np.stack([speech(2.0, 48000) * 8 + 0.2, speech(2.0, 48000, seed=1)], axis=1)  # mono peaks near 2
    stereo[1000:1010] = np.nan
    sf.write(tmp_path / "x.wav", stereo, 48000, subtype="FLOAT")
    reader = AudioReader(tmp_path / "x.wav")
    whole = read_audio(tmp_path / "x.wav")
    assert reader.levels.warnings == whole.warnings and len(whole.warnings) == 2
    np.testing.assert_array_equal(np.concatenate(list(reader.blocks())), whole.samples)


@pytest.mark.parametrize("plot", [False, True])
def test_a_stream_reads_strength_as_the_whole_array_does(tmp_path: Path, plot: bool) -> None:
    pipe = chunked(bundle(tmp_path, "paper"))
    sf.write(tmp_path / "x.wav", speech(6.0), SAMPLE_RATE)
    whole = pipe.strength(read_audio(tmp_path / "x.wav"))
    streamed = read_file(pipe, AudioReader(tmp_path / "x.wav"), plot=plot)
    reading = streamed.reading
    assert reading.label == whole.label and reading.strength == pytest.approx(whole.strength, abs=1e-5)
    assert reading.probabilities == pytest.approx(whole.probabilities, abs=1e-5)
    assert len(reading.cue) == len(whole.cue) and np.abs(np.subtract(reading.cue, whole.cue)).max() < 1e-5
    assert (streamed.mel is not None) == plot
    if streamed.mel is not None:
        assert streamed.mel.shape == (80, len(whole.cue)) and streamed.step == 1


def test_a_stream_reads_as_the_bundles_reader_reads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle with a reader (the default): the stream's 16 kHz windows are `read_emotion`'s, sample for sample
    (the encoder is stood in for by four statistics of each 20 ms: the windows are what is tested)."""
    from ainn_cli import speech_encoder
    from ainn_cli.models.reader import Reader, ReaderConfig

    def encode_window(wave16k: np.ndarray, layers: tuple[int, ...] = (4,)) -> np.ndarray:
        frames = -(-len(wave16k) // 320)
        rows = np.pad(wave16k, (0, frames * 320 - len(wave16k))).reshape(frames, 320)
        return np.stack([rows.mean(1), rows.std(1), rows.max(1), rows.min(1)], axis=1).astype(np.float32)

    monkeypatch.setattr(speech_encoder, "encode_window", encode_window)
    pipe = chunked(bundle(tmp_path, "paper"))
    torch.manual_seed(0)
    pipe.reader = Reader(ReaderConfig(dim=4)).eval()
    sf.write(tmp_path / "x.wav", speech(70.0, 16000), 16000)  # three 30-second windows
    whole = pipe.strength(read_audio(tmp_path / "x.wav"))
    streamed = read_file(pipe, AudioReader(tmp_path / "x.wav"), plot=True)
    assert streamed.reading == whole and streamed.reading.frame_rate == speech_encoder.STATES_PER_SECOND
    assert streamed.mel is not None and streamed.mel.shape[0] == 80


@pytest.mark.slow
def test_a_long_plot_is_decimated(tmp_path: Path) -> None:
    pipe = chunked(bundle(tmp_path, "paper"))
    sf.write(tmp_path / "x.wav", speech(40.0), SAMPLE_RATE)  # 3445 frames: two per plotted column
    streamed = read_file(pipe, AudioReader(tmp_path / "x.wav"), plot=True)
    assert streamed.step == 2 and streamed.mel is not None and streamed.mel.shape == (80, 1723) <= (80, PLOT_COLUMNS)
    whole = read_audio(tmp_path / "x.wav").samples
    from ainn_cli.mel import log_mel

    mel = log_mel(whole)[0].numpy()
    np.testing.assert_allclose(streamed.mel[:, :-1], mel[:, : 3444].reshape(80, -1, 2).mean(axis=2), atol=1e-4)


@pytest.mark.slow
def test_out_of_memory_halves_the_chunks_and_starts_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = chunked(bundle(tmp_path, "paper"))
    pipe.chunk_frames = 256  # MIN_CHUNK is 128: one halving left
    sf.write(tmp_path / "src.wav", speech(12.0), SAMPLE_RATE)
    expected = convert_file(pipe, AudioReader(tmp_path / "src.wav"), None, tmp_path / "a.wav", emotion="sad")
    generate, sizes = pipe._generate, []

    def short_of_memory(frames: torch.Tensor, *args: object) -> torch.Tensor:
        sizes.append(frames.shape[-1])
        if len(sizes) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return generate(frames, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pipe, "_generate", short_of_memory)
    got = convert_file(pipe, AudioReader(tmp_path / "src.wav"), None, tmp_path / "b.wav", emotion="sad")
    assert max(sizes[2:]) <= 128 + 2 * 96 < max(sizes[:2]) == 256 + 2 * 96 and got.emotion == expected.emotion
    assert sf.info(tmp_path / "b.wav").frames == sf.info(tmp_path / "a.wav").frames
    monkeypatch.setattr(pipe, "_generate", lambda *a: (_ for _ in ()).throw(torch.OutOfMemoryError("again")))
    with pytest.raises(DeviceError, match="out of memory"):
        convert_file(pipe, AudioReader(tmp_path / "src.wav"), None, tmp_path / "c.wav", emotion="sad")
    assert not (tmp_path / "c.wav").exists() and not list(tmp_path.glob(".*"))


@pytest.mark.slow
def test_a_long_file_shows_its_progress_and_time_left(tiny_bundle: Path, tmp_path: Path) -> None:
    """In a pipe or a log: a line every 5 % with the time left; --quiet and --json show none."""
    seconds = STREAM_SECONDS + 10
    sf.write(tmp_path / "long.wav", speech(seconds), SAMPLE_RATE)
    sf.write(tmp_path / "ref.wav", tone(1.0, f0=220), SAMPLE_RATE)
    args = ["convert", str(tmp_path / "long.wav"), str(tmp_path / "ref.wav"), "--model", str(tiny_bundle),
            "--device", "cpu"]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "out.wav")])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if "% done" in line]
    assert len(lines) >= 10 and lines[-1].startswith("converting long.wav, % done 100/100")
    assert any(line.endswith(" left") for line in lines)
    assert sf.info(tmp_path / "out.wav").frames == int(seconds * SAMPLE_RATE)
    for quiet in (["--quiet"], ["--json"]):
        result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / f"q{len(quiet[0])}.wav"), *quiet])
        assert result.exit_code == 0 and "% done" not in result.output
    reading = CliRunner().invoke(app, ["strength", str(tmp_path / "long.wav"), "--model", str(tiny_bundle),
                                       "--device", "cpu", "--plot", str(tmp_path / "long.png")])
    assert reading.exit_code == 0 and "reading long.wav, % done 100/100" in reading.stderr
    assert (tmp_path / "long.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_a_stream_that_cannot_write_leaves_nothing(tiny_bundle: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk while the passes keep their frames beside the output: one line naming the output, no file."""
    from ainn_cli import chunks

    sf.write(tmp_path / "long.wav", speech(STREAM_SECONDS + 5), SAMPLE_RATE)
    monkeypatch.setattr(chunks.FrameStore, "append", lambda *a: (_ for _ in ()).throw(OSError(28, "No space left "
                                                                                             "on device")))
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "long.wav"), "--emotion", "sad", "-o",
                                      str(tmp_path / "out.wav"), "--model", str(tiny_bundle), "--device", "cpu",
                                      "--quiet"])
    line = one_line(result, 1, "out.wav: cannot write (No space left on device)")
    assert line and sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]


def test_a_stream_without_room_for_it_is_refused_before_it_starts(tiny_bundle: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil
    from collections import namedtuple

    sf.write(tmp_path / "long.wav", speech(STREAM_SECONDS + 5), SAMPLE_RATE)
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**6, 10**6))
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "long.wav"), "--emotion", "sad", "-o",
                                      str(tmp_path / "out.wav"), "--model", str(tiny_bundle), "--device", "cpu"])
    one_line(result, 1, "out.wav: a stream of this length needs up to 0.0", "GB are free")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.wav"]
