"""Plain functions behind the CLI commands: resolve inputs, call the pipeline, print results."""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ainn_cli import __version__
from ainn_cli.audio import SAMPLE_RATE, Audio, atomic_output, check_name, check_writable, read_audio, write_wav
from ainn_cli.batch import Job, audio_files, explain_no_jobs, plan, run_jobs, shard_jobs
from ainn_cli.console import err_console, say
from ainn_cli.display import failure_table, plot_reading, reading_lines, report_table, show_reading
from ainn_cli.errors import AudioError, BundleError, OutputError, OutputExists, UsageError
from ainn_cli.memory import bound_native_caches, release_memory

REFERENCE_MAX_SECONDS = 30.0  # only the start of a very long reference is read
PLOT_SUFFIXES = (".png", ".pdf", ".svg")
console = Console(soft_wrap=True)  # a result line is one line, also in a pipe or a log (no wrap, no padding)


def run_convert(source: Path, reference: Path | None, output: Path | None, *, strength: float | None,
                emotion: str | None, model: str | None, device: str, half: bool, sample_rate: int | None,
                pairing: str, shard: str | None, overwrite: bool, as_json: bool, quiet: bool) -> bool:
    """Convert a file or a folder; returns False when any file failed."""
    _check_convert_options(reference, strength, emotion, sample_rate)
    planned = plan(source, reference, output, pairing, tag=emotion or "")
    if not planned:
        raise UsageError(explain_no_jobs(source, reference, pairing))
    jobs = shard_jobs(planned, shard)
    scope = f"shard {shard}: {len(jobs)} of {len(planned)} conversions" if shard else ""
    if not jobs:  # more parts than files: this one has nothing to do, which is no error
        if as_json:
            print(json.dumps({"converted": [], "skipped": [], "failed": [], "shard": shard}))
        elif not quiet:
            say(f"{scope}, nothing to do in this part", "note")
        return True
    refs: dict[Path, Audio] = {}  # the current reference only: a folder of them is read one at a time
    given: Audio | None = None
    if source.is_file():  # refusals that need no model come before torch is imported
        check_writable(jobs[0].output, overwrite)
        given = _warned(read_audio(source))
        if reference is not None:
            refs[reference] = _warned(read_audio(reference, max_seconds=REFERENCE_MAX_SECONDS))
    else:
        bound_native_caches()  # a folder's many input lengths must not grow the process (memory.py)
    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(model, device, half)

    def convert_one(job: Job, src: Audio | None = None) -> dict[str, object]:
        if job.reference is not None and job.reference not in refs:
            refs.clear()
            refs[job.reference] = _warned(read_audio(job.reference, max_seconds=REFERENCE_MAX_SECONDS))
        src = src if src is not None else _warned(read_audio(job.source))
        result = pipe.convert(src, refs.get(job.reference) if job.reference else None, strength, emotion)
        if not np.isfinite(result.wave).all():
            raise BundleError(f"{job.source}: the model gave NaN or infinite samples; nothing written")
        write_wav(job.output, result.wave, sample_rate or SAMPLE_RATE, overwrite=overwrite,
                  on_limit=lambda peak: say(f"{job.output}: peak {peak:.3f} limited to full scale", "warning"))
        return _summary(job, result)

    if given is not None:
        _print_single(convert_one(jobs[0], given), as_json, quiet)
        return True
    return _run_folder(jobs, convert_one, overwrite, as_json, quiet, shard, scope)


def _warned(audio: Audio) -> Audio:
    """Print an input's warnings (clipping, NaN, loudness) once, when it is read."""
    for warning in audio.warnings:
        say(f"{audio.path}: {warning}", "warning")
    return audio


def _check_convert_options(reference: Path | None, strength: float | None, emotion: str | None,
                           sample_rate: int | None) -> None:
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise UsageError(f"--strength must be between 0 and 1, got {strength}")
    if reference is None and emotion is None:
        raise UsageError("give a REFERENCE recording or --emotion")
    if reference is not None and emotion is not None:
        raise UsageError("give either a REFERENCE or --emotion, not both")
    if sample_rate is not None and not 4000 <= sample_rate <= 192000:
        raise UsageError(f"--sample-rate must be between 4000 and 192000 Hz, got {sample_rate}")


