"""One plain function per `ainn` command, each taking its frozen options: resolve inputs, call the library,
print results. `cli.py` only builds the options; torch and the models are imported inside the functions."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import typer
from rich.console import Console

from ainn_cli import __version__
from ainn_cli.audio import MAX_RATE, MIN_RATE, REFERENCE_MAX_SECONDS, SAMPLE_RATE, Audio, read_audio, write_wav
from ainn_cli.batch import BatchReport, Job, audio_files, explain_no_jobs, plan, run_jobs, shard_jobs
from ainn_cli.console import err_console, progress_bar, say
from ainn_cli.display import Converted, failure_table, plot_reading, reading_lines, report_table, show_reading
from ainn_cli.errors import AudioError, BundleError, OutputError, OutputExists, UsageError
from ainn_cli.eval.command import EvaluateOptions as EvaluateOptions  # re-exported: lives beside its command
from ainn_cli.files import atomic_output, check_name, check_writable
from ainn_cli.memory import bound_native_caches, release_memory

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline, StrengthReading
    from ainn_cli.train.config import TrainConfig

PLOT_SUFFIXES = (".png", ".pdf", ".svg")
console = Console(soft_wrap=True)  # a result line is one line, also in a pipe or a log (no wrap, no padding)


@dataclass(frozen=True)
class ConvertOptions:
    """`ainn convert`: SOURCE (file or folder) to the emotion of REFERENCE or of a prototype `emotion`."""

    source: Path
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


@dataclass(frozen=True)
class StrengthOptions:
    """`ainn strength`: read emotion, strength and cue of files and folders, optionally plotted."""

    files: tuple[Path, ...]
    model: str | None = None
    device: str = "auto"
    plot: Path | None = None
    overwrite: bool = False
    as_json: bool = False


@dataclass(frozen=True)
class InfoOptions:
    """`ainn info`: versions, device and the bundle's components."""

    model: str | None = None
    device: str = "auto"
    as_json: bool = False


@dataclass(frozen=True)
class ExportOptions:
    """`ainn export`: a Hub-ready copy of `bundle` (folder, registry name or Hub id) in `out_dir`."""

    bundle: str
    out_dir: Path
    overwrite: bool = False


@dataclass(frozen=True)
class TrainOptions:
    """`ainn train`: `device` and `data` replace the config's (after `overrides`, `--set key=value`)."""

    out: Path
    config: Path | None = None
    stage: str = "both"
    data: tuple[str, ...] = ()  # kind:path sources
    init: Path | None = None
    resume: bool = False
    export: Path | None = None
    overrides: tuple[str, ...] = ()
    device: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class Reading:
    """One file's reading, as JSON (rounded)."""

    file: str
    label: str
    strength: float
    probabilities: dict[str, float]
    seconds: float
    frame_rate: float
    cue: tuple[float, ...]

    @classmethod
    def of(cls, path: Path, reading: StrengthReading) -> Reading:
        return cls(file=str(path), label=reading.label, strength=round(reading.strength, 4),
                   probabilities={k: round(v, 4) for k, v in reading.probabilities.items()},
                   seconds=round(reading.seconds, 3), frame_rate=reading.frame_rate,
                   cue=tuple(round(v, 3) for v in reading.cue))

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Info:
    """What `ainn info` prints, in its order."""

    ainn: str
    python: str
    torch: str
    auto_device: str
    device: str
    threads: int
    bundle: str
    path: str
    labels: list[str]
    parameters: dict[str, int]
    emotions_without_reference: list[str]


# ---- convert ---------------------------------------------------------------------------------------------------


def run_convert(options: ConvertOptions) -> bool:
    """Convert a file or a folder; False when any file failed.

    The options and the plan (names, pairing, shard) are checked first. A single file then has its output
    checked and both inputs read before the model loads (torch is imported only then). A folder loads the
    model first and reads each file as its turn comes: a file that fails is reported and the rest go on.
    """
    _check_convert_options(options)
    planned = plan(options.source, options.reference, options.output, options.pairing, tag=options.emotion or "")
    if not planned:
        raise UsageError(explain_no_jobs(options.source, options.reference, options.pairing))
    jobs = shard_jobs(planned, options.shard)
    scope = f"shard {options.shard}: {len(jobs)} of {len(planned)} conversions" if options.shard else ""
    if not jobs:  # more parts than files: this one has nothing to do, which is no error
        _print_nothing_to_do(options, scope)
        return True
    if options.source.is_file():
        _convert_file(jobs[0], options)
        return True
    return _convert_folder(jobs, options, scope)


