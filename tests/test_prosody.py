"""The explicit prosody path: YIN pitch, prosody statistics and changes, DTW, the warp, warm starts."""

from __future__ import annotations

import math
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from ainn_cli.audio import HOP_LENGTH, SAMPLE_RATE
from ainn_cli.bundle import load_bundle, save_bundle
from ainn_cli.mel import log_mel
from ainn_cli.models.emotion import EmotionEncoder
from ainn_cli.models.generator import Generator, GeneratorConfig
from ainn_cli.models.predictor import ProsodyPredictor, ProsodyPredictorConfig
from ainn_cli.models.recognizer import Recognizer
from ainn_cli.pipeline import Pipeline
from ainn_cli.pitch import Pitch, continuous_log_f0, energy, yin
from ainn_cli.prosody import (
    Prosody,
    apply_change,
    level_lift,
    level_plan,
    measure_change,
    new_length,
    reshape_mel,
    split_envelope,
    statistics,
)
from ainn_cli.train.augment import mel_centres, warp_factors, warp_mel
from ainn_cli.train.parallel import cepstra, dtw_warp
from ainn_cli.train.warmstart import warm_start
from tests.conftest import SAMPLES, make_tiny_bundle


def harmonic(f0: np.ndarray | float, seconds: float = 1.0) -> np.ndarray:
    """Harmonics of a (possibly time-varying) f0, `(N,)` at 22050 Hz."""
    n = int(seconds * SAMPLE_RATE)
    pitch = np.broadcast_to(np.asarray(f0, dtype=np.float64), (n,))
    phase = 2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE
    return (0.3 * cast(np.ndarray, sum(np.sin(k * phase) / k for k in range(1, 10)))).astype(np.float32)


@pytest.mark.parametrize("f0", [80.0, 150.0, 310.0, 600.0])
def test_yin_finds_the_pitch_of_a_harmonic_tone(f0: float) -> None:
    pitch = yin(harmonic(f0))
    assert len(pitch.f0) == SAMPLE_RATE // HOP_LENGTH
    assert pitch.voiced[2:-2].all()
    error = np.abs(12 * np.log2(pitch.f0[pitch.voiced] / f0))
    assert np.median(error) < 0.1 and error.max() < 0.5  # semitones


