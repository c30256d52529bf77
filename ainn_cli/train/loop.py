"""The training loop shared by both stages: state, checkpoints, resume, logging, validation.

    RUN_DIR/config.json  split.json
    RUN_DIR/stage1/{latest.pt, best.pt, log.csv}
    RUN_DIR/stage2/{latest.pt, best.pt, log.csv}

A checkpoint holds the unwrapped modules' state dicts, the optimiser, the step and the best
validation loss. Batches are a function of the step, so `resume` continues the exact data order.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import pickle
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ainn_cli.bundle import load_strict
from ainn_cli.console import Ticker
from ainn_cli.errors import OutputError, UsageError
from ainn_cli.files import replace_file
from ainn_cli.train.config import StageConfig, TrainConfig
from ainn_cli.train.data import Batch, Corpus, batches, make_batch
from ainn_cli.train.distributed import World, barrier, in_sync, wrap
from ainn_cli.train.nets import RECOGNIZER_STAGE, LossSettings, Nets, build_nets
from ainn_cli.train.objective import Objective
from ainn_cli.train.warmstart import warm_start

STOP = threading.Event()  # set by `request_stop`; the loop checks it between steps
STAGES = ("stage1", "stage2")  # what --stage both runs
VAL_SEED_OFFSET = 10_000_019  # validation batches use their own fixed stream


@dataclass
class TrainState:
    nets: Nets  # the plain modules: what checkpoints hold
    model: nn.Module  # what the step runs: `Objective(nets)`, or DDP around it
    optimizer: torch.optim.Optimizer
    device: torch.device
    world: World = field(default_factory=World)
    step: int = 0
    best: float = math.inf


def trainable(nets: Nets, stage: str, variant: str) -> list[nn.Parameter]:
    """Stage I trains everything (but R in the prosody variant); Stage II the generator (and, in the prosody
    variant, the predictor: the reshape variant keeps the fitted one; and the critic where there is one); the
    recognizer stage R alone."""
    if stage == RECOGNIZER_STAGE:
        nets.requires_grad_(False)
        nets.recognizer.requires_grad_(True)
        return list(nets.recognizer.parameters())
    if stage == "stage1":
        nets.recognizer.requires_grad_(variant != "prosody")
        return [p for p in nets.parameters() if p.requires_grad]
    nets.requires_grad_(False)
    trained = [nets.generator, *([nets.prosody] if variant == "prosody" and nets.prosody is not None else []),
               *([nets.critic] if nets.critic is not None else [])]
    for module in trained:
        module.requires_grad_(True)
    return [p for module in trained for p in module.parameters()]


def new_state(config: TrainConfig, stage: str, init: Path | None, world: World | None = None,
              device: torch.device | None = None) -> TrainState:
    world, device = world or World(), device or torch.device("cpu")
    nets = build_nets(config)
    if init is not None:
        load_nets(nets, init)
    elif config.init_bundle:
        warm_start(nets.components(), Path(config.init_bundle))
    nets.to(device)
    stage_cfg: StageConfig = getattr(config, stage)
    optimizer = torch.optim.AdamW(param_groups(nets, trainable(nets, stage, config.variant), stage_cfg.lr,
                                               config.critic_lr_scale),
                                  lr=stage_cfg.lr, betas=stage_cfg.betas, weight_decay=stage_cfg.weight_decay)
    return TrainState(nets=nets, model=wrap(Objective(nets), world, device), optimizer=optimizer, device=device,
                      world=world)


def param_groups(nets: Nets, params: list[nn.Parameter], lr: float, critic_scale: float) -> list[dict[str, Any]]:
    """The optimiser's groups: the trained modules at the stage's rate, the critic (if trained) at its own."""
    critic = {id(p) for p in nets.critic.parameters()} if nets.critic is not None else set()
    groups: list[dict[str, Any]] = [{"params": [p for p in params if id(p) not in critic]},
                                    {"params": [p for p in params if id(p) in critic], "lr": lr * critic_scale}]
    return [g for g in groups if g["params"]]


def save_checkpoint(state: TrainState, file: Path) -> None:
    data = {"nets": state.nets.state_dict(), "optimizer": state.optimizer.state_dict(),
            "step": state.step, "best": state.best}
    try:
        replace_file(file, lambda tmp: torch.save(data, tmp))
    except RuntimeError:  # torch's zip writer on a short write ("unexpected pos"): its temp file is gone already
        raise OutputError(f"{file}: cannot write (the write stopped short: the disk is full or a file-size limit "
                          "was reached)") from None


def read_checkpoint(file: Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """What `save_checkpoint` wrote; an empty, truncated or foreign file is one UsageError."""
    if not zipfile.is_zipfile(file):  # torch.save's format; also refuses folders, empty and cut-off files
        raise UsageError(f"{file}: not an ainn checkpoint (not a complete torch.save file)")
    try:
        data = torch.load(file, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, ValueError, KeyError, pickle.UnpicklingError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise UsageError(f"{file}: not a readable ainn checkpoint ({reason})") from None
    checkpoint: dict[str, Any] = data if isinstance(data, dict) else {}
    state = checkpoint.get("nets")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UsageError(f"{file}: not an ainn checkpoint (no state dict under 'nets')")
    return checkpoint


def load_nets(nets: Nets, file: Path) -> dict[str, Any]:
    """Load a checkpoint's weights into `nets` strictly (a key and shape diff on mismatch); returns the checkpoint.
    A checkpoint without a critic starts the critic of `nets` fresh (a Stage II with `adv` after one without)."""
    data = read_checkpoint(file)
    state = data["nets"]
    if nets.critic is not None and not any(k.startswith("critic.") for k in state):
        state = {**state, **{f"critic.{k}": v for k, v in nets.critic.state_dict().items()}}
    load_strict(nets, state, file)
    return data


def load_checkpoint(state: TrainState, file: Path) -> None:
    data = load_nets(state.nets, file)
    step, best = data.get("step"), data.get("best")
    if type(step) is not int or step < 0 or not isinstance(best, float) or not isinstance(data.get("optimizer"), dict):
        raise UsageError(f"{file}: not an ainn checkpoint (no step, best loss or optimiser state)")
    try:
        state.optimizer.load_state_dict(data["optimizer"])
    except (ValueError, KeyError, TypeError, RuntimeError) as err:
        raise UsageError(f"{file}: its optimiser state does not fit this stage ({err})") from None
    state.step, state.best = step, best


def compute_losses(model: nn.Module, batch: Batch, config: TrainConfig, stage: str) -> dict[str, torch.Tensor]:
    """`model` is Objective(nets) or DDP around it; on CUDA the forward runs in bf16 autocast."""
    device = batch.mel.device.type
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        losses: dict[str, torch.Tensor] = model(batch, stage, LossSettings.of(config))
    return {k: v.float() for k, v in losses.items()}


def weighted_total(losses: dict[str, torch.Tensor], lambdas: dict[str, float],
                   device: torch.device | None = None) -> torch.Tensor:
    return sum((lambdas.get(name, 0.0) * value for name, value in losses.items()), torch.zeros((), device=device))


def train_step(state: TrainState, batch: Batch, config: TrainConfig, stage: str) -> dict[str, float]:
    state.nets.train()
    torch.manual_seed(config.seed + state.step)  # random draws inside the losses follow the step too
    losses = compute_losses(state.model, batch.to(state.device), config, stage)
    total = weighted_total(losses, getattr(config, stage).lambdas, state.device)
    state.optimizer.zero_grad(set_to_none=True)
    total.backward()  # type: ignore[no-untyped-call]
    params = [p for group in state.optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
    state.optimizer.step()
    state.step += 1
    return {"total": total.item(), **{k: v.item() for k, v in losses.items()}}


def validate(state: TrainState, corpus: Corpus, config: TrainConfig, stage: str) -> dict[str, float]:
    """Mean weighted loss and recognizer accuracy over fixed validation batches."""
    state.nets.eval()
    sums: dict[str, float] = {}
    torch.manual_seed(config.seed)
    for i in range(config.val_batches):
        batch = make_batch(corpus, config.data.segment_frames, config.data.batch_size, config.seed + VAL_SEED_OFFSET, i)
        batch = batch.to(state.device)
        with torch.no_grad():
            losses = compute_losses(Objective(state.nets), batch, config, stage)
            acc = (state.nets.recognizer(batch.mel).logits.argmax(-1) == batch.label).float().mean()
        total = weighted_total(losses, getattr(config, stage).lambdas, state.device)
        values = {"total": float(total), "acc": float(acc)}
        values.update({k: float(v) for k, v in losses.items()})
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v / config.val_batches
    return {f"val_{k}": v for k, v in sums.items()}


class CsvLog:
    """Append-only CSV of every logged quantity; the header grows if new names appear."""

    def __init__(self, file: Path) -> None:
        self.file = file

    def write(self, row: dict[str, Any]) -> None:
        names, rows = self._read()
        added = [k for k in row if k not in names]
        if names and not added:
            with open(self.file, "a", newline="") as handle:
                csv.DictWriter(handle, names).writerow(row)
            return
        self._rewrite(names + added, [*rows, row])

    def drop_after(self, step: int) -> None:
        """Forget rows logged after `step`: a run resumed from `step` logs them again."""
        names, rows = self._read()
        if names:
            self._rewrite(names, [r for r in rows if int(r["step"]) <= step])

    def _read(self) -> tuple[list[str], list[dict[str, str]]]:
        """The header's names and the rows; nothing when there is no log yet."""
        if not self.file.exists():
            return [], []
        with open(self.file, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
        return list(reader.fieldnames or []), rows

    def _rewrite(self, names: list[str], rows: list[dict[str, Any]]) -> None:
        """Replace the whole file at once: a crash leaves the old log or the new one, never half of it."""
        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as handle:
                writer = csv.DictWriter(handle, names)
                writer.writeheader()
                writer.writerows(rows)

        replace_file(self.file, write)


def run_stage(config: TrainConfig, corpora: dict[str, Corpus], run_dir: Path, stage: str, init: Path | None,
              resume: bool, quiet: bool = False, world: World | None = None,
              device: torch.device | None = None) -> Path:
    """Train one stage to `steps`; returns the path of its best checkpoint."""
    if stage not in (*STAGES, RECOGNIZER_STAGE):
        raise UsageError(f"unknown stage {stage!r}")
    folder = run_dir / stage
    folder.mkdir(parents=True, exist_ok=True)
    state = new_state(config, stage, init, world, device)
    if resume and (folder / "latest.pt").exists():
        load_checkpoint(state, folder / "latest.pt")
    elif (folder / "latest.pt").exists():
        raise UsageError(f"{folder} already has a checkpoint; pass --resume to continue it or choose another --out")
    steps = getattr(config, stage).steps
    with Ticker(stage, steps, disable=quiet or not state.world.main, every=config.log_every) as ticker:
        ticker.update(state.step, skipped=True)  # a resumed run's steps so far took no time in this process
        try:
            _loop(state, config, corpora, stage, folder, ticker, steps)
        except KeyboardInterrupt:
            _checkpoint(state, folder, "latest.pt")
            raise
    _checkpoint(state, folder, "latest.pt")
    if state.world.main and not (folder / "best.pt").exists():
        save_checkpoint(state, folder / "best.pt")
    barrier(state.world)
    return folder / "best.pt"


def _checkpoint(state: TrainState, folder: Path, name: str) -> None:
    """Rank 0 writes; every rank first checks that the weights are still identical everywhere."""
    if not in_sync(state.nets, state.world):
        raise RuntimeError(f"ranks diverged before step {state.step}'s checkpoint")
    if state.world.main:
        save_checkpoint(state, folder / name)
    barrier(state.world)


def _loop(state: TrainState, config: TrainConfig, corpora: dict[str, Corpus], stage: str, folder: Path,
          ticker: Ticker, steps: int) -> None:
    start, log, main = time.perf_counter(), CsvLog(folder / "log.csv"), state.world.main
    if main:
        log.drop_after(state.step)
    for batch in batches(corpora["train"], config.data, state.world.seed(config.seed), state.step, steps):
        values = train_step(state, batch, config, stage)
        ticker.update(state.step, "", " ".join(f"{k}={v:.3f}" for k, v in values.items()))
        if main and (state.step % config.log_every == 0 or state.step == steps):
            log.write({"step": state.step, "seconds": round(time.perf_counter() - start, 1),
                       "ranks": state.world.size, **values})
        if main and (state.step % config.val_every == 0 or state.step == steps):
            _validate_and_keep_best(state, config, corpora, stage, folder, log)
        if state.step % config.checkpoint_every == 0:
            _checkpoint(state, folder, "latest.pt")
        if STOP.is_set():  # Ctrl-C or SIGTERM arrived during the step: stop here, at a safe point
            raise KeyboardInterrupt


def request_stop(signum: int, frame: object) -> None:
    """Signal handler for training: the first Ctrl-C / SIGTERM asks the loop to stop after the current step
    (it then saves `latest`); a second one interrupts at once."""
    if STOP.is_set():
        raise KeyboardInterrupt
    STOP.set()


def _validate_and_keep_best(state: TrainState, config: TrainConfig, corpora: dict[str, Corpus], stage: str,
                            folder: Path, log: CsvLog) -> None:
    if "val" not in corpora or not corpora["val"].utterances:
        return
    metrics = validate(state, corpora["val"], config, stage)
    log.write({"step": state.step, **metrics})
    if metrics["val_total"] < state.best:
        state.best = metrics["val_total"]
        save_checkpoint(state, folder / "best.pt")


def write_run_files(run_dir: Path, config: TrainConfig, split: dict[str, list[str]]) -> None:
    """The resolved config and the speaker split, each written whole or not at all (`run.check_run_files` has
    made sure they replace only an earlier run's)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("config.json", config.to_json()), ("split.json", json.dumps(split, indent=2))):
        replace_file(run_dir / name, functools.partial(_write_text, text=text + "\n"))


def _write_text(path: str, text: str) -> None:
    Path(path).write_text(text)
