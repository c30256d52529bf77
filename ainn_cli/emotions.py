"""The emotion labels ainn knows, in one place: their order, their other spellings, and the neutral rule.

The default model and every table list them in LABELS order; data sets spell some differently
(RAVDESS and ESD say "surprised"); neutral speech has strength 0 by definition.
"""

from __future__ import annotations

NEUTRAL = "neutral"
LABELS = (NEUTRAL, "angry", "happy", "sad", "surprise")  # neutral first: class 0 of every recognizer
ALIASES = {"surprised": "surprise"}


def canonical(name: str) -> str | None:
    """Our label for a spelling of one of LABELS (any case, surrounding spaces ignored), else None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in LABELS else None


def strength_of(label: str, strength: float) -> float:
    """Neutral speech has no emotional strength: 0 for neutral, else `strength`."""
    return 0.0 if label == NEUTRAL else strength