def _summary(job: Job, result: Any) -> dict[str, object]:
    ref = result.reference
    return {
        "source": str(job.source), "reference": str(job.reference) if job.reference else None,
        "output": str(job.output), "emotion": result.emotion, "strength": round(result.strength, 3),
        "reference_label": ref.label if ref else None, "reference_strength": round(ref.strength, 3) if ref else None,
        "seconds": round(result.seconds, 3), "rtf": round(result.rtf, 3),
        "prosody": None if result.prosody is None else {k: round(v, 2) for k, v in vars(result.prosody).items()},
    }


def _prosody_text(change: Any) -> str:
    """`, pitch +3.1 st x1.25 range, +6.0 dB, duration x1.10` from a summary's prosody entry ('' if none)."""
    if not change:
        return ""
    return (f", pitch {change['pitch_semitones']:+.1f} st x{change['pitch_range']:.2f} range, "
            f"{change['energy_db']:+.1f} dB, duration x{change['duration']:.2f}")


def _print_single(summary: dict[str, object], as_json: bool, quiet: bool) -> None:
    if as_json:
        print(json.dumps(summary))
    elif not quiet:
        ref = f" (reference strength {summary['reference_strength']})" if summary["reference"] else ""
        ref += _prosody_text(summary.get("prosody"))
        console.print(
            f"{summary['output']}: {summary['emotion']} at strength {summary['strength']}{ref}, "
            f"{summary['seconds']} s, real-time factor {summary['rtf']}", highlight=False,
        )


def _run_folder(jobs: list[Job], convert_one: Any, overwrite: bool, as_json: bool, quiet: bool, shard: str | None,
                scope: str) -> bool:
    """Convert every job with a progress bar naming the current file; then the references' readings, the shard
    that ran and a table of results (or JSON). Memory is released after each file."""
    progress = Progress(TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[rtf]}"), TextColumn("{task.fields[file]}", markup=False),
                        console=err_console, disable=quiet or as_json or not err_console.is_terminal)
    totals = {"audio": 0.0, "compute": 0.0}
    task = progress.add_task("convert", total=len(jobs), rtf="", file="")

    def timed(job: Job) -> dict[str, object]:
        progress.update(task, file=job.source.name, refresh=True)
        summary: dict[str, object] = convert_one(job)
        totals["audio"] += float(summary["seconds"])  # type: ignore[arg-type]
        totals["compute"] += float(summary["seconds"]) * float(summary["rtf"])  # type: ignore[arg-type]
        return summary

    def done(job: Job, status: str) -> None:
        if status != "skipped":
            release_memory()
        rtf = f"RTF {totals['compute'] / totals['audio']:.2f}" if totals["audio"] else ""
        progress.update(task, advance=1, rtf=rtf, file="")

    with progress:
        report = run_jobs(jobs, timed, overwrite, on_done=done)
    if as_json:
        print(json.dumps({"converted": report.converted, "skipped": report.skipped, "failed": report.failed,
                          "shard": shard}))
    elif not quiet:
        for line in ([scope] if scope else []) + reading_lines(report.converted):
            console.print(line, highlight=False, markup=False)
        console.print(report_table(report))
    if report.failed and not as_json:
        err_console.print(failure_table(report))
    return report.ok


def _expand(files: list[Path]) -> list[Path]:
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
        if plot.exists() and not plot.is_dir():
            raise UsageError(f"--plot {plot}: is a file; for several inputs or a folder give a folder")
        base = os.path.commonpath([os.path.abspath(p.parent) for p in paths])
        rel = {p: Path(os.path.relpath(os.path.abspath(p), base)) for p in paths}
        stems = Counter(r.with_suffix("") for r in rel.values())
        targets = {p: plot / (r.with_suffix(".png") if stems[r.with_suffix("")] == 1 else r.with_name(f"{r.name}.png"))
                   for p, r in rel.items()}
    for target in targets.values():
        check_name(target)
        if target.suffix.lower() not in PLOT_SUFFIXES:
            raise UsageError(f"--plot {target}: use a .png, .pdf or .svg name")
        if not overwrite and (target.exists() or target.is_symlink()):
            raise OutputExists(f"{target}: exists already (use --overwrite to replace it)")
    return targets


