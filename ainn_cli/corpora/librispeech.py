"""LibriSpeech subsets -> `READER/READER-CHAPTER-UTT.flac` and manifest.csv with the official transcripts, as the
training code reads it (`librispeech:DIR`: all neutral read speech). Several subsets can share one folder; the
manifest keeps every subset's rows.

Columns: path, speaker, gender, utt_id, duration_s, text, subset, chapter, source_path (the member in the archive).
Gender comes from the archive's SPEAKERS.TXT, the text from each chapter's READER-CHAPTER.trans.txt.
"""

from __future__ import annotations

import re

from ainn_cli.corpora.archive import Member
from ainn_cli.corpora.layout import Recording

AUDIO = re.compile(r"^(\d{1,7})-(\d{1,7})-(\d{1,5})\.flac$")
TRANSCRIPT = re.compile(r"^\d{1,7}-\d{1,7}\.trans\.txt$")
SPEAKERS = "SPEAKERS.TXT"
GENDERS = {"M": "male", "F": "female"}


class LibriSpeech:
    """One subset's recordings; its transcripts and speakers' genders are gathered as the archive passes by."""

    columns: tuple[str, ...] = (
        "path", "speaker", "gender", "utt_id", "duration_s", "text", "subset", "chapter", "source_path")

    def __init__(self, subset: str) -> None:
        self.subset = subset
        self.texts: dict[str, str] = {}  # utterance id -> transcript
        self.genders: dict[str, str] = {}  # reader id -> male/female

    def wanted(self, member: Member) -> bool:
        return AUDIO.match(member.basename) is not None

    def recording(self, member: Member) -> Recording | None:
        if TRANSCRIPT.match(member.basename):
            self._transcripts(member.read())
        elif member.basename == SPEAKERS:
            self._speakers(member.read())
        found = AUDIO.match(member.basename)
        if found is None:
            return None
        reader, chapter, _ = found.groups()
        utt = member.basename.removesuffix(".flac")
        path = f"{reader}/{utt}.flac"
        return Recording(member, path, {"path": path, "speaker": reader, "utt_id": utt, "subset": self.subset,
                                        "chapter": chapter, "source_path": member.name})

    def finish(self, rows: list[dict[str, str]], earlier: list[dict[str, str]]) -> list[dict[str, str]]:
        """This subset's rows with their text and gender, after the other subsets' rows of an earlier manifest."""
        done = [{**row, "text": self.texts.get(row["utt_id"], ""), "gender": self.genders.get(row["speaker"], "")}
                for row in rows]
        kept = [row for row in earlier if row.get("subset") != self.subset]
        return sorted(kept + done, key=lambda row: row["path"])

    def _transcripts(self, data: bytes) -> None:
        for line in data.decode("utf-8", errors="replace").splitlines():
            utt, _, text = line.strip().partition(" ")
            if utt:
                self.texts[utt] = text.strip()

    def _speakers(self, data: bytes) -> None:
        """`ID | SEX | SUBSET | MINUTES | NAME` lines; `;` starts a comment."""
        for line in data.decode("utf-8", errors="replace").splitlines():
            fields = [f.strip() for f in line.split("|")]
            if len(fields) >= 2 and not line.startswith(";") and fields[1] in GENDERS:
                self.genders[fields[0]] = GENDERS[fields[1]]
