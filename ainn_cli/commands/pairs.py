"""`ainn convert --pairs LIST.csv`: conversions listed one per row, run like a folder (resumable, progress, a
summary; a row that fails is reported and the rest go on).

    source,reference,emotion,strength,output
    clips/a.wav,refs/angry.wav,,,a-angry.wav         a reference's emotion (and strength, unless given)
    clips/b.wav,,sad,0.5,                            a prototype emotion at strength 0.5; output b-sad.wav

`source` and `reference` are relative to the CSV's folder; `output` (default SOURCE-REFERENCE.wav or
SOURCE-EMOTION.wav) to the output folder (-o, default LIST-ainn/ beside the CSV).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ainn_cli.batch import Job, check_listed
from ainn_cli.errors import UsageError

COLUMNS = ("source", "reference", "emotion", "strength", "output")
MAX_ROWS = 1_000_000
MAX_CSV_BYTES = 256 << 20


def plan_pairs(listing: Path, out_dir: Path | None) -> tuple[list[Job], Path]:
    """The list's jobs (checked before anything is converted) and the output folder."""
    rows = _rows(listing)
    out = out_dir if out_dir is not None else listing.with_name(f"{listing.stem}-ainn")
    jobs = [_job(listing, out, number, row) for number, row in enumerate(rows, start=2)]
    if not jobs:
        raise UsageError(f"{listing}: no rows to convert")
    return check_listed(jobs, out), out


def _rows(listing: Path) -> list[dict[str, str]]:
    """The CSV's rows; a file that is not a conversion list is a UsageError naming what is wrong."""
    try:
        if listing.stat().st_size > MAX_CSV_BYTES:
            raise UsageError(f"{listing}: larger than {MAX_CSV_BYTES >> 20} MiB; not a conversion list")
        with open(listing, newline="") as handle:
            reader = csv.DictReader(handle, restval="")
            names = set(reader.fieldnames or [])
            if "source" not in names or not names & {"reference", "emotion"}:
                raise UsageError(f"{listing}: a conversion list needs the columns source and reference or emotion "
                                 f"(optional strength, output); it has {sorted(names)}")
            rows = []
            for row in reader:
                rows.append({k: (row.get(k) or "").strip() for k in COLUMNS})
                if len(rows) > MAX_ROWS:
                    raise UsageError(f"{listing}: more than {MAX_ROWS} rows")
    except FileNotFoundError:
        raise UsageError(f"--pairs {listing}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"{listing}: not a readable CSV ({err})") from None
    return rows


def _job(listing: Path, out_dir: Path, number: int, row: dict[str, str]) -> Job:
    """Row `number` (as a spreadsheet counts, the header being 1) as a Job."""
    where = f"{listing}: row {number}"
    if not row["source"]:
        raise UsageError(f"{where}: no source")
    if bool(row["reference"]) == bool(row["emotion"]):
        raise UsageError(f"{where}: give a reference or an emotion, one of them")
    source = listing.parent / row["source"]
    reference = listing.parent / row["reference"] if row["reference"] else None
    for given in (source, reference):
        if given is not None and not given.is_file():
            raise UsageError(f"{where}: {given} is not a file")
    tag = reference.stem if reference is not None else row["emotion"]
    name = Path(row["output"] or f"{source.stem}-{tag}.wav")
    if name.is_absolute() or ".." in name.parts:
        raise UsageError(f"{where}: output {name} must lie inside the output folder {out_dir}")
    output = out_dir / name
    return Job(source, reference, output, emotion=row["emotion"] or None, strength=_strength(where, row["strength"]))


def _strength(where: str, text: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{where}: strength {text!r} is not a number") from None
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise UsageError(f"{where}: strength {text} is not between 0 and 1")
    return value