def _plot(target: Path, audio: Audio, reading: Any, overwrite: bool) -> bool:
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


def run_strength(files: list[Path], *, model: str | None, device: str, plot: Path | None, as_json: bool,
                 overwrite: bool = False) -> bool:
    """Read every file; unreadable ones are reported and the rest go on. False when any failed."""
    paths = _expand(files)
    if not paths:
        raise UsageError("no audio files given")
    targets = plot_targets(paths, plot, overwrite) if plot is not None else {}
    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(model, device)
    results, ok = [], True
    for path in paths:
        try:
            audio = read_audio(path)
        except AudioError as err:
            say(str(err))
            ok = False
            continue
        reading = pipe.strength(audio)
        results.append({"file": str(path), "label": reading.label, "strength": round(reading.strength, 4),
                        "probabilities": {k: round(v, 4) for k, v in reading.probabilities.items()},
                        "seconds": round(reading.seconds, 3), "frame_rate": reading.frame_rate,
                        "cue": [round(v, 3) for v in reading.cue]})
        if path in targets:
            ok = _plot(targets[path], audio, reading, overwrite) and ok
        if not as_json:
            show_reading(console, str(path), reading)
    if as_json:
        print(json.dumps(results if len(paths) > 1 else (results[0] if results else [])))
    return ok


def run_info(*, model: str | None, device: str, as_json: bool) -> None:
    import torch

    from ainn_cli.device import resolve_device
    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(model, device)
    bundle = pipe.bundle
    data = {
        "ainn": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "auto_device": str(resolve_device("auto")), "device": str(pipe.device), "threads": torch.get_num_threads(),
        "bundle": bundle.info.name, "path": str(bundle.path), "labels": list(bundle.info.labels),
        "parameters": bundle.parameter_counts(), "emotions_without_reference": sorted(bundle.info.prototypes),
    }
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        if key == "parameters":
            for name, count in value.items():  # type: ignore[attr-defined]
                console.print(f"  {name:<16} {count / 1e6:7.2f} M parameters")
        else:
            console.print(f"{key:<12} {value}", highlight=False)


def run_train(out: Path, config_file: Path | None, stage: str, data: list[str] | None, init: Path | None,
              resume: bool, export: Path | None, overrides: list[str], quiet: bool) -> Path:
    from ainn_cli.train.config import load_config
    from ainn_cli.train.loop import STAGES
    from ainn_cli.train.run import train

    stages = {"both": STAGES, "stage1": ("stage1",), "stage2": ("stage2",), "recognizer": ("recognizer",)}.get(stage)
    if stages is None:
        raise UsageError(f"--stage must be stage1, stage2, both or recognizer, got {stage!r}")
    if data:
        overrides = [*overrides, f"data.sources={json.dumps(data)}"]
    if stages == ("stage2",) and init is None and not (out / "stage1" / "best.pt").exists():
        raise UsageError("stage2 needs --init RUN/stage1/best.pt (or a run folder with stage1 done)")
    init = init or (out / "stage1" / "best.pt" if stages == ("stage2",) else None)
    config = load_config(config_file, overrides)
    _stop_on_sigterm()
    return train(config, out, stages, init, resume, export, quiet)


def _stop_on_sigterm() -> None:
    """Ctrl-C, or the SIGTERM schedulers (Slurm, Kubernetes, torchrun) send, stops training after the current
    step with `latest` saved; a second one stops at once. Raising from the handler at an arbitrary point could
    leave a lock held (a process that never exits), so the loop checks a flag between steps instead."""
    import signal

    from ainn_cli.train.loop import STOP, request_stop

    STOP.clear()
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
