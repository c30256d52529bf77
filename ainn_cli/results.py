"""What the pipeline gives back: a recording's reading, the prosody change asked for, a conversion's result
(frozen dataclasses, no torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ainn_cli.audio import FRAME_RATE
from ainn_cli.measure import MeasuredChange


@dataclass(frozen=True)
class StrengthReading:
    """Emotion category, calibrated strength and the emotional cue of one recording."""

    label: str
    probabilities: dict[str, float]
    strength: float  # calibrated, 0 = neutral, 1 = full-blown
    cue: tuple[float, ...]  # emotional cue M per mel frame
    seconds: float
    frame_rate: float = FRAME_RATE


@dataclass(frozen=True)
class ProsodyChange:
    """What the prosody predictor asked for (the prosody variant): the output against the source."""

    pitch_semitones: float  # median pitch shift
    pitch_range: float  # ratio of the pitch contour's spread
    energy_db: float  # loudness change of the speech frames
    duration: float  # ratio of output to source length
    pitch_end_semitones: float = 0.0  # the contour's last value: how the end of speech moves beyond the shift


@dataclass(frozen=True)
class ConversionResult:
    wave: np.ndarray  # (N,) float32 at SAMPLE_RATE
    reference: StrengthReading | None  # None when converting to a prototype emotion
    emotion: str
    strength: float  # calibrated target strength of the output
    seconds: float  # of the source
    elapsed: float
    prosody: ProsodyChange | None = None  # None for models without a prosody path
    measured: MeasuredChange | None = None  # the output's change against the source, measured (measure.py)
    # the reference as the bundle's reader hears it (what `ainn strength` says), where the bundle has a reader: the
    # conversion follows the recognizer R (`reference`), and the two can disagree on speech unlike RAVDESS's
    heard: StrengthReading | None = None

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of compute per second of audio."""
        return self.elapsed / max(self.seconds, 1e-9)
