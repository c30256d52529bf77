"""Emotion encoder Ee: an utterance-level emotion embedding steered by the emotional cue M.

    mel (B, 80, T) -> conv trunk -> H (B, C, T) --attentive pooling x M--> linear -> e (B, D), |e| = 1
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.audio import N_MELS
from ainn_cli.models.layers import ConvBlock, attentive_pool


@dataclass(frozen=True)
class EmotionEncoderConfig:
    n_mels: int = N_MELS
    channels: int = 192
    layers: int = 3
    kernel: int = 5
    embed_dim: int = 128
    use_cue: bool = True  # False reproduces the "Stage I without the emotional cue" ablation


class EmotionEncoder(nn.Module):
    """Log-mel `(B, 80, T)` and cue `(B, T)` -> unit-norm emotion embedding `(B, D)`."""

    def __init__(self, config: EmotionEncoderConfig) -> None:
        super().__init__()
        self.config = config
        ch = config.channels
        self.inp = nn.Conv1d(config.n_mels, ch, config.kernel, padding=config.kernel // 2)
        self.blocks = nn.ModuleList(ConvBlock(ch, config.kernel, dilation=2**i) for i in range(config.layers))
        self.score = nn.Conv1d(ch, 1, 1)
        self.out = nn.Linear(ch, config.embed_dim)

    def forward(self, mel: torch.Tensor, cue: torch.Tensor) -> torch.Tensor:
        x = self.inp(mel)
        for block in self.blocks:
            x = block(x)
        x = F.gelu(x)
        pooled = attentive_pool(x, self.score(x).squeeze(1), cue if self.config.use_cue else None)
        return F.normalize(self.out(pooled), dim=-1)
