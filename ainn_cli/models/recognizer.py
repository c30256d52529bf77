"""Recognition network R = {Rc, Rs} and the class-activation emotional cue M.

    mel (B, 80, T) -> trunk -> F (B, C, T) --mean_t--> Rc: logits (B, K)
                                 |-- CAM_c(t) = ReLU(sum_k w_ck F_k(t)), M = CAM / max_t CAM   (B, T)
                                 '-- pool with M --> Rs: strength in (0, 1)   (B,)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.audio import N_MELS
from ainn_cli.emotions import LABELS
from ainn_cli.models.layers import EPS, ConvBlock, weighted_mean


@dataclass(frozen=True)
class RecognizerConfig:
    n_mels: int = N_MELS
    channels: int = 192
    layers: int = 4
    kernel: int = 5
    labels: tuple[str, ...] = LABELS
    # frames of edge copies added at both ends before the trunk and cropped after: the convolutions'
    # zero padding reads as a loud burst next to silence (log-mel about -11.5) and put a spike into the
    # cue at the edges; 0 keeps the behaviour the older bundles were trained and calibrated with
    edge_pad: int = 0


@dataclass(frozen=True)
class Recognition:
    """What R reads from a batch of mels."""

    logits: torch.Tensor  # (B, K)
    strength: torch.Tensor  # (B,) raw Rs output in (0, 1), before calibration
    cue: torch.Tensor  # (B, T) emotional cue M in [0, 1], detached
    features: torch.Tensor  # (B, C, T) trunk feature maps


class Recognizer(nn.Module):
    """Emotion category (Rc), strength (Rs) and the emotional cue M of a log-mel `(B, 80, T)`."""

    def __init__(self, config: RecognizerConfig) -> None:
        super().__init__()
        self.config = config
        self.inp = nn.Conv1d(config.n_mels, config.channels, config.kernel, padding=config.kernel // 2)
        self.trunk = nn.ModuleList(
            ConvBlock(config.channels, config.kernel, dilation=2**i) for i in range(config.layers)
        )
        self.classifier = nn.Linear(config.channels, len(config.labels))
        self.strength_head = nn.Sequential(
            nn.Linear(config.channels, config.channels), nn.GELU(), nn.Linear(config.channels, 1)
        )

    def features(self, mel: torch.Tensor) -> torch.Tensor:
        """Trunk feature maps `(B, C, T)`."""
        pad = self.config.edge_pad
        x = self.inp(F.pad(mel, (pad, pad), mode="replicate") if pad else mel)
        for block in self.trunk:
            x = block(x)
        return F.gelu(x[..., pad : x.shape[-1] - pad] if pad else x)

    def cue(self, features: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Class activation map of `classes` `(B,)` over time, max-normalised: `(B, T)`, detached."""
        weights = self.classifier.weight[classes]  # (B, C)
        cam = torch.relu(torch.einsum("bct,bc->bt", features, weights))
        return (cam / (cam.amax(dim=-1, keepdim=True) + EPS)).detach()

    def forward(self, mel: torch.Tensor, classes: torch.Tensor | None = None) -> Recognition:
        """Read a mel `(B, 80, T)`; the cue follows `classes` `(B,)` when given, else the prediction."""
        return self.heads(self.features(mel), classes)

    def heads(self, feats: torch.Tensor, classes: torch.Tensor | None = None) -> Recognition:
        """Rc, the cue and Rs on trunk features `(B, C, T)` (computed at once or chunk by chunk)."""
        logits = self.classifier(feats.mean(dim=-1))
        chosen = logits.argmax(dim=-1) if classes is None else classes
        cue = self.cue(feats, chosen)
        strength = torch.sigmoid(self.strength_head(weighted_mean(feats, cue + EPS)).squeeze(-1))
        return Recognition(logits=logits, strength=strength, cue=cue, features=feats)