def _check_convert_options(options: ConvertOptions) -> None:
    if options.strength is not None and not 0.0 <= options.strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, got {options.strength}")
    if options.reference is None and options.emotion is None:
        raise UsageError("give a REFERENCE recording or --emotion")
    if options.reference is not None and options.emotion is not None:
        raise UsageError("give either a REFERENCE or --emotion, not both")
    if options.tempo and options.reference is None:
        raise UsageError("--tempo follows a REFERENCE's speaking rate; an --emotion prototype has none")
    rate = options.sample_rate
    if rate is not None and not MIN_RATE <= rate <= MAX_RATE:
        raise UsageError(f"--sample-rate must be between {MIN_RATE} and {MAX_RATE} Hz, got {rate}")


def _print_nothing_to_do(options: ConvertOptions, scope: str) -> None:
    if options.as_json:
        _print_report_json(BatchReport(), options.shard)
    elif not options.quiet:
        say(f"{scope}, nothing to do in this part", "note")


def _convert_file(job: Job, options: ConvertOptions) -> None:
    """One file: refusals that need no model (an existing output, an unreadable input) come before it loads."""
    check_writable(job.output, options.overwrite)
    source = _warned(read_audio(job.source))
    reference = _read_reference(job.reference) if job.reference is not None else None
    converted = _Converter(_load_pipeline(options.model, options.device, options.half), options).convert(
        job, source, reference)
    if options.as_json:
        print(json.dumps(converted.as_dict()))
    elif not options.quiet:
        console.print(converted.sentence(), highlight=False, markup=False)  # a path may hold [brackets]


def _convert_folder(jobs: list[Job], options: ConvertOptions, scope: str) -> bool:
    """Every job, with a progress bar; then the references' readings, the shard and a table (or JSON)."""
    bound_native_caches()  # a folder's many input lengths must not grow the process (memory.py)
    converter = _Converter(_load_pipeline(options.model, options.device, options.half), options)
    report = _run_with_progress(jobs, converter, options)
    if options.as_json:
        _print_report_json(report, options.shard)
    elif not options.quiet:
        for line in ([scope] if scope else []) + reading_lines(report.converted):
            console.print(line, highlight=False, markup=False)
        console.print(report_table(report))
    if report.failed and not options.as_json:
        err_console.print(failure_table(report))
    return report.ok


def _print_report_json(report: BatchReport, shard: str | None) -> None:
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

    def __call__(self, job: Job) -> Converted:
        """Read the job's reference (unless it is the current one), then its source, and convert."""
        reference = None
        if job.reference is not None:
            if job.reference not in self.references:
                self.references.clear()  # before reading the next one
                self.references[job.reference] = _read_reference(job.reference)
            reference = self.references[job.reference]
        return self.convert(job, _warned(read_audio(job.source)), reference)

    def convert(self, job: Job, source: Audio, reference: Audio | None) -> Converted:
        """Convert, refuse a non-finite result, and write the output at the asked rate."""
        options = self.options
        result = self.pipe.convert(source, reference, options.strength, options.emotion, options.tempo)
        if not np.isfinite(result.wave).all():
            raise BundleError(f"{job.source}: the model gave NaN or infinite samples; nothing written")
        write_wav(job.output, result.wave, options.sample_rate or SAMPLE_RATE, overwrite=options.overwrite,
                  on_limit=lambda peak: say(f"{job.output}: peak {peak:.3f} limited to full scale", "warning"))
        return Converted.of(job, result)


@dataclass
class _Pace:
    """Seconds of audio converted and of compute spent on them: the progress bar's running real-time factor."""

    audio: float = 0.0
    compute: float = 0.0

    def add(self, converted: Converted) -> None:
        self.audio += converted.seconds
        self.compute += converted.seconds * converted.rtf

    def text(self) -> str:
        return f"RTF {self.compute / self.audio:.2f}" if self.audio else ""


def _run_with_progress(jobs: list[Job], converter: _Converter, options: ConvertOptions) -> BatchReport:
    """`run_jobs` under a progress bar naming the current file; memory is released after each file."""
    progress = progress_bar("converting", "rtf", "file", console=err_console,
                            disable=options.quiet or options.as_json or not err_console.is_terminal)
    task = progress.add_task("convert", total=len(jobs), rtf="", file="")
    pace = _Pace()

    def timed(job: Job) -> Converted:
        progress.update(task, file=job.source.name, refresh=True)
        converted = converter(job)
        pace.add(converted)
        return converted

    def done(status: str) -> None:
        if status != "skipped":
            release_memory()
        progress.update(task, advance=1, rtf=pace.text(), file="")

    with progress:
        return run_jobs(jobs, timed, options.overwrite, on_done=done)


