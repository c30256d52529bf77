"""`ainn train`: load data, split by speaker, run Stage I and/or Stage II, export a bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from ainn_cli.bundle_files import check_destination
from ainn_cli.console import Ticker
from ainn_cli.device import resolve_device
from ainn_cli.errors import UsageError
from ainn_cli.train.config import TrainConfig, resolve_sources
from ainn_cli.train.data import (
    Corpus,
    Utterance,
    build_corpus,
    cache_key,
    cached_mel,
    cached_pitch,
    load_source,
    repeated,
    split_speakers,
)
from ainn_cli.train.distributed import World, init_world, shutdown
from ainn_cli.train.export import export_bundle
from ainn_cli.train.features import interruptible
from ainn_cli.train.loop import STAGES, load_nets, run_stage, write_run_files
from ainn_cli.train.nets import RECOGNIZER_STAGE, build_nets
from ainn_cli.train.refit import refit_head, save_refit


def load_corpora(config: TrainConfig, quiet: bool = True) -> tuple[dict[str, Corpus], dict[str, list[str]]]:
    """The training sources' utterances split by speaker, each part's features computed (or read from the cache).
    SIGTERM and Ctrl-C stop reading at once (`features.interruptible`)."""
    with interruptible():
        utterances = [u for spec in resolve_sources(config.data) for u in load_source(spec)]
        split = split_speakers(utterances, config.data)
        cache = Path(config.data.cache_dir)
        labels = config.model.recognizer.labels
        prosody = config.variant in ("prosody", "reshape")  # pitch and parallel pairs
        cache_features([u for u in utterances if u.emotion in labels], cache, prosody, quiet)
        corpora = {part: build_corpus(repeated([u for u in utterances if u.speaker in set(speakers)],
                                               config.data.repeat if part == "train" else {}), labels, cache, prosody)
                   for part, speakers in split.items()}
    return corpora, split


def cache_features(utterances: list[Utterance], cache: Path, prosody: bool, quiet: bool) -> None:
    """Compute the log-mel (and with `prosody` the pitch) of every file not in the feature cache yet, one progress
    line per file in a log; the time left counts only files computed, not those found in the cache."""
    with Ticker("features", len(utterances), disable=quiet) as ticker:
        for utterance in utterances:
            cached = (cache / f"{cache_key(utterance.path)}{'.pitch' if prosody else ''}.npy").is_file()
            if not cached:
                mel = cached_mel(utterance.path, cache)
                if prosody:
                    cached_pitch(utterance.path, mel.shape[1], cache)
            ticker.advance(name=Path(utterance.path).name, note="cached" if cached else "", skipped=cached)


def train(config: TrainConfig, run_dir: Path, stages: tuple[str, ...] = STAGES, init: Path | None = None,
          resume: bool = False, export: Path | None = None, quiet: bool = False) -> Path:
    """Run the stages in order (Stage II starts from Stage I's best unless `init`); maybe export."""
    _check_run(config, run_dir, stages, init, resume, export)
    torch.manual_seed(config.seed)
    world = init_world()
    device = _device(config.device, world)
    corpora, split = load_corpora(config, quiet or not world.main)
    if world.main:
        write_run_files(run_dir, config, split)
    checkpoint = init
    try:
        for stage in stages:
            checkpoint = run_stage(config, corpora, run_dir, stage, checkpoint, resume, quiet, world, device)
    finally:
        shutdown(world)
    if world.main and checkpoint is not None and RECOGNIZER_STAGE in stages and config.refit_head > 0:
        checkpoint = refit_run(config, checkpoint, corpora["train"], run_dir / RECOGNIZER_STAGE / "refit.pt")
    if world.main and export is not None and checkpoint is not None:
        export_run(config, checkpoint, corpora["train"], export, split)
    return checkpoint or run_dir


def _check_run(config: TrainConfig, run_dir: Path, stages: tuple[str, ...], init: Path | None, resume: bool,
               export: Path | None) -> None:
    """Refuse before the run folder is touched: a run folder that is a file, a stage that has a checkpoint
    already (without `resume`), a checkpoint to start from that does not fit the model, an export
    destination that is not new, empty or an ainn bundle."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UsageError(f"{run_dir}: exists and is not a folder; give --out a run folder")
    check_run_files(run_dir)
    starts = [init] if init is not None else []
    for stage in stages:
        if (run_dir / stage / "latest.pt").exists():
            if not resume:
                raise UsageError(f"{run_dir / stage} already has a checkpoint; pass --resume to continue it or "
                                 "choose another --out")
            starts.append(run_dir / stage / "latest.pt")
    for checkpoint in starts:
        load_nets(build_nets(config), checkpoint)
    if export is not None:
        check_destination(export, overwrite=True, protect=(run_dir,))


def check_run_files(run_dir: Path, inputs: tuple[Path | None, ...] = ()) -> None:
    """The run files a run writes (config.json, split.json) replace only the files an earlier ainn run wrote there
    (JSON with a run's keys), and never one of the run's own `inputs` (its config file, manifests, --init)."""
    for name, keys in RUN_FILES.items():
        file = run_dir / name
        taken = next((given for given in inputs if given is not None and _same(file, given)), None)
        if taken is not None:
            raise UsageError(f"{file}: is one of this run's inputs ({taken}), and the run would write over it; "
                             "choose another --out")
        if (file.exists() or file.is_symlink()) and not _written_by_a_run(file, keys):
            raise UsageError(f"{file}: exists and was not written by an ainn run, so it is not replaced; choose "
                             "another --out")


RUN_FILES = {"config.json": {"seed", "data", "model", "stage1", "stage2"}, "split.json": {"train", "val", "test"}}


def _written_by_a_run(file: Path, keys: set[str]) -> bool:
    try:
        if not file.is_file() or file.stat().st_size > 1 << 20:
            return False
        data = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(data, dict) and keys <= set(data)


def _same(file: Path, given: Path) -> bool:
    return os.path.realpath(file) == os.path.realpath(given)


def _device(spec: str, world: World) -> torch.device:
    """The configured device; with several ranks on CUDA, each rank takes the GPU of its local rank."""
    device = resolve_device(spec)
    if device.type == "cuda" and world.distributed:
        return torch.device("cuda", world.local_rank)
    return device


def refit_run(config: TrainConfig, checkpoint: Path, corpus: Corpus, out: Path) -> Path:
    """The recognizer stage's best checkpoint with Rc refitted on whole training utterances (train/refit.py)."""
    nets = build_nets(config)
    load_nets(nets, checkpoint)
    return save_refit(nets.state_dict(), out, refit_head(nets.recognizer, corpus, config.refit_head))


def export_run(config: TrainConfig, checkpoint: Path, corpus: Corpus, out_dir: Path,
               split: dict[str, list[str]]) -> Path:
    nets = build_nets(config)
    load_nets(nets, checkpoint)
    metadata = {"checkpoint": str(checkpoint.name), "variant": config.variant, "sources": list(config.data.sources),
                "split": split, "steps": {"stage1": config.stage1.steps, "stage2": config.stage2.steps}}
    return export_bundle(nets, corpus, out_dir, name=out_dir.name, metadata=metadata)
