"""Training-time augmentation of the content encoder's input: a random, slowly varying frequency warp.

A warp by alpha moves every spectral component from f to alpha * f (pitch *and* formants), so the
content code cannot rely on where the harmonics are: the generator has to take pitch from the
prosody channels it is given. alpha = exp(u + a * sin(2 pi t / P + phi)), u ~ U(-MAX_LOG_WARP,
MAX_LOG_WARP), so the warp also changes along the utterance and a pitch contour cannot be read back
from the content either.
"""

from __future__ import annotations

import math

import torch

from ainn_cli.prosody import mel_centres, warp_mel

__all__ = ["mel_centres", "warp_factors", "warp_mel"]

MAX_LOG_WARP = 0.18  # ~ +-3 semitones
WOBBLE = 0.06  # amplitude of the slow variation (ln)
PERIOD_FRAMES = (40, 160)  # its period range, frames
KEEP = 0.15  # share of the batch left unwarped (inference sees unwarped mels)


def warp_factors(batch: int, frames: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random warp factors `(B, T)`, each row a constant times a slow wobble; KEEP of the rows are 1."""
    u = (torch.rand(batch, 1, generator=generator) * 2 - 1) * MAX_LOG_WARP
    period = torch.empty(batch, 1).uniform_(*PERIOD_FRAMES, generator=generator)
    phase = torch.rand(batch, 1, generator=generator) * 2 * math.pi
    t = torch.arange(frames).float().unsqueeze(0)
    log_alpha = u + WOBBLE * torch.sin(2 * math.pi * t / period + phase)
    keep = torch.rand(batch, 1, generator=generator) < KEEP
    return torch.where(keep, torch.zeros_like(log_alpha), log_alpha).exp()