def _read_reference(path: Path) -> Audio:
    return _warned(read_audio(path, max_seconds=REFERENCE_MAX_SECONDS))


def _warned(audio: Audio) -> Audio:
    """Print an input's warnings (clipping, NaN, loudness) once, when it is read."""
    for warning in audio.warnings:
        say(f"{audio.path}: {warning}", "warning")
    return audio


def _load_pipeline(model: str | None, device: str, half: bool = False) -> Pipeline:
    """The model (this imports torch)."""
    from ainn_cli.pipeline import load_pipeline

    return load_pipeline(model, device, half)


# ---- strength --------------------------------------------------------------------------------------------------


def run_strength(options: StrengthOptions) -> bool:
    """Read every file; unreadable ones are reported and the rest go on. False when any failed.

    Plot names are checked before the model loads; each reading is shown (and plotted) as it is made.
    """
    paths = _expand(options.files)
    if not paths:
        raise UsageError("no audio files given")
    targets = plot_targets(paths, options.plot, options.overwrite) if options.plot is not None else {}
    pipe = _load_pipeline(options.model, options.device)
    readings: list[Reading] = []
    ok = True
    for path in paths:
        reading, fine = _read_one(pipe, path, targets.get(path), options)
        readings += [reading] if reading is not None else []
        ok = fine and ok
    if options.as_json:
        print(json.dumps([r.as_dict() for r in readings] if len(paths) > 1 else
                         (readings[0].as_dict() if readings else [])))
    return ok


def _read_one(pipe: Pipeline, path: Path, target: Path | None, options: StrengthOptions) -> tuple[Reading | None, bool]:
    """One file's reading, plotted to `target` and shown (unless JSON), and whether all of that went well."""
    try:
        audio = read_audio(path)
    except AudioError as err:
        say(str(err))
        return None, False
    reading = pipe.strength(audio)
    plotted = _plot(target, audio, reading, options.overwrite) if target is not None else True
    if not options.as_json:
        show_reading(console, str(path), reading)
    return Reading.of(path, reading), plotted


def _expand(files: Iterable[Path]) -> list[Path]:
    """Files, and the audio files under folders, each once."""
    out: dict[str, Path] = {}
    for item in files:
        for path in audio_files(item) if os.path.isdir(item) else [item]:
            out.setdefault(os.path.realpath(path), path)
    return list(out.values())


def plot_targets(paths: list[Path], plot: Path, overwrite: bool) -> dict[Path, Path]:
    """Where each input's plot goes, checked before anything is read: names, formats, no file replaced.

    One input: `plot` itself, unless it is a folder or has no extension. Several: under the folder `plot`,
    each at its path relative to the inputs' common folder, as `stem.png` (`name.png` where stems meet).
    """
    if len(paths) == 1 and plot.suffix and not plot.is_dir():
        targets = {paths[0]: plot}
    else:
        targets = _plots_in_folder(paths, plot)
    for target in targets.values():
        _check_plot_target(target, overwrite)
    return targets


def _plots_in_folder(paths: list[Path], plot: Path) -> dict[Path, Path]:
    """Each input's figure under the folder `plot`, the inputs' tree mirrored from their common folder."""
    if plot.exists() and not plot.is_dir():
        raise UsageError(f"--plot {plot}: is a file; for several inputs or a folder give a folder")
    base = os.path.commonpath([os.path.abspath(p.parent) for p in paths])
    rel = {p: Path(os.path.relpath(os.path.abspath(p), base)) for p in paths}
    stems = Counter(r.with_suffix("") for r in rel.values())
    return {p: plot / (r.with_suffix(".png") if stems[r.with_suffix("")] == 1 else r.with_name(f"{r.name}.png"))
            for p, r in rel.items()}


def _check_plot_target(target: Path, overwrite: bool) -> None:
    check_name(target)
    if target.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {target}: use a {', '.join(PLOT_SUFFIXES[:-1])} or {PLOT_SUFFIXES[-1]} name")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise OutputExists(f"{target}: exists already (use --overwrite to replace it)")


def _plot(target: Path, audio: Audio, reading: StrengthReading, overwrite: bool) -> bool:
    """Write one figure through a hidden temp file; a file that appeared meanwhile is reported, not replaced."""
    import torch

    from ainn_cli.mel import log_mel_in_chunks
    from ainn_cli.pipeline import READ_CHUNK_FRAMES

    mel = log_mel_in_chunks(torch.from_numpy(audio.samples), READ_CHUNK_FRAMES)[0].numpy()
    try:
        check_writable(target, overwrite)
        with atomic_output(target, overwrite, suffix=f".part{target.suffix}") as tmp:
            plot_reading(Path(tmp), mel, reading, name=audio.path)
    except OutputError as err:
        say(str(err))
        return False
    except OSError as err:
        say(f"{target}: cannot write ({err.strerror or err})")
        return False
    return True


