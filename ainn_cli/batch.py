"""Plan and run conversions of files and folders: output names, pairing, resume, failures.

    SRC file  + REF file   -> one job
    SRC dir   + REF file   -> one job per audio file under SRC, tree mirrored under OUT
    SRC dir   + REF dir    -> --pairing same-name (matching stems) or all (every source x every reference)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from ainn_cli.audio import is_audio_file, output_format, probe
from ainn_cli.errors import AinnError, OutputError, OutputExists, UsageError
from ainn_cli.files import check_name, first_existing

PAIRINGS = ("same-name", "all")
R = TypeVar("R")  # what converting one job gives (the command line's `display.Converted`)


@dataclass(frozen=True)
class Job:
    source: Path
    reference: Path | None  # None: convert to a prototype emotion
    output: Path
    emotion: str | None = None  # a --pairs row's own target emotion and strength (None: the command's)
    strength: float | None = None


@dataclass
class BatchReport(Generic[R]):
    converted: list[R] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class Plan(list[Job]):
    """A run's jobs, and the folders that could not be read while planning them (reported as failures)."""

    def __init__(self, jobs: Iterable[Job] = (), unreadable: Iterable[dict[str, str]] = ()) -> None:
        super().__init__(jobs)
        self.unreadable = list(unreadable)


@dataclass(frozen=True)
class Walk:
    """The audio files under a folder, and its subfolders that could not be listed (with why)."""

    files: list[Path]
    unreadable: list[dict[str, str]]


def walk_audio(root: Path, exclude: Path | None = None) -> Walk:
    """Audio files under `root`, recursively, sorted (depth first, as os.walk), without recursion: a tree of
    any depth is walked. Symlinked folders (so symlink loops) are not entered; a folder that cannot be listed is
    reported, not skipped silently; hidden files and folders (macOS `._x.wav` resource forks, our own
    `.x.wav.*.part` temp files) are skipped, and so is `exclude` (an output folder inside the input folder,
    whose results must not become new inputs)."""
    found: list[Path] = []
    unreadable: list[dict[str, str]] = []
    skip = _real(exclude) if exclude is not None else None
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as err:
            unreadable.append({"source": str(folder), "reason": f"{folder}: cannot read the folder "
                                                                f"({err.strerror or err})"})
            continue
        folders = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if _is_folder(entry):
                if not entry.is_symlink() and _real(Path(entry.path)) != skip:
                    folders.append(Path(folder, entry.name))
            elif is_audio_file(Path(entry.name)):
                found.append(Path(folder, entry.name))
        stack.extend(reversed(folders))
    return Walk(found, unreadable)


def _is_folder(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:  # a link loop, a name the system refuses: not a folder (reading it will say why)
        return False


def audio_files(root: Path, exclude: Path | None = None) -> list[Path]:
    """Audio files under `root` (`walk_audio`'s files)."""
    return walk_audio(root, exclude).files


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
         tag: str = "") -> Plan:
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
        return Plan([_checked(Job(source, reference, out))])
    out_dir = output or _default_out_dir(source)
    _check_out_dir(out_dir)
    walks = [walk_audio(source, exclude=out_dir)]
    if reference is not None and reference.is_dir():
        walks.append(walk_audio(reference, exclude=out_dir))
    jobs = _distinct([_checked(job) for job in _folder_jobs(source, walks, reference, out_dir, pairing)])
    _outside_inputs(jobs, [source, reference if len(walks) > 1 else None], out_dir)
    check_folders_writable({job.output.parent for job in jobs} or {out_dir})
    return Plan(jobs, [folder for walk in walks for folder in walk.unreadable])


def _default_out_dir(source: Path) -> Path:
    """SRC-ainn beside the folder SRC (also for `.` or `dir/..`)."""
    whole = Path(os.path.abspath(source))
    if not whole.name:
        raise UsageError(f"{source}: give an output folder with -o (the root folder has no name to derive one)")
    return whole.with_name(f"{whole.name}-ainn") if source.name in ("", ".", "..") else source.with_name(
        f"{source.name}-ainn")


