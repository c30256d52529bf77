"""`ainn convert`: a file, or a folder with a progress bar, resumable (existing outputs are skipped)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ainn_cli.audio import MAX_RATE, MIN_RATE, SAMPLE_RATE, Audio, check_rate, read_audio, write_wav
from ainn_cli.audio_stream import AudioReader, is_long
from ainn_cli.batch import BatchReport, Job, Plan, explain_no_jobs, needs_model, plan, run_jobs, shard_jobs, triage
from ainn_cli.commands.common import check_emotion, console, load_model, read_reference, warned
from ainn_cli.commands.long import convert_long, opened
from ainn_cli.console import Ticker, err_console, say
from ainn_cli.controls import Controls, parse_controls
from ainn_cli.display import Converted, failure_table, reading_lines, report_table
from ainn_cli.errors import BundleError, UsageError
from ainn_cli.files import check_writable
from ainn_cli.memory import bound_native_caches, release_memory

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline


@dataclass(frozen=True)
class ConvertOptions:
    """`ainn convert`: SOURCE (file or folder) to the emotion of REFERENCE or of a prototype `emotion`."""

    source: Path | None  # None with `pairs`
    reference: Path | None = None
    output: Path | None = None  # default: SRC-REF.wav, or the folder SRC-ainn/
    strength: float | None = None  # default: the reference's
    emotion: str | None = None
    tempo: bool | None = None  # follow the reference's speaking rate; None: as the model says (`follow_rate`)
    model: str | None = None
    device: str = "auto"
    half: bool = False
    sample_rate: int | None = None  # default: SAMPLE_RATE
    pairing: str = "same-name"
    shard: str | None = None  # "K/N"
    overwrite: bool = False
    as_json: bool = False
    quiet: bool = False
    keep_length: bool = False  # the output exactly as long as the source, to the sample
    pitch: str | None = None  # semitones from the source's median, or auto+N / auto-N (`controls.py`)
    level: str | None = None  # dB from the source's level, or auto+N / auto-N
    rate: str | None = None  # speaking-rate factor, or auto*X
    pairs: Path | None = None  # a CSV listing the conversions (`commands/pairs.py`) instead of SOURCE [REFERENCE]

    @property
    def controls(self) -> Controls:
        """The hand controls, parsed (a UsageError when a value is out of range or unreadable)."""
        return parse_controls(self.pitch, self.level, self.rate, self.keep_length)


def run_convert(options: ConvertOptions) -> bool:
    """Convert a file or a folder; False when any file failed.

    The options and the plan (names, pairing, shard) are checked first. A single file then has its output
    checked and both inputs read before the model loads (torch is imported only then). A folder loads the
    model first and reads each file as its turn comes: a file that fails is reported and the rest go on.
    """
    _check_convert_options(options)
    if options.pairs is not None:
        planned = _listed(options.pairs, options)
    elif options.source is None:
        raise UsageError("give a SOURCE (a file or a folder) and a REFERENCE or --emotion, or --pairs LIST.csv")
    else:
        planned = plan(options.source, options.reference, options.output, options.pairing, tag=options.emotion or "")
    unreadable = planned.unreadable if isinstance(planned, Plan) else []  # folders: failures, reported first
    if not planned and options.source is not None and not unreadable:
        raise UsageError(explain_no_jobs(options.source, options.reference, options.pairing))
    jobs = shard_jobs(planned, options.shard)
    scope = f"shard {options.shard}: {len(jobs)} of {len(planned)} conversions" if options.shard else ""
    if not jobs and not unreadable:  # more parts than files: this one has nothing to do, which is no error
        _print_nothing_to_do(options, scope)
        return True
    if options.source is not None and options.source.is_file():
        _convert_file(jobs[0], options)
        return True
    return _convert_folder(jobs, options, scope, unreadable)


def _listed(listing: Path, options: ConvertOptions) -> list[Job]:
    """A --pairs list's jobs, each row's emotion checked against the model before it loads."""
    from ainn_cli.commands.pairs import plan_pairs

    jobs, _ = plan_pairs(listing, options.output)
    for emotion in sorted({job.emotion for job in jobs if job.emotion is not None}):
        check_emotion(emotion, options.model)
    return jobs


def _check_convert_options(options: ConvertOptions) -> None:
    if options.strength is not None and not 0.0 <= options.strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, got {options.strength}")
    if options.pairs is not None:
        if options.source is not None or options.reference is not None or options.emotion is not None:
            raise UsageError("--pairs lists the sources and their references or emotions; give no SOURCE, "
                             "REFERENCE or --emotion with it")
        if options.tempo:
            raise UsageError("--tempo is for a SOURCE and REFERENCE; leave it out with --pairs")
    elif options.reference is None and options.emotion is None:
        raise UsageError("give a REFERENCE recording or --emotion")
    if options.reference is not None and options.emotion is not None:
        raise UsageError("give either a REFERENCE or --emotion, not both")
    if options.tempo and options.reference is None:
        raise UsageError("--tempo follows a REFERENCE's speaking rate; an --emotion prototype has none")
    if options.tempo and (options.keep_length or options.rate is not None):
        raise UsageError("--tempo sets the rate from the reference; leave out --keep-length and --rate")
    parse_controls(options.pitch, options.level, options.rate, options.keep_length)  # before the model loads
    if options.emotion is not None:
        check_emotion(options.emotion, options.model)
    rate = options.sample_rate
    if rate is not None and not MIN_RATE <= rate <= MAX_RATE:
        raise UsageError(f"--sample-rate must be between {MIN_RATE} and {MAX_RATE} Hz, got {rate}")


def _print_nothing_to_do(options: ConvertOptions, scope: str) -> None:
    if options.as_json:
        _print_report_json(BatchReport[Converted](), options.shard)
    elif not options.quiet:
        say(f"{scope}, nothing to do in this part", "note")


def _convert_file(job: Job, options: ConvertOptions) -> None:
    """One file: refusals that need no model (an existing output, an unreadable input) come before it loads. A
    recording of hours is measured first and converted as a stream (`commands.long`)."""
    check_rate(job.output, options.sample_rate or SAMPLE_RATE)
    check_writable(job.output, options.overwrite)
    source = opened(job.source) if is_long(job.source) else warned(read_audio(job.source))
    reference = read_reference(job.reference) if job.reference is not None else None
    converter = _Converter(load_model(options.model, options.device, options.half), options)
    converted = converter.convert(job, source, reference)
    if options.as_json:
        print(json.dumps(converted.as_dict()))
    elif not options.quiet:
        console.print(converted.sentence(), highlight=False, markup=False)  # a path may hold [brackets]


def _convert_folder(jobs: list[Job], options: ConvertOptions, scope: str,
                    unreadable: list[dict[str, str]] | None = None) -> bool:
    """Every job, with a progress bar; then the references' readings, the shard and a table (or JSON).

    Inputs that cannot be read (by their header) and folders that could not be listed are failures found before
    the model loads; it loads only when something is left to convert."""
    bound_native_caches()  # a folder's many input lengths must not grow the process (memory.py)
    todo, failed = triage(jobs, options.overwrite)
    converter = _Converter(load_model(options.model, options.device, options.half), options) if needs_model(
        todo, options.overwrite) else None
    report = _run_with_progress(todo, converter, options)
    report.failed[:0] = [*(unreadable or []), *failed]
    if options.as_json:
        _print_report_json(report, options.shard)
    elif not options.quiet:
        for line in ([scope] if scope else []) + reading_lines(report.converted):
            console.print(line, highlight=False, markup=False)
        console.print(report_table(report))
    if report.failed and not options.as_json:
        err_console.print(failure_table(report))
    return report.ok


def _print_report_json(report: BatchReport[Converted], shard: str | None) -> None:
    converted = [c.as_dict() for c in report.converted]
    print(json.dumps({"converted": converted, "skipped": report.skipped, "failed": report.failed, "shard": shard}))


class _Converter:
    """Converts jobs with one loaded model; a folder's jobs read their reference once while they share it."""

    def __init__(self, pipe: Pipeline, options: ConvertOptions) -> None:
        if options.tempo and not pipe.can_follow_rate:
            raise UsageError(f"--tempo: {pipe.bundle.path} has no speaking-rate weight (rate_weight), so it cannot "
                             "follow the reference's tempo")
        self.pipe, self.options = pipe, options
        self.references: dict[Path, Audio] = {}  # the current reference only: a folder of them is read one by one
        self.note: Callable[[str], None] | None = None  # inside a folder's progress: where a long file's goes

    def __call__(self, job: Job) -> Converted:
        """Read the job's reference (unless it is the current one), then its source, and convert."""
        reference = None
        if job.reference is not None:
            if job.reference not in self.references:
                self.references.clear()  # before reading the next one
                self.references[job.reference] = read_reference(job.reference)
            reference = self.references[job.reference]
        source = opened(job.source) if is_long(job.source) else warned(read_audio(job.source))
        return self.convert(job, source, reference)

    def convert(self, job: Job, source: Audio | AudioReader, reference: Audio | None) -> Converted:
        """Convert, refuse a non-finite result, and write the output at the asked rate (a stream as it goes)."""
        options = self.options
        strength = job.strength if job.strength is not None else options.strength  # a --pairs row's own, if any
        emotion = job.emotion or options.emotion
        if isinstance(source, AudioReader):
            return Converted.of(job, convert_long(
                self.pipe, job, source, reference, strength=strength, emotion=emotion,
                tempo=options.tempo, controls=options.controls, rate=options.sample_rate or SAMPLE_RATE,
                overwrite=options.overwrite, quiet=options.quiet or options.as_json, note=self.note))
        result = self.pipe.convert(source, reference, strength, emotion, options.tempo, controls=options.controls)
        if not np.isfinite(result.wave).all():
            raise BundleError(f"{job.source}: the model gave NaN or infinite samples; nothing written")
        write_wav(job.output, result.wave, options.sample_rate or SAMPLE_RATE, overwrite=options.overwrite,
                  on_limit=lambda peak: say(f"{job.output}: peak {peak:.3f} limited to full scale", "warning"))
        return Converted.of(job, result)


