"""Plan and run conversions of files and folders: output names, pairing, resume, failures.

    SRC file  + REF file   -> one job
    SRC dir   + REF file   -> one job per audio file under SRC, tree mirrored under OUT
    SRC dir   + REF dir    -> --pairing same-name (matching stems) or all (every source x every reference)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ainn_cli.audio import is_audio_file, output_format
from ainn_cli.errors import AinnError, OutputError, OutputExists, UsageError
from ainn_cli.files import check_name, first_existing

if TYPE_CHECKING:
    from ainn_cli.display import Converted

PAIRINGS = ("same-name", "all")


@dataclass(frozen=True)
class Job:
    source: Path
    reference: Path | None  # None: convert to a prototype emotion
    output: Path


@dataclass
class BatchReport:
    converted: list[Converted] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def audio_files(root: Path, exclude: Path | None = None) -> list[Path]:
    """Audio files under `root`, recursively, sorted.

    Symlinked folders (so symlink loops) and unreadable folders are not entered; hidden files and folders
    (macOS `._x.wav` resource forks, our own `.x.wav.*.part` temp files) are skipped, and so is `exclude`
    (an output folder inside the source folder, whose results must not become new sources).
    """
    found: list[Path] = []
    skip = _real(exclude) if exclude is not None else None
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and _real(Path(folder) / d) != skip)
        found.extend(Path(folder) / f for f in sorted(files) if not f.startswith(".") and is_audio_file(Path(f)))
    return found


def shard_jobs(items: list[Job], spec: str | None) -> list[Job]:
    """Keep the K-th of N deterministic parts (`K/N`, 1-based) of a sorted job list."""
    if spec is None:
        return items
    try:
        k, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise UsageError(f"--shard {spec!r}: use K/N, e.g. 1/4") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard {spec!r}: need 1 <= K <= N")
    return [job for i, job in enumerate(items) if i % n == k - 1]


def plan(source: Path, reference: Path | None, output: Path | None, pairing: str = "same-name",
         tag: str = "") -> list[Job]:
    """All jobs for a source file or folder and a reference file or folder."""
    if pairing not in PAIRINGS:
        raise UsageError(f"--pairing must be one of {', '.join(PAIRINGS)}")
    for given in (source, reference, output):
        _check_stat(given)
    if not source.exists():
        raise UsageError(f"{source}: no such file or folder")
    if reference is not None and not reference.exists():
        raise UsageError(f"{reference}: no such file or folder")
    if source.is_file():
        if reference is not None and reference.is_dir():
            raise UsageError(f"{reference}: a reference folder needs a source folder")
        out = output or Path(f"{source.stem}-{reference.stem if reference else tag}.wav")
        check_name(out)
        if out.is_dir():
            out = out / f"{source.stem}-{reference.stem if reference else tag}.wav"
        check_name(out)
        output_format(out)
        return [_checked(Job(source, reference, out))]
    out_dir = output or source.with_name(f"{source.name}-ainn")
    _check_out_dir(out_dir)
    return _distinct([_checked(job) for job in _folder_jobs(source, reference, out_dir, pairing)])


def _check_stat(path: Path | None) -> None:
    """A path the system refuses to look up (a name too long, a loop of links) is a one-line UsageError."""
    if path is None:
        return
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as err:
        raise UsageError(f"{str(path)[:200]}: {err.strerror or err}") from None


def _distinct(jobs: list[Job]) -> list[Job]:
    """Refuse a plan in which two jobs would write one output (x.wav and x.flac; references sharing a name)."""
    seen: dict[Path, Job] = {}
    for job in jobs:
        other = seen.setdefault(job.output, job)
        if other is not job:
            raise UsageError(f"{_inputs(other)} and {_inputs(job)} would both be written to {job.output}; "
                             "rename one of them")
    return jobs


def _inputs(job: Job) -> str:
    return f"{job.source} with {job.reference}" if job.reference is not None else str(job.source)


def _check_out_dir(out_dir: Path) -> None:
    """Refuse an output folder that is, or lies under, something other than a folder (once, not per file)."""
    blocker = first_existing((out_dir, *out_dir.parents))
    if blocker is not None and not blocker.is_dir():
        where = "exists" if blocker == out_dir else f"lies on the way to {out_dir}"
        raise OutputError(f"{blocker}: {where} and is not a folder")


def _folder_jobs(source: Path, reference: Path | None, out_dir: Path, pairing: str) -> Iterator[Job]:
    refs = audio_files(reference) if reference is not None and reference.is_dir() else None
    by_stem: dict[str, list[Path]] = {}
    for ref in refs or []:
        by_stem.setdefault(ref.stem, []).append(ref)
    for src in audio_files(source, exclude=out_dir):
        rel = src.relative_to(source).with_suffix(".wav")
        if refs is None:
            yield Job(src, reference, out_dir / rel)
        elif pairing == "same-name":
            matches = by_stem.get(src.stem, [])
            if len(matches) > 1:
                raise UsageError(f"{src}: references {matches[0]} and {matches[1]} share its name; --pairing "
                                 "same-name needs one reference per name")
            if matches:
                yield Job(src, matches[0], out_dir / rel)
        else:
            for ref in refs:
                yield Job(src, ref, out_dir / rel.with_name(f"{rel.stem}__ref-{ref.stem}.wav"))


def explain_no_jobs(source: Path, reference: Path | None, pairing: str) -> str:
    """Why `plan` found nothing to convert, with what to do about it."""
    if not source.is_dir() or not audio_files(source):
        return f"{source}: no audio files to convert"
    if reference is not None and reference.is_dir():
        if not audio_files(reference):
            return f"{reference}: no audio files to take the emotion from"
        if pairing == "same-name":
            return (f"{source}: none of its {len(audio_files(source))} audio files has a reference of the same "
                    f"name in {reference} (--pairing same-name matches names without the extension); "
                    "use --pairing all to convert every file with every reference")
    return f"{source}: no audio files to convert outside the output folder"


def _checked(job: Job) -> Job:
    """Refuse an output that would replace one of its inputs."""
    for given in (job.source, job.reference):
        if given is not None and _real(job.output) == _real(given):
            raise OutputError(f"{job.output}: output would overwrite its input")
    return job


def _real(path: Path) -> str:
    """The canonical path; unlike Path.resolve() on Python < 3.13 it never raises on a symlink loop."""
    return os.path.realpath(path)


def run_jobs(jobs: list[Job], convert_one: Callable[[Job], Converted], overwrite: bool,
             on_done: Callable[[str], None] | None = None) -> BatchReport:
    """Convert each job, skipping existing outputs unless `overwrite`; a failure is recorded, not raised."""
    report = BatchReport()
    for job in jobs:
        status = _run_one(job, convert_one, overwrite, report)
        if on_done is not None:
            on_done(status)  # "converted", "skipped" or "failed"
    return report


def _run_one(job: Job, convert_one: Callable[[Job], Converted], overwrite: bool,
             report: BatchReport) -> str:
    """Convert, skip or record the failure of one job; returns "converted", "skipped" or "failed".

    An output that another run (into the same folder) writes meanwhile is skipped too, never replaced.
    """
    try:
        check_name(job.output)  # before converting, and before a name too long can break exists()
        if job.output.exists() and not overwrite:
            report.skipped.append(str(job.output))
            return "skipped"
        report.converted.append(convert_one(job))
    except OutputExists:
        report.skipped.append(str(job.output))
        return "skipped"
    except AinnError as err:
        reason = str(err)
    except (RuntimeError, ValueError, OSError, MemoryError) as err:  # a model or I/O failure on one file
        reason = f"{job.source}: {type(err).__name__}: {err}"
    else:
        return "converted"
    report.failed.append({"source": str(job.source), "reason": " ".join(reason.split())})
    return "failed"
