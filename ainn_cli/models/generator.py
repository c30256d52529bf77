"""Generator G: the official HiFi-GAN log-mel from content frames, conditioned on emotion and voice.

    [c (B, D, T); prosody (B, P, T)] -> conv -> [ConvBlock + FiLM(cond)] x L -> conv -> mel (B, 80, T)
    cond = [e (B, E), strength (B, 1), timbre s (B, S)]

With `prosody_dim = 3` (the `prosody` variant) G also reads the frame-level ln f0, voicing and
energy it must render (ainn_cli/pitch.py `prosody_inputs`); 0 is the paper's generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.audio import N_MELS
from ainn_cli.models.layers import ConvBlock


@dataclass(frozen=True)
class GeneratorConfig:
    n_mels: int = N_MELS
    content_dim: int = 64
    emotion_dim: int = 128
    timbre_dim: int = 64
    channels: int = 256
    layers: int = 6
    kernel: int = 5
    dilations: tuple[int, ...] = (1, 2, 4)
    prosody_dim: int = 0  # frame-level prosody channels read next to the content (0 or 3)

    @property
    def cond_dim(self) -> int:
        return self.emotion_dim + 1 + self.timbre_dim


class Generator(nn.Module):
    """Content `(B, D, T)`, emotion `(B, E)`, strength `(B,)`, timbre `(B, S)` and, when configured,
    prosody `(B, P, T)` -> log-mel `(B, 80, T)`."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        self.inp = nn.Conv1d(config.content_dim + config.prosody_dim, ch, config.kernel, padding=config.kernel // 2)
        self.blocks = nn.ModuleList(
            ConvBlock(ch, config.kernel, dilation=config.dilations[i % len(config.dilations)], cond_dim=config.cond_dim)
            for i in range(config.layers)
        )
        self.out = nn.Conv1d(ch, config.n_mels, config.kernel, padding=config.kernel // 2)

    def forward(
        self, content: torch.Tensor, emotion: torch.Tensor, strength: torch.Tensor, timbre: torch.Tensor,
        prosody: torch.Tensor | None = None,
    ) -> torch.Tensor:
        cond = torch.cat([emotion, strength.unsqueeze(-1), timbre], dim=-1)
        if self.config.prosody_dim:
            if prosody is None:
                raise ValueError("this generator renders a prosody contour: pass prosody (B, P, T)")
            content = torch.cat([content, prosody.to(content.dtype)], dim=1)
        x = self.inp(content)
        for block in self.blocks:
            x = block(x, cond)
        mel: torch.Tensor = self.out(F.gelu(x))
        return mel
