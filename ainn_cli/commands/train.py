"""`ainn train` (its stage, starting point and config checked before training starts) and `ainn evaluate`."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ainn_cli.errors import UsageError
from ainn_cli.eval.command import EvaluateOptions as EvaluateOptions  # lives beside its command

if TYPE_CHECKING:
    from ainn_cli.train.config import TrainConfig


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
    data_root: Path | None = None  # replaces the config's data.root
    cache: Path | None = None  # replaces the config's data.cache_dir (the feature cache, `train/features.py`)


def run_train(options: TrainOptions) -> Path:
    """Check the stage and its starting point, read the config, train, and print where the result is."""
    from ainn_cli.train.run import check_run_files, train

    stages = _stages(options.stage)
    config = _train_config(options)
    init = _init_checkpoint(options, stages, config.init_bundle)
    check_run_files(options.out, _inputs(options, config))
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
    from ainn_cli.corpora.sources import data_root
    from ainn_cli.train.config import load_config, validate

    config = load_config(options.config, list(options.overrides), check=False)
    if options.device:
        config = dataclasses.replace(config, device=options.device)
    if options.data:  # paths given on the command line are from the current folder, not the data root
        sources = tuple(_absolute(spec) for spec in options.data)
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, sources=sources))
    root = data_root(options.data_root or config.data.root).absolute()
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, root=str(root)))
    if options.cache is not None:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, cache_dir=str(options.cache)))
    return validate(config)


def _inputs(options: TrainOptions, config: TrainConfig) -> tuple[Path | None, ...]:
    """The files a run reads that its run folder could hold: the config file, the manifests, --init."""
    from ainn_cli.train.config import resolve_sources

    manifests = [Path(spec.partition(":")[2]) for spec in resolve_sources(config.data) if spec.startswith("manifest:")]
    return (options.config, options.init, *manifests)


def _absolute(spec: str) -> str:
    """`kind:path` with the path made absolute from the current folder."""
    kind, sep, where = spec.partition(":")
    return f"{kind}:{Path(where).expanduser().absolute()}" if sep and where else spec


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
