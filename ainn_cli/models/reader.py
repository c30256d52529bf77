"""The reader: emotion category, strength and cue of a recording, from a frozen speech encoder's states.

    states (B, T, D) --standardise--> [--linear--> GELU] --linear--> frame logits z (B, T, K)
        logits (B, K)  = mean of z over the speech frames         (= the linear map of the pooled states)
        strength (B,)  = 1 - softmax(logits)[neutral]             (continuous: 0 neutral .. 1 full-blown)
        cue M (B, T)   = 1 - softmax(smoothed z)[neutral]         (where the emotion sits in time)

R (`recognizer.py`) reads log-mels and was fitted on one corpus; the reader reads the states of Whisper
tiny.en's encoder (`ainn_cli/speech_encoder.py`, frozen, never trained here; `layers` says after which
blocks) and is a per-frame
classifier fitted on several corpora (`train/fit_reader.py`): a multinomial logistic regression
(`hidden` 0) or a one-hidden-layer MLP applied to each frame. The utterance's logits are the mean of the
frames' logits, so each frame's logits are its share of the utterance's: the cue is a class activation
map in the sense of AINN's M. No conversion model is trained against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.emotions import LABELS, NEUTRAL

CUE_SMOOTHING = 101  # encoder states (50 per second): the cue is read over ~2 s (chosen on validation clips,
# docs/cross_corpus.md: over 0.26 s, 46 % of the frames of neutral clips read as emotional; over 2 s, 18 %)


@dataclass(frozen=True)
class ReaderConfig:
    dim: int = 384  # width of the states it reads: the encoder's 384 per layer read
    labels: tuple[str, ...] = LABELS
    encoder: str = "whisper-tiny.en"  # whose states it reads (speech_encoder.py)
    layers: tuple[int, ...] = (4,)  # after which of the encoder's blocks (1..4; 4 is its output), side by side
    speech_db: float = 35.0  # frames this far under a window's loudest one are not speech: not pooled
    hidden: int = 0  # width of the per-frame MLP's hidden layer; 0: a linear classifier on the states


@dataclass(frozen=True)
class ReaderOutput:
    logits: torch.Tensor  # (B, K)
    strength: torch.Tensor  # (B,) in [0, 1]
    cue: torch.Tensor  # (B, T) in [0, 1]


class Reader(nn.Module):
    """Category logits, strength and cue from encoder states `(B, T, D)` and a speech mask `(B, T)`."""

    center: torch.Tensor
    scale: torch.Tensor

    def __init__(self, config: ReaderConfig) -> None:
        super().__init__()
        if NEUTRAL not in config.labels:
            raise ValueError(f"the reader's labels {config.labels} need {NEUTRAL!r}: strength is 1 - P(neutral)")
        self.config = config
        self.register_buffer("center", torch.zeros(config.dim))
        self.register_buffer("scale", torch.ones(config.dim))
        self.hidden = nn.Linear(config.dim, config.hidden) if config.hidden else None
        self.classifier = nn.Linear(config.hidden or config.dim, len(config.labels))
        self.neutral = config.labels.index(NEUTRAL)

    def frame_logits(self, states: torch.Tensor) -> torch.Tensor:
        """`(B, T, D)` -> `(B, T, K)`."""
        x = (states - self.center) / self.scale
        if self.hidden is not None:
            x = F.gelu(self.hidden(x))
        z: torch.Tensor = self.classifier(x)
        return z

    def forward(self, states: torch.Tensor, speech: torch.Tensor | None = None) -> ReaderOutput:
        """`(B, T, D)` states and `(B, T)` speech mask (None: every frame) -> ReaderOutput."""
        z = self.frame_logits(states)
        weights = torch.ones_like(z[..., 0]) if speech is None else speech.to(z.dtype)
        weights = torch.where(weights.sum(-1, keepdim=True) > 0, weights, torch.ones_like(weights))
        logits = (z * weights.unsqueeze(-1)).sum(1) / weights.sum(-1, keepdim=True)
        strength = 1.0 - torch.softmax(logits.float(), dim=-1)[:, self.neutral]
        return ReaderOutput(logits=logits, strength=strength, cue=self.cue(z))

    def cue(self, z: torch.Tensor) -> torch.Tensor:
        """Frame logits `(B, T, K)` -> the emotional cue `(B, T)`: 1 - P(neutral) of the smoothed logits."""
        k = min(CUE_SMOOTHING, z.shape[1])
        smooth = F.avg_pool1d(z.transpose(1, 2).float(), k, stride=1, padding=k // 2, count_include_pad=False)
        return 1.0 - torch.softmax(smooth[..., : z.shape[1]], dim=1)[:, self.neutral]
