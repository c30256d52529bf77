"""What a conversion did to the voice, measured on the two waveforms (not what was asked for).

    source (N,), output (M,) at SAMPLE_RATE --YIN--> median F0 of voiced frames --> pitch change in semitones
                                           --frames within 35 dB of the loudest--> speech level change in dB
                                           --M / N--> duration ratio

The prosody path asks G for a change; G and the vocoder render it only in part (a +14.9 dB request came out
+2.6 dB once). This is what `ainn convert` reports as measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.pitch import Pitch, yin

SPEECH_DB = 35.0  # frames this far under the loudest are not speech
FRAME = 256  # samples per level frame (the mel's hop)
MAX_SECONDS = 600.0  # longer sources are not measured (YIN over hours costs minutes)


@dataclass(frozen=True)
class MeasuredChange:
    """The output against the source: median pitch (st), speech level (dB), length ratio; NaN where a side has
    no voiced frame."""

    pitch_semitones: float
    level_db: float
    duration: float


def median_f0(pitch: Pitch) -> float:
    """Median F0 (Hz) of the voiced frames, NaN without any."""
    voiced = pitch.f0[pitch.voiced & (pitch.f0 > 0)]
    return float(np.median(voiced)) if len(voiced) else math.nan


def speech_level(wave: np.ndarray) -> float:
    """Mean power (dB re full scale) of the frames within SPEECH_DB of the loudest one."""
    usable = len(wave) // FRAME * FRAME
    if usable == 0:
        return math.nan
    power = np.square(wave[:usable].astype(np.float64)).reshape(-1, FRAME).mean(axis=1)
    db = 10.0 * np.log10(power + 1e-12)
    return float(10.0 * np.log10(np.mean(power[db > db.max() - SPEECH_DB]) + 1e-12))


def measure(source: np.ndarray, output: np.ndarray, source_pitch: Pitch | None = None) -> MeasuredChange | None:
    """The output's change against the source `(N,)`, `(M,)` at SAMPLE_RATE; None for sources over MAX_SECONDS.
    `source_pitch`: the source's YIN pitch where already computed."""
    if len(source) > MAX_SECONDS * SAMPLE_RATE or len(source) == 0:
        return None
    before = median_f0(source_pitch if source_pitch is not None else yin(source))
    after = median_f0(yin(output))
    return MeasuredChange(
        pitch_semitones=12.0 * math.log2(after / before) if before > 0 and after > 0 else math.nan,
        level_db=speech_level(output) - speech_level(source),
        duration=len(output) / len(source),
    )
