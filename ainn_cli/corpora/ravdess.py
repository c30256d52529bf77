"""RAVDESS speech -> `Actor_XX/03-01-EE-II-SS-RR-AA.flac` and manifest.csv, as the training code reads it
(`ravdess:DIR`: the official names carry emotion, intensity, statement, repetition and actor).

Columns: path, actor, gender, emotion, intensity (normal/strong), statement, repetition, text, duration_s.
Odd actor numbers are male. Only audio-only speech files (modality 03, vocal channel 01) are taken.
"""

from __future__ import annotations

import re

from ainn_cli.corpora.archive import Member
from ainn_cli.corpora.layout import Recording

NAME = re.compile(r"^03-01-(0[1-8])-(0[12])-(0[12])-(0[12])-(\d\d)\.wav$")
EMOTIONS = {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
            "07": "disgust", "08": "surprised"}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}


class Ravdess:
    """The RAVDESS speech archive's recordings, by their official names, each once."""

    columns: tuple[str, ...] = (
        "path", "actor", "gender", "emotion", "intensity", "statement", "repetition", "text", "duration_s")

    def __init__(self) -> None:
        self.seen: set[str] = set()

    def wanted(self, member: Member) -> bool:
        return NAME.match(member.basename) is not None

    def recording(self, member: Member) -> Recording | None:
        found = NAME.match(member.basename)
        if found is None:
            return None
        emotion, intensity, statement, repetition, actor = found.groups()
        path = f"Actor_{actor}/{member.basename.removesuffix('.wav')}.flac"
        if path in self.seen:  # some repackagings hold every actor twice
            return None
        self.seen.add(path)
        return Recording(member, path, {
            "path": path, "actor": actor, "gender": "male" if int(actor) % 2 else "female",
            "emotion": EMOTIONS[emotion], "intensity": INTENSITIES[intensity], "statement": statement,
            "repetition": repetition, "text": STATEMENTS[statement]})

    def finish(self, rows: list[dict[str, str]], earlier: list[dict[str, str]]) -> list[dict[str, str]]:
        """The manifest's rows: this run's, sorted by path (one archive holds the whole corpus)."""
        return sorted(rows, key=lambda row: row["path"])
