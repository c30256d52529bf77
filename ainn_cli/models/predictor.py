"""Prosody predictor P: the emotional prosody change asked of a source, from e and the strength level.

    e (B, E), level (B,) --MLP--> change (B, 4) = level * gain * [d median ln f0, ln range ratio,
                                                                   d energy, ln duration ratio]
    + level * rate_weight * ln(source rate / reference rate) on the duration   (optional, `rate_weight` > 0: the
                                   reference's tempo relative to the source's; ainn_cli/rate.py reads the rates)
    emotion label (B,), level (B,) --table--> contour (B, K) = level * contour_gain * ln f0 offsets over the
                                   speech span (optional, `contour_bins` > 0: the shape of the pitch change in time)

The contour is one row per emotion label (the recognizer's reading of the reference), not a function of e:
fitted on e, the shape came out the same for every emotion (the speaker in e overfits before the emotion
does), while the per-emotion mean shape lowers the error on validation actors (train/fit_contour.py).

`level` is the calibrated strength in [0, 1]: level 0 gives exactly the source's prosody
(`ainn_cli/prosody.py` measures and applies the change).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
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
    # gets quieter, and where G made it quieter than the source (a loud, normalised recording: G renders about
    # 10 dB under it) raises the vocoded waveform to the source's level, or to the asked one where that is lower
    # or was set by hand (`prosody.level_lift`); "match" raises the mel itself to the asked level (it cost words
    # on LibriSpeech validation readers); "off" leaves G's
    match_energy: str = "off"
    # G's emotion embedding goes from the neutral prototype (strength 0) to the reference's (strength 1) along
    # the unit sphere, so that at strength 0 G too is asked for neutral speech, not only the prosody path
    blend_neutral: bool = False
    # G's output is pushed away from what G makes of the neutral prototype: G(n) + guidance (G(e) - G(n)), G run
    # twice. 1 = off. Neither strength 0 (e = n with blend_neutral) nor the prosody path changes
    guidance: float = 1.0
    # frame-level shape of the f0 change (e.g. surprise's rise at the end): K values over the speech span per
    # emotion label (prosody.contour_curve), fitted on RAVDESS's DTW-aligned takes (train/fit_contour.py)
    contour_bins: int = 0
    contour_classes: int = 5  # rows of the table: the bundle's labels, neutral (all zero) first
    contour_gain: float = 1.0
    # reshape path: for a source whose mean voiced f0 is below this (Hz), the output keeps G's spectral envelope
    # over the reshaped source's harmonic fine structure: G pulls voices near 90 Hz up by 1-2 semitones (0.1-0.8
    # at 100-113 Hz) and smears their harmonics (measured on training speakers). 0 = off
    low_voice_hz: float = 0.0
    # the reference's speaking rate carried over: ln duration ratio += level * rate_weight * ln(source phones per
    # second / reference's), least-squares fitted on RAVDESS's parallel takes (train/fit_rate.py). 0 = none fitted
    rate_weight: float = 0.0
    # whether a conversion follows the rate unless told (`ainn convert --tempo/--no-tempo`, `Pipeline.convert(tempo=)`)
    follow_rate: bool = True


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
        # fitted in closed form (train/fit_contour.py), so a buffer, not a parameter; None without a table
        table = torch.zeros(config.contour_classes, config.contour_bins) if config.contour_bins > 0 else None
        self.contour_table: torch.Tensor | None
        self.register_buffer("contour_table", table)

    def forward(self, emotion: torch.Tensor, level: torch.Tensor, rate: torch.Tensor | None = None) -> torch.Tensor:
        """`rate` `(B,)`: ln(source speaking rate / reference's), used with `rate_weight` (None: 0)."""
        fitted = self.net(torch.cat([emotion, level.unsqueeze(-1)], dim=-1))
        gain = torch.tensor(self.config.gain, dtype=fitted.dtype, device=fitted.device)
        change: torch.Tensor = level.unsqueeze(-1) * gain * fitted
        if rate is not None and self.config.rate_weight != 0.0:
            duration = F.one_hot(torch.tensor(CHANGES.index("log_duration")), self.config.changes).to(change)
            change = change + (level * self.config.rate_weight * rate.to(change)).unsqueeze(-1) * duration
        return change

    def contour(self, label: torch.Tensor, level: torch.Tensor) -> torch.Tensor | None:
        """The frame-level ln f0 shape `(B, K)` of emotion `label` `(B,)` (indices) at `level` `(B,)`;
        None without a contour table."""
        if self.contour_table is None:
            return None
        shape: torch.Tensor = self.contour_table[label]
        return level.unsqueeze(-1).to(shape.dtype) * self.config.contour_gain * shape
