"""Plain functions behind the CLI commands: resolve inputs, call the pipeline, print results."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ainn_cli import __version__
from ainn_cli.audio import SAMPLE_RATE, Audio, check_writable, read_audio, write_wav
from ainn_cli.batch import Job, audio_files, plan, run_jobs, shard_jobs
from ainn_cli.console import err_console, say
from ainn_cli.display import failure_table, plot_reading, report_table, show_reading
from ainn_cli.errors import AudioError, UsageError

REFERENCE_MAX_SECONDS = 30.0  # only the start of a very long reference is read
console = Console()


def run_convert(source: Path, reference: Path | None, output: Path | None, *, strength: float | None,
                emotion: str | None, model: str | None, device: str, half: bool, sample_rate: int | None,
                pairing: str, shard: str | None, overwrite: bool, as_json: bool, quiet: bool) -> bool:
    """Convert a file or a folder; returns False when any file failed."""
    _check_convert_options(reference, strength, emotion, sample_rate)
    jobs = shard_jobs(plan(source, reference, output, pairing, tag=emotion or ""), shard)
    if not jobs:
        raise UsageError(f"{source}: no audio files to convert")
    from ainn_cli.pipeline import load_pipeline

    pipe = load_pipeline(model, device, half)
    refs: dict[Path, Any] = {}

    def convert_one(job: Job) -> dict[str, object]:
        if job.reference is not None and job.reference not in refs:
            refs[job.reference] = _warned(read_audio(job.reference, max_seconds=REFERENCE_MAX_SECONDS))
        src = _warned(read_audio(job.source))
        result = pipe.convert(src, refs.get(job.reference) if job.reference else None, strength, emotion)
        write_wav(job.output, result.wave, sample_rate or SAMPLE_RATE, overwrite=overwrite,
                  on_limit=lambda peak: say(f"{job.output}: peak {peak:.3f} limited to full scale", "warning"))
        return _summary(job, result)

    if source.is_file():
        check_writable(jobs[0].output, overwrite)  # refuse before the model loads, not after converting
        summary = convert_one(jobs[0])
        _print_single(summary, as_json, quiet)
        return True
    return _run_folder(jobs, convert_one, overwrite, as_json, quiet)


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
        "reference_strength": round(ref.strength, 3) if ref else None,
        "seconds": round(result.seconds, 3), "rtf": round(result.rtf, 3),
    }


def _print_single(summary: dict[str, object], as_json: bool, quiet: bool) -> None:
    if as_json:
        print(json.dumps(summary))
    elif not quiet:
        ref = f" (reference strength {summary['reference_strength']})" if summary["reference"] else ""
        console.print(
            f"{summary['output']}: {summary['emotion']} at strength {summary['strength']}{ref}, "
            f"{summary['seconds']} s, real-time factor {summary['rtf']}", highlight=False,
        )


def _run_folder(jobs: list[Job], convert_one: Any, overwrite: bool, as_json: bool, quiet: bool) -> bool:
    progress = Progress(TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[rtf]}"), console=err_console, disable=quiet or as_json)
    totals = {"audio": 0.0, "compute": 0.0}

    def timed(job: Job) -> dict[str, object]:
        summary: dict[str, object] = convert_one(job)
        totals["audio"] += float(summary["seconds"])  # type: ignore[arg-type]
        totals["compute"] += float(summary["seconds"]) * float(summary["rtf"])  # type: ignore[arg-type]
        return summary

    with progress:
        task = progress.add_task("convert", total=len(jobs), rtf="")

        def done(job: Job, status: str) -> None:
            rtf = f"RTF {totals['compute'] / totals['audio']:.2f}" if totals["audio"] else ""
            progress.update(task, advance=1, rtf=rtf)

        report = run_jobs(jobs, timed, overwrite, on_done=done)
    if as_json:
        print(json.dumps({"converted": report.converted, "skipped": report.skipped, "failed": report.failed}))
    elif not quiet:
        console.print(report_table(report))
    if report.failed and not as_json:
        err_console.print(failure_table(report))
    return report.ok


def _expand(files: list[Path]) -> list[Path]:
    out: list[Path] = []
    for item in files:
        out.extend(audio_files(item) if item.is_dir() else [item])
    return out


def run_strength(files: list[Path], *, model: str | None, device: str, plot: Path | None, as_json: bool) -> bool:
    """Read every file; unreadable ones are reported and the rest go on. False when any failed."""
    paths = _expand(files)
    if not paths:
        raise UsageError("no audio files given")
    from ainn_cli.mel import log_mel
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
        results.append({"file": str(path), "emotion": reading.label, "strength": round(reading.strength, 4),
                        "probabilities": {k: round(v, 4) for k, v in reading.probabilities.items()},
                        "seconds": round(reading.seconds, 3), "frame_rate": reading.frame_rate,
                        "cue": [round(v, 3) for v in reading.cue]})
        if plot is not None:
            target = plot / f"{path.stem}.png" if len(paths) > 1 or plot.is_dir() else plot
            target.parent.mkdir(parents=True, exist_ok=True)
            plot_reading(target, log_mel(audio.samples)[0].numpy(), reading)
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

    stages = {"both": STAGES, "stage1": ("stage1",), "stage2": ("stage2",)}.get(stage)
    if stages is None:
        raise UsageError(f"--stage must be stage1, stage2 or both, got {stage!r}")
    if data:
        overrides = [*overrides, f"data.sources={json.dumps(data)}"]
    if stages == ("stage2",) and init is None and not (out / "stage1" / "best.pt").exists():
        raise UsageError("stage2 needs --init RUN/stage1/best.pt (or a run folder with stage1 done)")
    init = init or (out / "stage1" / "best.pt" if stages == ("stage2",) else None)
    config = load_config(config_file, overrides)
    _stop_on_sigterm()
    return train(config, out, stages, init, resume, export, quiet)


def _stop_on_sigterm() -> None:
    """Schedulers (Slurm, Kubernetes, torchrun) stop a job with SIGTERM: save `latest` as Ctrl-C does."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
