"""The frame-level pitch contour (per-emotion shape over the speech span) and guidance away from G's neutral."""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from ainn_cli.bundle import load_bundle
from ainn_cli.models.predictor import ProsodyPredictor, ProsodyPredictorConfig
from ainn_cli.prosody import Prosody, apply_change, contour_curve, speech_span
from ainn_cli.train.fit_contour import error, fit_table, with_contour
from ainn_cli.train.parallel import measure_contour
from tests.test_prosody import _g_output, _pipeline_with_predictor


def _speech(first: int, last: int, frames: int = 60) -> torch.Tensor:
    """Frame energy `(1, T)`: speech (0) from `first` to `last`, silence (-20, far under SPEECH_DB) around it."""
    out = torch.full((1, frames), -20.0)
    out[0, first:last] = 0.0
    return out


def test_the_contour_is_laid_over_the_speech_span_and_held_beyond_it() -> None:
    energy = _speech(10, 50)
    assert [int(x) for x in speech_span(energy)] == [10, 50]
    curve = contour_curve(torch.tensor([[0.0, 1.0, 2.0, 3.0]]), energy)[0]
    # part k of 4 covers 10 frames; its value sits at the part's centre, linear in between
    for k, centre in enumerate((15, 25, 35, 45)):
        assert float(curve[centre]) == pytest.approx(k)
    assert float(curve[20]) == pytest.approx(0.5)
    assert torch.all(curve[:15] == 0) and torch.all(curve[45:] == 3)
    assert torch.all(contour_curve(torch.zeros(1, 4), _speech(0, 0)) == 0)  # silence only: nothing moves


def test_apply_change_adds_the_contour_to_ln_f0_only() -> None:
    energy = _speech(10, 50)
    source = Prosody(log_f0=torch.full((1, 60), math.log(150.0)), voiced=torch.ones(1, 60), energy=energy)
    change = torch.tensor([[0.1, 0.0, 0.2, 0.0]])
    contour = torch.tensor([[0.0, 0.0, 0.3, 0.6]])
    plain = apply_change(source, change)
    shaped = apply_change(source, change, contour)
    torch.testing.assert_close(shaped.log_f0 - plain.log_f0, contour_curve(contour, energy))
    torch.testing.assert_close(shaped.energy, plain.energy)
    torch.testing.assert_close(apply_change(source, change, torch.zeros(1, 4)).log_f0, plain.log_f0)


def test_the_contour_table_scales_with_level_and_gain_and_is_optional() -> None:
    plain = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8))
    assert plain.contour(torch.tensor([1]), torch.ones(1)) is None
    assert not any(k.startswith("contour") for k in plain.state_dict())  # bundles without a table load as before
    table = torch.arange(10.0).view(5, 2)
    shaped = with_contour(plain, table, gain=0.5)
    assert shaped.config.contour_bins == 2 and shaped.config.contour_classes == 5
    torch.testing.assert_close(shaped.contour(torch.tensor([3, 4]), torch.tensor([1.0, 0.5])),
                               torch.tensor([[3.0, 3.5], [2.0, 2.25]]))
    at_zero = shaped.contour(torch.tensor([4]), torch.zeros(1))
    assert at_zero is not None and torch.all(at_zero == 0)  # strength 0: the source's shape
    torch.testing.assert_close(shaped.net[0].weight, plain.net[0].weight)


def test_measure_contour_finds_a_final_rise_of_an_aligned_take() -> None:
    frames = 80
    energy = _speech(0, frames, frames)
    log_f0 = torch.full((1, frames), math.log(120.0))
    rise = torch.zeros(1, frames)
    rise[0, 70:] = math.log(2 ** (6 / 12))  # the last eighth of the take ends 6 semitones up
    source = Prosody(log_f0=log_f0, voiced=torch.ones(1, frames), energy=energy)
    target = Prosody(log_f0=log_f0 + 0.2 + rise, voiced=torch.ones(1, frames), energy=energy)
    values, known = measure_contour(source, target, np.arange(frames), bins=8)
    assert known.all()
    np.testing.assert_allclose(values[:7], 0.0, atol=1e-6)  # the overall shift is the predictor's, not the shape's
    assert values[7] * 12 / math.log(2) == pytest.approx(6.0, abs=1e-3)
    unvoiced = Prosody(log_f0=target.log_f0, voiced=torch.zeros(1, frames), energy=energy)
    assert not measure_contour(source, unvoiced, np.arange(frames), bins=8)[1].any()


def test_fit_table_recovers_each_emotion_s_shape_and_leaves_neutral_flat() -> None:
    torch.manual_seed(0)
    truth = torch.randn(5, 8) * 0.1
    truth[0] = 0
    label = torch.randint(1, 5, (400,))
    level = torch.where(torch.rand(400) < 0.5, 0.5, 1.0)
    contour = level[:, None] * truth[label] + 0.05 * torch.randn(400, 8)
    known = (torch.rand(400, 8) < 0.9).float()
    table = fit_table((label, level, contour, known), classes=5, neutral=0)
    assert torch.all(table[0] == 0) and (table - truth).abs().max() < 0.03
    data = (label, level, contour, known)
    assert error(table, data) < error(torch.zeros_like(table), data)


