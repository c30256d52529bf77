"""Hand controls of a conversion's prosody, in the units people use, parsed without torch.

    --pitch ST      the output's median pitch ST semitones from the source's   (auto+ST / auto-ST: the model's + ST)
    --level DB      its speech level DB decibels from the source's             (auto+DB / auto-DB)
    --rate X        its speaking rate X times the source's (1.2: faster)        (auto*X: the model's times X)
    --keep-length   exactly as many samples as the source (the rate stays the source's)

`auto` (the default) is what the model's prosody path asks for. The pipeline turns these into its change
`(1, 4)` = [d median ln f0, ln range ratio, d energy, ln duration ratio] (`prosody.CHANGES`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ainn_cli.errors import UsageError

AUTO = "auto"
PITCH_RANGE = 24.0  # semitones either way (two octaves)
LEVEL_RANGE = 40.0  # dB either way
RATE_RANGE = (0.61, 1.64)  # speaking-rate factors the duration can follow (prosody.MAX_RATE_CHANGE: e^-0.5..e^0.5)
_OFFSET = re.compile(r"^auto\s*([+\-*])\s*(.+)$")


@dataclass(frozen=True)
class Setting:
    """One hand control: `value` (semitones, dB or a rate factor), set outright or `relative` to the model's."""

    value: float
    relative: bool = False


@dataclass(frozen=True)
class Controls:
    """What `Pipeline.convert` is told by hand on top of (or instead of) the model's prosody change."""

    pitch: Setting | None = None  # semitones
    level: Setting | None = None  # dB
    rate: Setting | None = None  # speaking-rate factor
    keep_length: bool = False

    @property
    def prosody(self) -> bool:
        """Does any control need a prosody path (pitch, level or rate)?"""
        return any(s is not None for s in (self.pitch, self.level, self.rate))


def parse_controls(pitch: str | None = None, level: str | None = None, rate: str | None = None,
                   keep_length: bool = False) -> Controls:
    """The options as Controls; a value out of range or unreadable is a UsageError naming the option."""
    controls = Controls(_additive("--pitch", pitch, PITCH_RANGE), _additive("--level", level, LEVEL_RANGE),
                        _rate(rate), keep_length)
    if keep_length and controls.rate is not None:
        raise UsageError("--keep-length keeps the source's rate; leave out --rate")
    return controls


def _additive(option: str, text: str | None, bound: float) -> Setting | None:
    """`N` (set) or `auto+N` / `auto-N` (offset), |N| <= bound."""
    if text is None or text.strip() == AUTO:
        return None
    offset = _OFFSET.match(text.strip())
    if offset is not None and offset[1] == "*":
        raise UsageError(f"{option} {text!r}: use a number, auto+N or auto-N")
    value = _number(option, offset[2] if offset else text)
    value = -value if offset is not None and offset[1] == "-" else value
    if abs(value) > bound:
        raise UsageError(f"{option} {text!r}: at most {bound:g} either way")
    return Setting(value, relative=offset is not None)


def _rate(text: str | None) -> Setting | None:
    """`X` (set) or `auto*X` (the model's rate times X), the result kept within RATE_RANGE by the pipeline."""
    if text is None or text.strip() == AUTO:
        return None
    offset = _OFFSET.match(text.strip())
    if offset is not None and offset[1] != "*":
        raise UsageError(f"--rate {text!r}: use a factor such as 1.1, or auto*1.1")
    value = _number("--rate", offset[2] if offset else text)
    low, high = RATE_RANGE
    if not low <= value <= high:
        raise UsageError(f"--rate {text!r}: between {low} and {high} (x{1 / high:.2f}..x{1 / low:.2f} the duration)")
    return Setting(value, relative=offset is not None)


def _number(option: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{option} {text!r}: not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{option} {text!r}: not a finite number")
    return value