def _run_with_progress(jobs: list[Job], loaded: _Converter | None, options: ConvertOptions
                       ) -> BatchReport[Converted]:
    """`run_jobs` under a Ticker (a bar on a terminal; in a pipe or a log one line per file, with the running
    real-time factor and the time left at the pace of the files converted); memory is released after each file.
    Without a `loaded` converter (every output existed) one is loaded if an output went missing meanwhile."""
    audio = compute = 0.0
    holder = [loaded]

    def timed(job: Job) -> Converted:
        nonlocal audio, compute
        converter = holder[0] or _Converter(load_model(options.model, options.device, options.half), options)
        holder[0] = converter
        ticker.naming(job.source.name)
        converter.note = lambda text: ticker.naming(f"{job.source.name} {text}")
        converted = converter(job)
        audio, compute = audio + converted.seconds, compute + converted.seconds * converted.rtf
        return converted

    def done(job: Job, status: str) -> None:
        if status != "skipped":
            release_memory()
        note = {"skipped": "skipped (exists)", "failed": "failed"}.get(status, f"RTF {compute / max(audio, 1e-9):.2f}")
        ticker.advance(name=str(job.source), note=note, skipped=status == "skipped")

    with Ticker("converting", len(jobs), disable=options.quiet or options.as_json, console=err_console) as ticker:
        return run_jobs(jobs, timed, options.overwrite, on_done=done)
