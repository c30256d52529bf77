"""Speaking rate (phones per second of speech, hama's phone recognizer) and its use in the prosody path."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ainn_cli.audio import HOP_LENGTH, SAMPLE_RATE, read_audio
from ainn_cli.errors import UsageError
from ainn_cli.mel import log_mel
from ainn_cli.models.predictor import ProsodyPredictor, ProsodyPredictorConfig
from ainn_cli.rate import around_speech, phone_count, rate_ratio, speaking_rate, speech_frames
from ainn_cli.train.fit_rate import fit_weight, report, with_rate
from tests.conftest import SAMPLES


def _clip(name: str) -> np.ndarray:
    samples: np.ndarray = read_audio(SAMPLES / name).samples
    return samples


def test_the_recognizer_hears_the_sentence_s_phones() -> None:
    """"Kids are talking by the door" is 18 phones (k ɪ d z ɑ ɹ t ɔ k ɪ ŋ b aɪ ð ə d ɔ ɹ); hama's reading may
    differ by a phone or two, silence has none."""
    assert 16 <= phone_count(_clip("neutral_actor23.flac")) <= 21
    assert phone_count(np.zeros(SAMPLE_RATE, dtype=np.float32)) == 0
    assert phone_count(np.zeros(10, dtype=np.float32)) == 0


def test_around_speech_keeps_speech_with_a_margin_and_drops_long_pauses() -> None:
    frames = 100
    speech = np.zeros(frames, dtype=bool)
    speech[10:20] = True
    speech[80:90] = True
    samples = np.arange(frames * HOP_LENGTH, dtype=np.float32)
    kept = around_speech(samples, speech, margin=3)
    assert len(kept) == 2 * 16 * HOP_LENGTH  # each run of 10 speech frames plus 3 either side
    assert kept[0] == 7 * HOP_LENGTH and kept[-1] == 93 * HOP_LENGTH - 1
    assert len(around_speech(samples, np.zeros(frames, dtype=bool), margin=3)) == 0


def test_pauses_do_not_slow_the_rate_and_silence_has_none() -> None:
    """The same speech with 2 s of silence in the middle has the same rate; silence has no rate."""
    clip = _clip("neutral_actor23.flac")
    speech = speech_frames(log_mel(clip))
    start, stop = np.flatnonzero(speech)[[0, -1]] * HOP_LENGTH
    middle = (start + stop) // 2
    paused = np.concatenate([clip[:middle], np.zeros(2 * SAMPLE_RATE, dtype=np.float32), clip[middle:]])
    plain, with_pause = speaking_rate(clip), speaking_rate(paused)
    assert plain is not None and with_pause is not None
    assert 8.0 < plain < 14.0  # phones per second of read speech
    assert with_pause == pytest.approx(plain, rel=0.15)
    assert speaking_rate(np.zeros(SAMPLE_RATE, dtype=np.float32)) is None


def test_a_slower_reference_asks_for_a_longer_output() -> None:
    assert rate_ratio(12.0, 8.0) == pytest.approx(math.log(1.5)) and rate_ratio(8.0, 12.0) < 0
    assert rate_ratio(None, 8.0) == 0.0 and rate_ratio(12.0, None) == 0.0


def test_the_predictor_adds_the_rate_term_to_the_duration_only_scaled_by_level() -> None:
    torch.manual_seed(0)
    plain = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8)).eval()
    rated = with_rate(plain, 0.5)
    e, level, rate = torch.randn(2, 8), torch.tensor([1.0, 0.5]), torch.tensor([0.4, -0.2])
    base = plain(e, level)
    torch.testing.assert_close(plain(e, level, rate), base)  # rate_weight 0: the rate is not used
    torch.testing.assert_close(rated(e, level), base)  # no rate (no reference): as before
    change = rated(e, level, rate)
    torch.testing.assert_close(change[:, :3], base[:, :3])
    torch.testing.assert_close(change[:, 3] - base[:, 3], torch.tensor([0.5 * 0.4, 0.5 * 0.5 * -0.2]))
    assert torch.all(rated(e, torch.zeros(2), rate) == 0)  # strength 0: the source's own prosody
    assert rated.config.rate_weight == 0.5
    torch.testing.assert_close(rated.net[0].weight, plain.net[0].weight)


def test_fit_weight_recovers_the_weight_and_the_report_counts_signs() -> None:
    rng = np.random.default_rng(0)
    x, level = torch.tensor(rng.normal(0, 0.2, 200)), torch.tensor(rng.choice([0.5, 1.0], 200))
    asked = 0.1 * level
    measured = asked + level * 0.6 * x + torch.tensor(rng.normal(0, 0.01, 200))
    data = (x, level, asked, measured, ["angry"] * 100 + ["sad"] * 100)
    assert fit_weight(data) == pytest.approx(0.6, abs=0.02)
    assert "RMSE" in report(data, 0.6) and "angry" in report(data, 0.6) and "sad" in report(data, 0.6)
    right = float(((asked + level * 0.6 * x) * measured > 0).float()[:100].mean())
    assert f"angry {100 * right:.0f} %" in report(data, 0.6)


@pytest.mark.slow
def test_the_default_follows_a_slower_reference_s_tempo_only_with_tempo() -> None:
    """The default has a fitted rate weight but does not use it unless asked (`tempo=True`, `--tempo`): then a
    reference that speaks slower than the source makes the output longer by
    exp(level * rate_weight * ln(source rate / reference rate))."""
    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(device="cpu")
    assert pipe.prosody is not None and pipe.can_follow_rate and not pipe.prosody.config.follow_rate
    source, reference = _clip("neutral_actor23.flac"), _clip("sad_actor24.flac")
    ratio = rate_ratio(speaking_rate(source), speaking_rate(reference))
    assert ratio > 0.1  # actor 24's sad take is much slower than actor 23's neutral one
    with_tempo = pipe.convert(source, reference, strength=1.0, tempo=True)
    plain = pipe.convert(source, reference, strength=1.0)
    np.testing.assert_array_equal(plain.wave, pipe.convert(source, reference, strength=1.0, tempo=False).wave)
    expected = math.exp(pipe.prosody.config.rate_weight * ratio)
    assert len(with_tempo.wave) / len(plain.wave) == pytest.approx(expected, rel=0.02)
    with pytest.raises(UsageError, match="reference"):
        pipe.convert(source, emotion="sad", tempo=True)


def test_a_long_wave_s_rate_is_read_on_its_first_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Time and memory stay bounded: the recognizer hears at most MAX_SECONDS of a one-minute wave."""
    from ainn_cli import rate

    heard: list[int] = []

    def counting_phones(samples: np.ndarray) -> int:
        heard.append(len(samples))
        return 30

    monkeypatch.setattr(rate, "phone_count", counting_phones)
    clip = np.tile(_clip("neutral_actor23.flac"), 16)  # about a minute
    assert rate.speaking_rate(clip) is not None
    assert heard[0] <= rate.MAX_SECONDS * SAMPLE_RATE