def _outside_inputs(jobs: list[Job], roots: list[Path | None], out_dir: Path) -> None:
    """Refuse outputs that a re-run would read as inputs: inside an input folder whose walk does not leave out the
    output folder (the output folder is that input folder, or holds it), whatever the extensions."""
    for root in filter(None, roots):
        if _inside(out_dir, root) and _real(out_dir) != _real(root):
            continue  # a folder of its own inside the input folder: its walk leaves it out
        inside = next((job for job in jobs if _inside(job.output, root)), None)
        if inside is not None:
            raise OutputError(f"{inside.output}: would be written inside the input folder {root}, so its outputs "
                              "would overwrite its inputs or be read as new inputs by a re-run; give -o a folder "
                              "outside it (or a folder of its own inside it)")


def _inside(path: Path, root: Path) -> bool:
    """Is `path` `root` or under it (canonical paths)?"""
    real, top = _real(path), _real(root)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def check_folders_writable(folders: Iterable[Path]) -> None:
    """Refuse, before anything is converted, output folders that cannot be written: each one's first existing
    ancestor (what a new folder would be made in) must be a folder this process may write in."""
    seen: set[Path] = set()
    for folder in folders:
        existing = first_existing((folder, *folder.parents))
        if existing is None or existing in seen:
            continue
        seen.add(existing)
        if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
            raise OutputError(f"{existing}: folder is not writable, so {folder} cannot be written")


def check_listed(jobs: list[Job], out_dir: Path) -> list[Job]:
    """Jobs from a list (`convert --pairs`), checked as `plan` checks its own: the output folder, each output's
    name and format, no output replacing an input, no two jobs writing one output."""
    _check_out_dir(out_dir)
    for job in jobs:
        check_name(job.output)
        output_format(job.output)
    return _distinct([_checked(job) for job in jobs])


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


def _folder_jobs(source: Path, walks: list[Walk], reference: Path | None, out_dir: Path,
                 pairing: str) -> Iterator[Job]:
    refs = walks[1].files if len(walks) > 1 else None
    by_stem: dict[str, list[Path]] = {}
    for ref in refs or []:
        by_stem.setdefault(ref.stem, []).append(ref)
    for src in walks[0].files:
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


def triage(jobs: list[Job], overwrite: bool) -> tuple[list[Job], list[dict[str, str]]]:
    """Set aside, before any model loads, the jobs whose source or reference cannot be read (by its header: missing,
    empty, not audio, not a regular file): each is a failure that costs milliseconds, not a conversion. Jobs whose
    output exists are left for `run_jobs` to skip."""
    refusals: dict[Path, str | None] = {}
    todo, failed = [], []
    for job in jobs:
        reason = None if not overwrite and _exists(job.output) else (
            _refusal(job.source, refusals) or (_refusal(job.reference, refusals) if job.reference else None))
        if reason is None:
            todo.append(job)
        else:
            failed.append({"source": str(job.source), "reason": " ".join(reason.split())})
    return todo, failed


def _refusal(path: Path, seen: dict[Path, str | None]) -> str | None:
    if path not in seen:
        try:
            probe(path)
            seen[path] = None
        except AinnError as err:
            seen[path] = str(err)
    return seen[path]


def needs_model(jobs: list[Job], overwrite: bool) -> bool:
    """Will any job be converted (not skipped for an output that exists)?"""
    return any(overwrite or not _exists(job.output) for job in jobs)


def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def run_jobs(jobs: list[Job], convert_one: Callable[[Job], R], overwrite: bool,
             on_done: Callable[[Job, str], None] | None = None) -> BatchReport[R]:
    """Convert each job, skipping existing outputs unless `overwrite`; a failure is recorded, not raised."""
    report: BatchReport[R] = BatchReport()
    for job in jobs:
        status = _run_one(job, convert_one, overwrite, report)
        if on_done is not None:
            on_done(job, status)  # "converted", "skipped" or "failed"
    return report


def _run_one(job: Job, convert_one: Callable[[Job], R], overwrite: bool, report: BatchReport[R]) -> str:
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
