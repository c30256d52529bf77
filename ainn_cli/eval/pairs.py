"""What `ainn evaluate` reads: rows of a pairs CSV, or the parallel same-speaker pairs of an ESD split."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from ainn_cli.emotions import LABELS, canonical
from ainn_cli.errors import UsageError

EMOTIONS = LABELS  # the order of the table's rows
ESD_EMOTIONS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")  # the order of ESD's id blocks
ESD_SPEAKERS = tuple(f"{n:04d}" for n in range(11, 21))  # the English speakers 0011-0020
ESD_BLOCK = 350  # utterances per emotion and speaker
ESD_SPLITS = {"evaluation": range(0, 20), "test": range(20, 50), "train": range(50, 350)}  # index k in a block


@dataclass(frozen=True)
class Pair:
    """One row to evaluate: a converted wav, or a source + reference to convert; absolute paths."""

    id: str
    target_emotion: str
    converted: Path | None = None
    source: Path | None = None
    reference: Path | None = None
    target: Path | None = None  # a real recording of the sentence in the target emotion
    text: str = ""
    target_strength: float | None = None


MAX_CSV_BYTES = 64 << 20  # a pairs CSV of a million rows is about 100 bytes a row


def read_pairs(file: Path) -> list[Pair]:
    """Rows of a CSV with columns `converted` or `source` + `reference`, `target_emotion`, and optional
    `target`, `text`, `target_strength`, `id`; paths are relative to the CSV's folder."""
    if not file.is_file():
        raise UsageError(f"{file}: no such file" if not file.exists() else f"{file}: not a regular file")
    if file.stat().st_size > MAX_CSV_BYTES:
        raise UsageError(f"{file}: more than {MAX_CSV_BYTES >> 20} MiB; is it a pairs CSV?")
    try:
        with open(file, newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except UnicodeDecodeError as err:
        raise UsageError(f"{file}: not UTF-8 text (byte {err.start}); save the CSV as UTF-8") from None
    except (csv.Error, OSError) as err:  # a field over csv's 131,072 characters, a NUL byte, a read error
        raise UsageError(f"{file}: not a readable CSV ({str(err).strip() or type(err).__name__})") from None
    if not rows:
        raise UsageError(f"{file}: no rows (expected a header and one row per utterance)")
    return [_pair(row, file.parent, f"{file}, line {line}") for line, row in enumerate(rows, start=2)]


def _pair(row: dict[str, str | None], base: Path, where: str) -> Pair:
    def get(key: str) -> str:
        return (row.get(key) or "").strip()

    def path(key: str) -> Path | None:
        return base / get(key) if get(key) else None

    emotion = canonical(get("target_emotion"))
    if emotion is None:
        raise UsageError(f"{where}: target_emotion {get('target_emotion')!r} is not one of {', '.join(EMOTIONS)}")
    converted, source, reference = path("converted"), path("source"), path("reference")
    if converted is not None:
        name = converted.stem
    elif source is not None and reference is not None:
        name = f"{source.stem}-{reference.stem}"
    else:
        raise UsageError(f"{where}: give a `converted` wav, or a `source` and a `reference` to convert")
    return Pair(get("id") or name, emotion, converted, source, reference, path("target"), get("text"),
                _strength(get("target_strength"), where))


def _strength(text: str, where: str) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        value = math.nan
    if value is not None and not 0.0 <= value <= 1.0:
        raise UsageError(f"{where}: target_strength must be a number from 0 to 1, got {text!r}")
    return value


def esd_pairs(root: Path, split: str) -> list[Pair]:
    """Neutral -> {angry, happy, sad, surprise} same-speaker parallel pairs of one ESD split.

    Files `<speaker>/<Emotion>/[...]/<speaker>_<id>.wav`, speakers 0011-0020. Sentence k (0-based)
    is the same text in every emotion block:

        id = 350 * block + k + 1      block: 0 Neutral, 1 Angry, 2 Happy, 3 Sad, 4 Surprise
        k  = 0..19 evaluation | 20..49 test | 50..349 train

    source = Neutral k, target = Emotion k (the parallel recording), reference = Emotion k' with k'
    the next sentence of the split present on disk (cyclically), so it never says the source's words.
    Transcripts come from `<speaker>/<speaker>.txt` when present.
    """
    if split not in ESD_SPLITS:
        raise UsageError(f"--split must be one of {', '.join(ESD_SPLITS)}, got {split!r}")
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder (expected the ESD root holding 0011 .. 0020)")
    pairs = []
    for speaker in ESD_SPEAKERS:
        files = {p.stem: p for p in sorted((root / speaker).rglob("*.wav"))}
        texts = _esd_texts(root / speaker / f"{speaker}.txt")
        for block, emotion in enumerate(ESD_EMOTIONS[1:], start=1):
            pairs += _esd_block(speaker, block, emotion.lower(), ESD_SPLITS[split], files, texts)
    if not pairs:
        raise UsageError(f"{root}: no ESD {split} pairs (expected <speaker>/<Emotion>/<speaker>_<id>.wav, "
                         "speakers 0011-0020)")
    return pairs


def _esd_block(speaker: str, block: int, emotion: str, ks: range, files: dict[str, Path],
               texts: dict[str, str]) -> list[Pair]:
    def name(b: int, k: int) -> str:
        return f"{speaker}_{ESD_BLOCK * b + k + 1:06d}"

    emotional = [k for k in ks if name(block, k) in files]
    pairs = []
    for k in (k for k in emotional if name(0, k) in files):
        others = [j for j in emotional if j != k]
        if others:
            ref = next((j for j in others if j > k), others[0])
            pairs.append(Pair(f"{name(0, k)}-{emotion}", emotion, source=files[name(0, k)],
                              reference=files[name(block, ref)], target=files[name(block, k)],
                              text=texts.get(name(0, k), "")))
    return pairs


def _esd_texts(file: Path) -> dict[str, str]:
    """`<id>\\t<text>\\t<emotion>` lines of an ESD transcript (UTF-8 or UTF-16); {} when absent."""
    if not file.is_file():
        return {}
    raw = file.read_bytes()
    for encoding in ("utf-8-sig", "utf-16", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    rows = (line.split("\t") for line in text.splitlines())
    return {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2}