def test_the_pipeline_reads_a_reference_s_rate_once(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """`Pipeline._rate` is ln(source rate / reference rate); a reference converted again is not read again,
    and a model without `rate_weight` reads no rate."""
    from ainn_cli import pipeline as pipeline_module
    from tests.conftest import tone
    from tests.test_prosody import _pipeline_with_predictor

    calls: list[int] = []

    def fake_rate(samples: np.ndarray, mel: torch.Tensor | None = None) -> float:
        calls.append(len(samples))
        return 12.0 if len(samples) == SAMPLE_RATE else 8.0

    monkeypatch.setattr(pipeline_module, "speaking_rate", fake_rate)
    pipe = _pipeline_with_predictor(tmp_path, rate_weight=0.5)
    source, reference = tone(1.0), tone(2.0, f0=200.0)
    mel = log_mel(source)
    calls.clear()
    for _ in range(3):
        ratio = pipe._rate(source, mel, reference)
        assert ratio is not None and float(ratio[0]) == pytest.approx(math.log(12.0 / 8.0))
    assert calls == [SAMPLE_RATE, 2 * SAMPLE_RATE, SAMPLE_RATE, SAMPLE_RATE]  # the source each time, the reference once
    assert pipe._rate(source, mel, None) is None  # a prototype emotion has no tempo
    assert _pipeline_with_predictor(tmp_path)._rate(source, mel, reference) is None


def test_tempo_without_a_reference_is_a_usage_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from ainn_cli.cli import app

    result = CliRunner().invoke(app, ["convert", str(SAMPLES / "neutral_actor23.flac"), "--emotion", "sad", "--tempo",
                                      "-o", str(tmp_path / "out.wav")])
    assert result.exit_code == 2 and "--tempo" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out.wav").exists()
