"""Content encoder Ec: frame-level content with emotion and utterance statistics removed.

    mel (B, 80, T) -> conv + instance-norm blocks -> bottleneck c (B, D, T)
    mel (B, 80, T) -> timbre convs --mean over the complement (1 - M) of the cue--> s (B, S)

The timbre vector s carries the voice of the source into the generator; it is pooled over the
frames the emotional cue marks as *not* emotional (the interactive split of AINN).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.audio import N_MELS
from ainn_cli.models.layers import ConvBlock, weighted_mean


@dataclass(frozen=True)
class ContentEncoderConfig:
    n_mels: int = N_MELS
    channels: int = 256
    layers: int = 4
    kernel: int = 5
    content_dim: int = 64
    timbre_dim: int = 64
    use_cue: bool = True  # False: the timbre is a plain mean over all frames (the no-cue ablations)


@dataclass(frozen=True)
class Content:
    frames: torch.Tensor  # (B, D, T) content code c
    timbre: torch.Tensor  # (B, S) voice vector s


class ContentEncoder(nn.Module):
    """Log-mel `(B, 80, T)` and cue `(B, T)` -> content frames `(B, D, T)` and timbre `(B, S)`."""

    def __init__(self, config: ContentEncoderConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        self.inp = nn.Conv1d(config.n_mels, ch, config.kernel, padding=config.kernel // 2)
        self.blocks = nn.ModuleList(
            ConvBlock(ch, config.kernel, dilation=1 + i % 2, norm="instance") for i in range(config.layers)
        )
        self.bottleneck = nn.Conv1d(ch, config.content_dim, 1)
        self.timbre_convs = nn.Sequential(
            nn.Conv1d(config.n_mels, ch, 3, padding=1), nn.GELU(), nn.Conv1d(ch, ch, 3, padding=1), nn.GELU()
        )
        self.timbre_out = nn.Linear(ch, config.timbre_dim)

    def forward(self, mel: torch.Tensor, cue: torch.Tensor, voice_mel: torch.Tensor | None = None) -> Content:
        """`voice_mel` `(B, 80, T)`, when given, is what the timbre is read from (training feeds the content
        branch a frequency-warped mel but wants the real voice); by default `mel` itself."""
        x = self.inp(mel)
        for block in self.blocks:
            x = block(x)
        frames = F.instance_norm(self.bottleneck(x))
        voice = mel if voice_mel is None else voice_mel
        weights = 1.0 - cue + 0.05 if self.config.use_cue else torch.ones_like(cue)
        timbre = self.timbre_out(weighted_mean(self.timbre_convs(voice), weights))
        return Content(frames=frames, timbre=timbre)