def test_yin_follows_a_glide_and_leaves_silence_unvoiced() -> None:
    n = SAMPLE_RATE
    glide = np.geomspace(120.0, 240.0, n)
    wave = np.concatenate([np.zeros(n // 2, np.float32), harmonic(glide), np.zeros(n // 2, np.float32)])
    pitch = yin(wave)
    frames = len(pitch.f0)
    assert not pitch.voiced[: frames // 4 - 4].any() and not pitch.voiced[-frames // 4 + 4 :].any()
    middle = slice(frames // 4 + 4, 3 * frames // 4 - 4)
    t = (np.arange(frames)[middle] * HOP_LENGTH + HOP_LENGTH // 2 - n // 2) / n
    expected = 120.0 * 2.0 ** np.clip(t, 0, 1)
    assert np.median(np.abs(12 * np.log2(pitch.f0[middle] / expected))) < 0.2


def test_yin_calls_a_file_of_digital_silence_unvoiced() -> None:
    """All zeros has no loudest frame to be quiet against, and d'(tau) of zeros reads as a perfect dip."""
    assert not yin(np.zeros(SAMPLE_RATE, np.float32)).voiced.any()
    assert yin(0.001 * harmonic(np.full(SAMPLE_RATE, 150.0))).voiced.mean() > 0.9  # quiet (-66 dBFS) but voiced


def test_yin_in_blocks_equals_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    wave = harmonic(np.geomspace(100.0, 300.0, 3 * SAMPLE_RATE), seconds=3.0)
    whole = yin(wave)
    monkeypatch.setattr("ainn_cli.pitch.BLOCK_FRAMES", 37)
    blocks = yin(wave)
    assert np.array_equal(whole.voiced, blocks.voiced)
    assert np.allclose(whole.f0, blocks.f0, rtol=1e-4)


def test_continuous_log_f0_interpolates_the_gaps() -> None:
    pitch = Pitch(f0=np.array([0, 100, 0, 0, 400, 0], np.float32), voiced=np.array([0, 1, 0, 0, 1, 0], bool))
    filled = np.exp(continuous_log_f0(pitch))
    assert np.allclose(filled, [100, 100, 100 * 4 ** (1 / 3), 100 * 4 ** (2 / 3), 400, 400], rtol=1e-5)
    silent = Pitch(f0=np.zeros(4, np.float32), voiced=np.zeros(4, bool))
    assert np.isfinite(continuous_log_f0(silent)).all()


def contour(frames: int = 200, f0: float = 150.0) -> Prosody:
    t = torch.arange(frames).float()
    log_f0 = math.log(f0) + 0.1 * torch.sin(t / 10)
    speech = (t > 20) & (t < 180)
    return Prosody(log_f0=log_f0[None], voiced=speech.float()[None],
                   energy=torch.where(speech, torch.tensor(-2.0), torch.tensor(-9.0))[None])


def test_a_zero_change_keeps_the_source_prosody() -> None:
    source = contour()
    same = apply_change(source, torch.zeros(1, 4))
    assert torch.allclose(same.log_f0, source.log_f0) and torch.allclose(same.energy, source.energy)
    assert new_length(200, torch.zeros(1, 4)) == 200


def test_a_change_moves_pitch_range_and_speech_energy_only() -> None:
    source = contour()
    change = torch.tensor([[math.log(2 ** (3 / 12)), math.log(1.5), 0.5, math.log(1.2)]])
    moved = apply_change(source, change)
    measured = measure_change(source, moved)[0].tolist()
    assert measured[0] == pytest.approx(float(change[0, 0]), abs=1e-4)  # +3 semitones
    assert measured[1] == pytest.approx(float(change[0, 1]), abs=1e-3)  # range x1.5
    assert float(moved.energy[0, 100] - source.energy[0, 100]) == pytest.approx(0.5, abs=1e-5)
    assert float(moved.energy[0, 0]) == pytest.approx(float(source.energy[0, 0]))  # silence is not raised
    assert new_length(200, change) == 240


def test_statistics_of_a_louder_longer_take() -> None:
    source = contour(200)
    target = Prosody(log_f0=source.log_f0 + 0.2, voiced=source.voiced, energy=source.energy + 1.0)
    stats = statistics(target) - statistics(source)
    assert float(stats[0, 0]) == pytest.approx(0.2, abs=1e-5) and float(stats[0, 2]) == pytest.approx(1.0, abs=1e-5)


def test_the_predictor_changes_nothing_at_strength_zero() -> None:
    predictor = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8))
    emb = torch.randn(3, 8)
    assert torch.equal(predictor(emb, torch.zeros(3)), torch.zeros(3, 4))
    assert predictor(emb, torch.ones(3)).abs().sum() > 0


def test_the_predictor_gain_scales_each_change_and_is_saved(tmp_path: Path) -> None:
    torch.manual_seed(0)
    plain = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8))
    tempered = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8, gain=(0.5, 1.0, 0.0, 2.0)))
    tempered.load_state_dict(plain.state_dict())
    emb, level = torch.randn(3, 8), torch.full((3,), 0.7)
    expected = plain(emb, level) * torch.tensor([0.5, 1.0, 0.0, 2.0])
    torch.testing.assert_close(tempered(emb, level), expected)
    with pytest.raises(ValueError, match="gain has 2 entries"):
        ProsodyPredictor(ProsodyPredictorConfig(gain=(1.0, 1.0)))
    source = load_bundle(make_tiny_bundle(tmp_path / "tiny"))
    width = cast(EmotionEncoder, source.modules["emotion_encoder"]).config.embed_dim
    predictor = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=width, gain=(0.75, 1, 1, 1)))
    saved = load_bundle(save_bundle(tmp_path / "gain", source.info, {**source.modules, "prosody": predictor}))
    assert cast(ProsodyPredictor, saved.modules["prosody"]).config.gain == (0.75, 1.0, 1.0, 1.0)


