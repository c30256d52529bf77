"""Prosody predictor P: the emotional prosody change asked of a source, from e and the strength level.

    e (B, E), level (B,) --MLP--> change (B, 4) = level * gain * [d median ln f0, ln range ratio,
                                                                   d energy, ln duration ratio]

`level` is the calibrated strength in [0, 1]: level 0 gives exactly the source's prosody
(`ainn_cli/prosody.py` measures and applies the change).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ainn_cli.prosody import CHANGES

MATCH_ENERGY = ("off", "lower", "match")


@dataclass(frozen=True)
class ProsodyPredictorConfig:
    emotion_dim: int = 128
    hidden: int = 128
    changes: int = len(CHANGES)
    gain: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # per change (CHANGES order): < 1 tempers what was fitted
    # reshape path, after G: "lower" brings the output's mean speech energy down to the asked one (the source's
    # plus the predicted change) where G made it louder, so that strength 0 keeps the source's level and sad
    # gets quieter; "match" also raises it (it cost words on LibriSpeech validation readers); "off" leaves G's
    match_energy: str = "off"
    # G's emotion embedding goes from the neutral prototype (strength 0) to the reference's (strength 1) along
    # the unit sphere, so that at strength 0 G too is asked for neutral speech, not only the prosody path
    blend_neutral: bool = False


class ProsodyPredictor(nn.Module):
    """Emotion embedding `(B, E)` and strength level `(B,)` -> prosody change `(B, 4)` (see CHANGES)."""

    def __init__(self, config: ProsodyPredictorConfig) -> None:
        super().__init__()
        if len(config.gain) != config.changes:
            raise ValueError(f"gain has {len(config.gain)} entries for {config.changes} changes")
        if config.match_energy not in MATCH_ENERGY:
            raise ValueError(f"match_energy must be one of {MATCH_ENERGY}, got {config.match_energy!r}")
        self.config = config
        self.net = nn.Sequential(
            nn.Linear(config.emotion_dim + 1, config.hidden), nn.GELU(),
            nn.Linear(config.hidden, config.hidden), nn.GELU(), nn.Linear(config.hidden, config.changes),
        )

    def forward(self, emotion: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        fitted = self.net(torch.cat([emotion, level.unsqueeze(-1)], dim=-1))
        gain = torch.tensor(self.config.gain, dtype=fitted.dtype, device=fitted.device)
        change: torch.Tensor = level.unsqueeze(-1) * gain * fitted
        return change