@pytest.mark.slow
def test_a_contour_changes_the_conversion_only_above_strength_zero(tmp_path: Path) -> None:
    from ainn_cli.bundle import save_bundle
    from tests.conftest import tone

    source = tone(1.0)
    flat = _pipeline_with_predictor(tmp_path, blend_neutral=True)
    bundle = load_bundle(flat.bundle.path)
    table = torch.zeros(5, 4)
    table[1] = torch.tensor([0.0, 0.0, 0.2, 0.5])  # angry rises at the end
    predictor = cast(ProsodyPredictor, bundle.modules["prosody"])
    shaped_path = save_bundle(tmp_path / "shaped", bundle.info,
                              {**bundle.modules, "prosody": with_contour(predictor, table, 1.0)})
    from ainn_cli.pipeline import load_pipeline

    shaped = load_pipeline(str(shaped_path), "cpu")
    torch.testing.assert_close(_g_output(shaped, source, emotion="angry", strength=0.0),
                               _g_output(flat, source, emotion="angry", strength=0.0))
    assert (_g_output(shaped, source, emotion="angry", strength=1.0)
            - _g_output(flat, source, emotion="angry", strength=1.0)).abs().max() > 1e-2
    torch.testing.assert_close(_g_output(shaped, source, emotion="sad", strength=1.0),  # sad's row is zero
                               _g_output(flat, source, emotion="sad", strength=1.0))
    told = shaped.convert(source, emotion="angry", strength=0.5).prosody
    assert told is not None and told.pitch_end_semitones == pytest.approx(0.5 * 0.5 * 12 / math.log(2), abs=1e-3)
    flat_told = flat.convert(source, emotion="angry").prosody
    assert flat_told is not None and flat_told.pitch_end_semitones == 0.0


def test_the_summary_line_names_the_ending_only_where_a_contour_moves_it() -> None:
    from ainn_cli.display import _prosody_text

    change = {"pitch_semitones": 3.06, "pitch_range": 1.25, "energy_db": 6.0, "duration": 1.1}
    assert _prosody_text(change) == ", pitch +3.1 st x1.25 range, +6.0 dB, duration x1.10"
    assert _prosody_text({**change, "pitch_end_semitones": 0.0}) == _prosody_text(change)
    assert _prosody_text({**change, "pitch_end_semitones": 4.62}) == (
        ", pitch +3.1 st x1.25 range, ending +4.6 st, +6.0 dB, duration x1.10")


@pytest.mark.slow
def test_guidance_extrapolates_g_away_from_its_neutral_output(tmp_path: Path) -> None:
    """guidance w: G(n) + w (G(e) - G(n)) on the same reshaped content; w = 0 is G's neutral, w = 1 is off."""
    from tests.conftest import tone

    source = tone(1.0)
    out = {w: _g_output(_pipeline_with_predictor(tmp_path, blend_neutral=True, guidance=w), source,
                        emotion="angry", strength=1.0) for w in (0.0, 1.0, 3.0)}
    assert (out[1.0] - out[0.0]).abs().max() > 1e-2
    torch.testing.assert_close(out[3.0], out[0.0] + 3.0 * (out[1.0] - out[0.0]), atol=1e-4, rtol=1e-4)
    at_zero = {w: _g_output(_pipeline_with_predictor(tmp_path, blend_neutral=True, guidance=w), source,
                            emotion="angry", strength=0.0) for w in (1.0, 3.0)}
    torch.testing.assert_close(at_zero[3.0], at_zero[1.0])  # strength 0 asks G for neutral: nothing to push


def test_a_low_voice_keeps_the_reshaped_source_s_harmonics_under_g_s_envelope(tmp_path: Path) -> None:
    """low_voice_hz: a source below it gets G's envelope over the (reshaped) source's fine structure; above it,
    and with the option off, G's output is untouched."""
    from ainn_cli.mel import log_mel
    from ainn_cli.prosody import split_envelope
    from tests.conftest import tone

    source = tone(1.0, f0=140.0)
    off = _g_output(_pipeline_with_predictor(tmp_path, blend_neutral=True), source, emotion="angry", strength=0.0)
    above = _g_output(_pipeline_with_predictor(tmp_path, blend_neutral=True, low_voice_hz=100.0), source,
                      emotion="angry", strength=0.0)
    low = _g_output(_pipeline_with_predictor(tmp_path, blend_neutral=True, low_voice_hz=200.0), source,
                    emotion="angry", strength=0.0)
    torch.testing.assert_close(above, off)
    torch.testing.assert_close(split_envelope(low)[0], split_envelope(off)[0], atol=1e-4, rtol=1e-4)
    mel = log_mel(source).reshape(1, 80, -1)  # strength 0 reshapes nothing: the source's own harmonics
    harmonics = split_envelope(mel)[1][..., : low.shape[-1]]
    assert (split_envelope(low)[1] - harmonics).abs().max() < 0.05  # (the pipeline's front end differs a hair)
    assert (split_envelope(off)[1] - harmonics).abs().max() > 1.0  # the tiny G's own harmonics are far off


def test_mean_f0_is_nan_without_voiced_speech() -> None:
    from ainn_cli.prosody import Prosody, mean_f0

    energy = torch.zeros(2, 50)
    log_f0 = torch.full((2, 50), math.log(110.0))
    voiced = torch.stack([torch.ones(50), torch.zeros(50)])
    hz = mean_f0(Prosody(log_f0=log_f0, voiced=voiced, energy=energy))
    assert hz[0].item() == pytest.approx(110.0, rel=1e-4) and torch.isnan(hz[1])