def test_dtw_undoes_a_known_time_stretch() -> None:
    rng = np.random.default_rng(0)
    source = np.cumsum(rng.standard_normal((80, 60)), axis=1)  # a smooth random "mel"
    stretch = np.repeat(np.arange(60), 2)[:100]  # the first 50 frames, each twice
    target = source[:, np.r_[stretch, np.arange(50, 60)]]
    warp = dtw_warp(cepstra(source), cepstra(target))
    assert len(warp) == 60 and np.all(np.diff(warp) >= 0)
    expected = np.r_[np.arange(50) * 2 + 0.5, np.arange(100, 110)]
    assert np.abs(warp - expected).max() <= 1.0


def test_the_warp_moves_spectral_peaks_by_its_factor() -> None:
    centres = mel_centres().numpy()
    mel = torch.full((1, 80, 4), -8.0)
    k = int(np.argmin(np.abs(centres - 1000)))
    mel[0, k] = 0.0
    assert torch.allclose(warp_mel(mel, torch.ones(1, 4)), mel, atol=1e-6)
    peak = int(warp_mel(mel, torch.full((1, 4), 1.2))[0, :, 0].argmax())
    assert abs(centres[peak] - 1200) < 0.6 * (centres[k + 1] - centres[k - 1])
    alpha = warp_factors(64, 100, torch.Generator().manual_seed(0))
    assert alpha.shape == (64, 100) and float(alpha.min()) > 0.75 and float(alpha.max()) < 1.33
    assert (alpha == 1).all(dim=1).any() and (alpha != 1).any(dim=1).any()


def test_generator_reads_prosody_channels() -> None:
    config = GeneratorConfig(content_dim=8, emotion_dim=8, timbre_dim=8, channels=16, layers=2, prosody_dim=3)
    generator = Generator(config)
    args = (torch.randn(1, 8, 20), torch.randn(1, 8), torch.rand(1), torch.randn(1, 8))
    with pytest.raises(ValueError, match="prosody"):
        generator(*args)
    out = generator(*args, torch.randn(1, 3, 20))
    assert out.shape == (1, 80, 20)


def test_warm_start_keeps_the_old_generator_and_opens_new_inputs_at_zero(tmp_path: Path) -> None:
    bundle = make_tiny_bundle(tmp_path / "tiny")
    config = GeneratorConfig(content_dim=8, emotion_dim=8, timbre_dim=8, channels=16, layers=2)
    old = Generator(config)
    warm_start({"generator": old}, bundle)
    new = Generator(GeneratorConfig(**{**config.__dict__, "prosody_dim": 3}))
    taken = warm_start({"generator": new}, bundle)
    assert taken["generator"] == len(new.state_dict())
    args = (torch.randn(1, 8, 20), torch.randn(1, 8), torch.rand(1), torch.randn(1, 8))
    with torch.no_grad():
        assert torch.allclose(old(*args), new(*args, torch.randn(1, 3, 20)), atol=1e-5)


def test_energy_is_the_log_mean_mel_magnitude() -> None:
    wave = harmonic(200.0)
    quiet = float(energy(log_mel(wave * 0.1)).median())
    loud = float(energy(log_mel(wave)).median())
    assert loud - quiet == pytest.approx(math.log(10), abs=0.01)


def test_envelope_and_fine_structure_add_up_and_the_envelope_is_smooth() -> None:
    mel = log_mel(harmonic(150.0))
    envelope, fine = split_envelope(mel)
    assert torch.allclose(envelope + fine, mel, atol=1e-4)
    assert envelope.diff(dim=1).abs().mean() < mel.diff(dim=1).abs().mean()  # harmonics live in `fine`


