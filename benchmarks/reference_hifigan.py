"""A straightforward HiFi-GAN V1 generator as the original implementation (jik876/hifi-gan) runs it:
weight-normed convolutions, `remove_weight_norm()` before inference, `torch.no_grad`, fp32.

It is the yardstick for our vocoder: the parity test loads the same weights into both, and the speed
benchmark compares a full ainn conversion with a copy-synthesis through this generator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import remove_weight_norm, weight_norm

from ainn_cli.models.vocoder import VocoderConfig


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


def remove_all_weight_norm(model: nn.Module) -> nn.Module:
    """What the original inference script does before synthesis."""
    for module in model.modules():
        if hasattr(module, "weight_g"):
            remove_weight_norm(module)
    return model
