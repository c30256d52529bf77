"""The training layout: mono 16-bit FLAC at SAMPLE_RATE, one manifest.csv per corpus folder.

A recording is decoded from memory (soundfile), downmixed, resampled with soxr at its highest quality and written
through a hidden temporary file, so an interrupted conversion leaves whole files only; re-running skips them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf
import soxr

from ainn_cli.audio import MAX_RATE, MIN_RATE, SAMPLE_RATE
from ainn_cli.corpora.archive import Member
from ainn_cli.errors import CorpusError
from ainn_cli.files import atomic_output, replace_file

FULL_SCALE = 1.0 - 2.0**-15  # the largest 16-bit sample: resampled intersample peaks are clipped here
MAX_SECONDS = 600.0  # a recording longer than this is not a corpus utterance


@dataclass(frozen=True)
class Recording:
    """An archive member a corpus keeps: where it goes (relative to the corpus folder, named by the corpus module
    from the parsed member name, never the name itself) and its manifest row (without the duration)."""

    member: Member
    path: str
    row: dict[str, str]


class Corpus(Protocol):
    """What `build.convert_archive` asks of a corpus module."""

    columns: tuple[str, ...]

    def wanted(self, member: Member) -> bool:
        """Is this member one of the recordings (by its name alone)?"""

    def recording(self, member: Member) -> Recording | None:
        """The member as a recording to keep (None: not one; a listing may be read for later)."""

    def finish(self, rows: list[dict[str, str]], earlier: list[dict[str, str]]) -> list[dict[str, str]]:
        """The manifest's rows from this run's and an earlier manifest's."""


def convert_recording(data: bytes, name: str, out: Path) -> float:
    """Write the recording `data` (any format libsndfile reads) to `out` as mono 16-bit FLAC at SAMPLE_RATE;
    returns its duration in seconds. `name` (the archive member) is for messages only."""
    try:
        with sf.SoundFile(io.BytesIO(data)) as handle:
            rate = handle.samplerate
            if not MIN_RATE <= rate <= MAX_RATE or handle.frames > MAX_SECONDS * rate:
                raise CorpusError(f"{name}: {handle.frames} frames at {rate} Hz is not a corpus recording")
            wave = handle.read(dtype="float64", always_2d=True).mean(axis=1)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise CorpusError(f"{name}: not a readable recording ({err})") from None
    if rate != SAMPLE_RATE:
        wave = soxr.resample(wave, rate, SAMPLE_RATE, quality="VHQ")
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(out, overwrite=True) as tmp:
        sf.write(tmp, np.clip(wave, -1.0, FULL_SCALE), SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    return len(wave) / SAMPLE_RATE


def duration(path: Path) -> float:
    """Seconds of a FLAC written earlier (read from its header)."""
    info = sf.info(str(path))
    return float(info.frames) / float(info.samplerate)


def write_manifest(path: Path, columns: Sequence[str], rows: Iterable[dict[str, str]]) -> Path:
    """manifest.csv, written at once (a crash leaves the old one or the new one)."""
    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(rows)

    return replace_file(path, write)


def read_manifest(path: Path) -> list[dict[str, str]]:
    """The rows of an earlier manifest.csv (none when there is none)."""
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))