# ---- info, export ----------------------------------------------------------------------------------------------


def run_info(options: InfoOptions) -> None:
    """Print versions, the device auto would choose, and the bundle's components (or all of it as JSON)."""
    info = _info(_load_pipeline(options.model, options.device))
    if options.as_json:
        print(json.dumps(dataclasses.asdict(info)))
        return
    for field in dataclasses.fields(info):
        if field.name == "parameters":
            for name, count in info.parameters.items():
                console.print(f"  {name:<16} {count / 1e6:7.2f} M parameters")
        else:
            console.print(f"{field.name:<12} {getattr(info, field.name)}", highlight=False)


def _info(pipe: Pipeline) -> Info:
    import torch

    from ainn_cli.device import resolve_device

    bundle = pipe.bundle
    return Info(
        ainn=__version__, python=platform.python_version(), torch=torch.__version__,
        auto_device=str(resolve_device("auto")), device=str(pipe.device), threads=torch.get_num_threads(),
        bundle=bundle.info.name, path=str(bundle.path), labels=list(bundle.info.labels),
        parameters=bundle.parameter_counts(), emotions_without_reference=sorted(bundle.info.prototypes),
    )


def run_export(options: ExportOptions) -> Path:
    """Write the Hub-ready copy (`card.export_for_hub`) and say how to upload it; returns the folder."""
    from ainn_cli.card import export_for_hub

    path = export_for_hub(options.bundle, options.out_dir, overwrite=options.overwrite)
    typer.echo(f"wrote {path} (upload with: hf upload OWNER/NAME {path} .)")
    return path


# ---- train, evaluate -------------------------------------------------------------------------------------------

def run_train(options: TrainOptions) -> Path:
    """Check the stage and its starting point, read the config, train, and print where the result is."""
    from ainn_cli.train.run import train

    stages = _stages(options.stage)
    config = _train_config(options)
    init = _init_checkpoint(options, stages, config.init_bundle)
    _stop_on_sigterm()
    path = train(config, options.out, stages, init, options.resume, options.export, options.quiet)
    typer.echo(f"done: {path}")
    return path


def _stages(stage: str) -> tuple[str, ...]:
    from ainn_cli.train.loop import STAGES

    stages = {"both": STAGES, "stage1": ("stage1",), "stage2": ("stage2",), "recognizer": ("recognizer",)}.get(stage)
    if stages is None:
        raise UsageError(f"--stage must be stage1, stage2, both or recognizer, got {stage!r}")
    return stages


def _init_checkpoint(options: TrainOptions, stages: tuple[str, ...], init_bundle: str) -> Path | None:
    """--init, else for stage2 alone the run's stage1/best.pt, else the config's `init_bundle` (None: the
    stage warm-starts from that bundle, as `configs/reshape.toml` does); one of them must exist."""
    if stages != ("stage2",) or options.init is not None:
        return options.init
    best = options.out / "stage1" / "best.pt"
    if best.exists():
        return best
    if init_bundle:
        return None
    raise UsageError("stage2 needs --init RUN/stage1/best.pt, a run folder with stage1 done, or init_bundle in "
                     "the config")


def _train_config(options: TrainOptions) -> TrainConfig:
    """The config file with its --set overrides; then --device and --data replace its device and sources; then
    the ranges are checked (`validate`), once."""
    from ainn_cli.train.config import load_config, validate

    config = load_config(options.config, list(options.overrides), check=False)
    if options.device:
        config = dataclasses.replace(config, device=options.device)
    if options.data:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, sources=options.data))
    return validate(config)


def _stop_on_sigterm() -> None:
    """Ctrl-C, or the SIGTERM schedulers (Slurm, Kubernetes, torchrun) send, stops training after the current
    step with `latest` saved; a second one stops at once. Raising from the handler at an arbitrary point could
    leave a lock held (a process that never exits), so the loop checks a flag between steps instead."""
    import signal

    from ainn_cli.train.loop import STOP, request_stop

    STOP.clear()
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)


def run_evaluate(options: EvaluateOptions) -> bool:
    """Score converted speech (`ainn_cli.eval.command`); False when any row failed."""
    from ainn_cli.eval.command import evaluate

    return evaluate(options)