def test_reshape_mel_moves_the_pitch_and_keeps_the_envelope() -> None:
    wave = harmonic(150.0)
    mel = log_mel(wave)
    pitch = yin(wave)
    source = Prosody(log_f0=torch.from_numpy(continuous_log_f0(pitch))[None],
                     voiced=torch.from_numpy(pitch.voiced.astype(np.float32))[None], energy=energy(mel))
    change = torch.tensor([[math.log(2 ** (4 / 12)), 0.0, 0.3, math.log(1.25)]])
    out = reshape_mel(mel, source, change)
    assert out.shape[-1] == new_length(mel.shape[-1], change)
    frames = out.shape[-1]
    centres = mel_centres().numpy()
    high = torch.from_numpy(centres > 2000)  # unresolved harmonics: the envelope, which must stay (+ the gain)
    middle = slice(frames // 4, -frames // 4)
    profile_out = out[0][high][:, middle].mean(-1)
    profile_in = mel[0][high][:, mel.shape[-1] // 4 : -mel.shape[-1] // 4].mean(-1)
    assert (profile_out - profile_in - 0.3).abs().mean() < 0.5
    low = centres < 1000  # resolved harmonics: the first peak sits at f0
    before = centres[low][np.argmax(mel[0][low].mean(-1).numpy())]
    after = centres[low][np.argmax(out[0][low, frames // 4 : -frames // 4].mean(-1).numpy())]
    assert 12 * np.log2(after / before) == pytest.approx(4.0, abs=1.5)
    unchanged = reshape_mel(mel, source, torch.zeros(1, 4))
    assert torch.allclose(unchanged, mel, atol=1e-4)


def test_fit_prosody_learns_a_linear_change() -> None:
    from ainn_cli.train.fit_prosody import fit

    torch.manual_seed(0)
    emb = torch.nn.functional.normalize(torch.randn(200, 8), dim=-1)
    level = torch.rand(200)
    change = level[:, None] * (emb[:, :4] * 0.5)
    predictor = fit((emb[:160], level[:160], change[:160]), (emb[160:], level[160:], change[160:]), 600, seed=0)
    with torch.no_grad():
        error = (predictor(emb[160:], level[160:]) - change[160:]).abs().mean()
    assert error < 0.3 * change[160:].abs().mean()


def test_a_bundle_with_a_predictor_reshapes_the_source(tmp_path: Path) -> None:
    """Paper generator + predictor: the pipeline applies the predicted change to the source mel itself."""
    from ainn_cli.bundle import BundleInfo, Calibration, save_bundle
    from ainn_cli.emotions import LABELS
    from ainn_cli.pipeline import load_pipeline
    from tests.conftest import tiny_modules, tone

    predictor = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8))
    with torch.no_grad():
        last = cast(torch.nn.Linear, predictor.net[-1])
        last.bias.copy_(torch.tensor([math.log(2 ** (3 / 12)), 0.0, 0.5, math.log(1.2)]))
        last.weight.zero_()
    info = BundleInfo(name="tiny-prosody", labels=LABELS, calibration=Calibration(low={}, high={}),
                      prototypes={k: [0.35] * 8 for k in LABELS})
    bundle = save_bundle(tmp_path / "b", info, {**tiny_modules(), "prosody": predictor})
    pipe = load_pipeline(str(bundle), "cpu")
    source = tone(1.0)
    strong = pipe.convert(source, emotion="angry", strength=1.0)
    assert strong.prosody is not None and strong.prosody.pitch_semitones == pytest.approx(3.0, abs=1e-3)
    assert len(strong.wave) == round(len(source) * new_length(86, torch.tensor([[0, 0, 0, math.log(1.2)]])) / 86)
    flat = pipe.convert(source, emotion="angry", strength=0.0)
    assert flat.prosody is not None and flat.prosody.duration == 1.0 and len(flat.wave) == len(source)


def test_the_embedded_prosody_bundle_is_the_paper_model_plus_a_predictor() -> None:
    from ainn_cli.hub import registry

    bundles = registry()
    prosody, paper = load_bundle(bundles["prosody"]), load_bundle(bundles["paper"])
    assert isinstance(prosody.modules["prosody"], ProsodyPredictor) and "prosody" not in paper.modules
    for name, module in paper.modules.items():
        for key, value in module.state_dict().items():
            assert torch.equal(prosody.modules[name].state_dict()[key], value), f"{name}.{key}"
    angry = torch.tensor([prosody.info.prototypes["angry"]])
    change = prosody.modules["prosody"](angry, torch.ones(1))[0]
    assert change[0] > 0 and change[2] > 0  # a full-strength angry prototype raises pitch and energy


def test_the_default_fine_tunes_only_the_prosody_bundles_generator_and_recognizer() -> None:
    """The default (variant reshape) is `--model prosody` with G and R fine-tuned (scripts/train_default.sh):
    every other weight is the same, G still reads no prosody channels (the predictor's DSP reshapes the mel
    before it), the predictor asks for half the fitted f0 shift, G's output is never louder than asked, at
    strength 0 G is asked for the neutral prototype, G's change is doubled (guidance 2), a per-emotion
    pitch contour, twice the fitted one, is added (surprise ends higher than it starts), voices under
    115 Hz keep the reshaped source's harmonics, and the reference's speaking rate has a fitted weight that
    only `--tempo` uses."""
    from ainn_cli.hub import registry

    bundles = registry()
    default, prosody = load_bundle(bundles["default"]), load_bundle(bundles["prosody"])
    predictor = cast(ProsodyPredictor, default.modules["prosody"])
    config = predictor.config
    assert config.gain == (0.5, 1.0, 1.0, 1.0) and config.match_energy == "lower" and config.blend_neutral
    assert config.guidance == 2.0 and config.contour_bins == 8 and config.contour_gain == 2.0
    assert config.low_voice_hz == 115.0
    assert 0.2 < config.rate_weight < 0.6 and not config.follow_rate  # fitted, used only with --tempo
    contour = predictor.contour(torch.tensor([default.info.labels.index("surprise")]), torch.ones(1))
    assert contour is not None
    assert contour[0, -1] - contour[0, 0] > math.log(2 ** (6 / 12))
    assert (set(default.modules) == set(prosody.modules) | {"reader"}  # the reader reads for `ainn strength`
            and cast(Generator, default.modules["generator"]).config.prosody_dim == 0)
    changed = {name for name, module in prosody.modules.items()  # the reader is the default's own
               if any(not torch.equal(default.modules[name].state_dict()[k], v)
                      for k, v in module.state_dict().items())}
    assert changed == {"generator", "recognizer"}


def test_the_default_cue_has_no_spike_at_the_edges() -> None:
    """The recognizer pads with edge copies (edge_pad): the cue does not jump in the last or first frames
    (zero padding read as a loud burst next to silence and spiked them)."""
    from ainn_cli.audio import read_audio
    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(device="cpu")
    assert cast(Recognizer, pipe.recognizer).config.edge_pad > 0
    for clip in ("angry_actor24.flac", "neutral_actor23.flac", "sad_actor24.flac"):
        cue = np.array(pipe._read(read_audio(SAMPLES / clip).samples)[2].cue)  # R's cue, which steers Ec and Ee
        assert cue[-4:].max() <= cue[-24:-4].max() + 0.05 and cue[:4].max() <= cue[4:24].max() + 0.05, clip


def test_cached_bases_made_while_converting_still_train() -> None:
    """The DCT basis and band centres are cached: made first inside inference mode (a conversion), they
    must still serve a training loss with gradients in the same process."""
    from ainn_cli.prosody import _dct

    _dct.cache_clear()
    mel_centres.cache_clear()
    with torch.inference_mode():
        split_envelope(torch.randn(1, 80, 8))
        warp_mel(torch.randn(1, 80, 8), torch.ones(1, 8))
    mel = torch.randn(1, 80, 8, requires_grad=True)
    (split_envelope(mel)[0].sum() + warp_mel(mel, torch.full((1, 8), 1.1)).sum()).backward()  # type: ignore[no-untyped-call]
    assert mel.grad is not None and torch.isfinite(mel.grad).all()


def test_match_energy_shifts_the_whole_mel_to_the_asked_speech_energy() -> None:
    torch.manual_seed(0)
    like = torch.randn(2, 80, 120) - 4.0
    mel = like[..., :100] * 0.5 + torch.tensor([3.0, -6.0])[:, None, None]  # the first too loud, the second too quiet

    def match_energy(mode: str) -> torch.Tensor:
        """The mel shifted as `match_energy = mode` shifts G's output (`level_plan`)."""
        shift = level_plan(energy(mel), energy(like), mode)[0]
        assert shift is not None
        return mel + shift[:, None, None]

    out = match_energy("match")

    def speech(m: torch.Tensor) -> torch.Tensor:
        return statistics(Prosody(log_f0=torch.zeros(2, m.shape[-1]), voiced=torch.zeros(2, m.shape[-1]),
                                  energy=energy(m)))[:, 2]

    torch.testing.assert_close(speech(out), speech(like))
    shift = out - mel  # one constant per utterance: the spectral shape and the contour stay G's
    torch.testing.assert_close(shift, shift[..., :1, :1].expand_as(shift))
    lowered = match_energy("lower")  # only the loud one moves
    torch.testing.assert_close(lowered[0], out[0])
    torch.testing.assert_close(lowered[1], mel[1])
    assert level_plan(energy(mel), energy(like), "off") == (None, None)
    assert level_plan(energy(mel), energy(like), "match")[1] is None  # a waveform lift only with "lower"
    with pytest.raises(ValueError, match="match_energy must be one of"):
        ProsodyPredictor(ProsodyPredictorConfig(match_energy="yes"))


def test_level_lift_raises_only_to_the_quieter_of_the_asked_and_the_source_level() -> None:
    frames = torch.linspace(-1.0, 1.0, 50)  # a level that moves, so the speech mask is not trivial
    have, asked = frames[None] - 6.0, frames[None] - 2.0
    # the asked level above the output: raised to it, or only as far as a quieter source
    assert level_lift(have, asked).item() == pytest.approx(4.0, abs=1e-5)
    assert level_lift(have, asked, frames[None] - 5.0).item() == pytest.approx(1.0, abs=1e-5)
    assert level_lift(have, asked, frames[None]).item() == pytest.approx(4.0, abs=1e-5)  # a louder source: asked
    # never lowers: what is louder than asked is match_energy's to lower, in the mel
    assert level_lift(asked + 3.0, asked, frames[None]).item() == 0.0


def test_a_loud_source_keeps_its_level_and_a_level_set_by_hand_is_met() -> None:
    """A recording normalised to full scale comes out at its own level where nothing louder or quieter was asked
    (the generator alone renders it about 10 dB quieter); a `--level` set by hand is what the waveform is raised
    to, not only the source's level."""
    from ainn_cli.audio import read_audio
    from ainn_cli.controls import Controls, parse_controls
    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(device="cpu")
    quiet = read_audio(SAMPLES / "neutral_actor23.flac").samples
    loud = (quiet * (0.98 / np.abs(quiet).max())).astype(np.float32)  # as a producer's normalised take
    measured = pipe.convert(loud, emotion="neutral").measured
    assert measured is not None and measured.level_db == pytest.approx(0.0, abs=2.0)

    def level_db(controls: Controls) -> tuple[float, float]:
        """The output's speech level (dB re the source's, the mel's measure) and the waveform's lift in it."""
        with torch.inference_mode():
            mel = pipe._mel(loud)
            target = pipe._controlled(pipe._ask(loud, mel, None, None, "neutral", None)[3], controls)
            out, lift = pipe.convert_mel(mel, target, pipe.chunk_frames)
        assert lift is not None

        def speech(m: torch.Tensor) -> float:
            e = energy(m.float())
            return float(statistics(Prosody(log_f0=torch.zeros_like(e), voiced=torch.zeros_like(e), energy=e))[0, 2])

        return (speech(out) + float(lift[0]) - speech(mel)) * 20 / math.log(10), float(lift[0]) * 20 / math.log(10)

    kept, lift = level_db(Controls())
    assert kept == pytest.approx(0.0, abs=0.1) and lift > 3.0  # G's rendering of the loud take is raised back
    # +4 dB asked by hand (the reshape's gain, measured over the output's own speech frames: within 0.3 dB)
    assert level_db(parse_controls(level="auto+4"))[0] == pytest.approx(4.0, abs=0.3)


def _pipeline_with_predictor(tmp_path: Path, **options: object) -> Pipeline:
    """Tiny modules + a predictor asking +2 semitones and +3 dB per unit of strength."""
    from ainn_cli.bundle import BundleInfo, Calibration
    from ainn_cli.emotions import LABELS
    from ainn_cli.pipeline import load_pipeline
    from tests.conftest import tiny_modules

    predictor = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8, **options))  # type: ignore[arg-type]
    with torch.no_grad():
        last = cast(torch.nn.Linear, predictor.net[-1])
        last.bias.copy_(torch.tensor([math.log(2 ** (2 / 12)), 0.0, 0.35, 0.0]))
        last.weight.zero_()
    rng = np.random.default_rng(1)
    info = BundleInfo(name="tiny-options", labels=LABELS, calibration=Calibration(low={}, high={}),
                      prototypes={k: list(map(float, rng.standard_normal(8) / np.sqrt(8))) for k in LABELS})
    name = "-".join(f"{k}={v}" for k, v in sorted(options.items())) or "plain"
    return load_pipeline(str(save_bundle(tmp_path / name, info, {**tiny_modules(), "prosody": predictor})), "cpu")


def _g_output(pipe: Pipeline, source: np.ndarray, **convert: object) -> torch.Tensor:
    """The mel `(1, 80, T)` that `pipe.convert(source, **convert)` hands its vocoder."""
    seen: list[torch.Tensor] = []
    vocode = pipe.vocode

    def spy(mel: torch.Tensor, chunk: int = 2048) -> np.ndarray:
        seen.append(mel.float())
        return vocode(mel, chunk)

    pipe.vocode = spy  # type: ignore[method-assign, assignment]  # (mel, chunk) only, as the pipeline calls it
    pipe.convert(source, **convert)  # type: ignore[arg-type]
    pipe.vocode = vocode  # type: ignore[method-assign]
    return seen[0]


def test_blend_neutral_asks_g_for_neutral_speech_at_strength_zero(tmp_path: Path) -> None:
    from tests.conftest import tone

    source = tone(1.0)
    blended = _pipeline_with_predictor(tmp_path, blend_neutral=True)
    neutral = _g_output(blended, source, emotion="neutral")
    torch.testing.assert_close(_g_output(blended, source, emotion="angry", strength=0.0), neutral)
    assert (_g_output(blended, source, emotion="angry", strength=1.0) - neutral).abs().max() > 1e-2
    plain = _pipeline_with_predictor(tmp_path)  # without it, G still hears the angry prototype at strength 0
    assert (_g_output(plain, source, emotion="angry", strength=0.0) - _g_output(plain, source, emotion="neutral")
            ).abs().max() > 1e-3


@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_match_energy_gives_g_s_output_the_asked_loudness(tmp_path: Path, strength: float) -> None:
    """G's output gets the speech energy of the reshaped mel G was given (the source's at strength 0)."""
    from tests.conftest import tone

    source = tone(1.0)
    pipe = _pipeline_with_predictor(tmp_path, match_energy="match")
    given: list[torch.Tensor] = []
    encode = pipe._encode

    def spy(mel: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        given.append(mel.float())
        return encode(mel, chunk)

    pipe._encode = spy  # type: ignore[method-assign]
    matched = _g_output(pipe, source, emotion="angry", strength=strength)
    drifting = _g_output(_pipeline_with_predictor(tmp_path), source, emotion="angry", strength=strength)

    def loudness(m: torch.Tensor) -> float:
        return float(statistics(Prosody(log_f0=torch.zeros(1, m.shape[-1]),
                                        voiced=torch.zeros(1, m.shape[-1]), energy=energy(m)))[0, 2])

    if strength == 0.0:
        torch.testing.assert_close(given[0], log_mel(source), atol=0.05, rtol=0)  # the warp by 1 is near exact
    else:
        assert loudness(given[0]) > loudness(log_mel(source)) + 0.2  # the predictor's +3 dB
    assert loudness(matched) == pytest.approx(loudness(given[0]), abs=1e-3)
    assert abs(loudness(drifting) - loudness(given[0])) > 0.05  # the tiny random G drifts on its own
    lowered = _g_output(_pipeline_with_predictor(tmp_path, match_energy="lower"), source, emotion="angry",
                        strength=strength)
    assert loudness(lowered) == pytest.approx(min(loudness(drifting), loudness(given[0])), abs=1e-3)


def test_pairs_of_a_peak_normalised_corpus_keep_the_source_s_level() -> None:
    """EmoDB's copy is peak-normalised clip by clip: its angry take 6 dB down is not what the actor did."""
    from ainn_cli.prosody import CHANGES
    from ainn_cli.train.data import Corpus, Utterance, parallel_batch
    from ainn_cli.train.parallel import build_pairs
    from tests.conftest import tone

    neutral = log_mel(torch.from_numpy(tone(1.0, f0=140.0)))[0].numpy()
    angry = log_mel(torch.from_numpy(tone(1.0, f0=180.0) * 0.5))[0].numpy()
    pitches = [np.stack([np.full(m.shape[1], np.log(f)), np.ones(m.shape[1])]).astype(np.float32)
               for m, f in ((neutral, 140.0), (angry, 180.0))]
    for corpus, level_kept in (("emodb", True), ("ravdess", False)):
        takes = [Utterance("n.wav", f"{corpus}_01", "neutral", 0.0, take="a01-1"),
                 Utterance("a.wav", f"{corpus}_01", "angry", 1.0, take="a01-1")]
        (pair,) = build_pairs(takes, [neutral, angry], pitches)
        energy = pair.change[CHANGES.index("energy_shift")]
        assert (abs(energy) < 1e-5) == level_kept and (pair.gain != 0) == level_kept
        assert pair.change[CHANGES.index("log_f0_shift")] > 0.2  # the pitch change is kept either way
        frames = neutral.shape[1]  # the whole take: no random window
        batch = parallel_batch(Corpus(takes, [neutral, angry], ("neutral", "angry"), pitches, [pair]), frames, 1,
                               np.random.default_rng(0))
        shift = float((batch.target - torch.from_numpy(angry[:, pair.warp][None])).mean())
        assert shift == pytest.approx(pair.gain, abs=1e-4)  # the aligned target carries the gain (0: as it was)


def test_the_prosody_fit_leaves_out_changes_it_does_not_know() -> None:
    from ainn_cli.train.fit_prosody import masked_loss

    predicted, target = torch.zeros(2, 4), torch.tensor([[1.0, 1.0, 5.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    known = torch.tensor([[1.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert float(masked_loss(predicted, (target, known))) == pytest.approx(0.95)
    assert float(masked_loss(predicted, (target,))) > 0.95 * 2
