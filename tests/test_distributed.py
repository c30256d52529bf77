"""Two ranks with gloo on 127.0.0.1: DDP training keeps them in sync, and the sync check can fail."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import cast

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.multiprocessing.spawn import spawn as _untyped_spawn

from ainn_cli.train.distributed import World, in_sync
from tests.test_train import TINY, manifest  # noqa: F401  (manifest is a fixture)

REPO = Path(__file__).resolve().parent.parent
spawn = cast(Callable[..., object], _untyped_spawn)  # torch leaves spawn unannotated


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _check_sync(rank: int, port: int, perturb: bool, results: dict[int, bool]) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    torch.manual_seed(0)
    layer = torch.nn.Linear(4, 4)
    if perturb and rank == 1:
        with torch.no_grad():
            layer.weight[0, 0] += 1e-3
    results[rank] = in_sync(layer, World(rank=rank, size=2))
    dist.destroy_process_group()


def sync_results(perturb: bool) -> dict[int, bool]:
    with mp.Manager() as manager:
        results = manager.dict()
        spawn(_check_sync, args=(free_port(), perturb, results), nprocs=2)
        return dict(results)


@pytest.mark.slow
def test_sync_check_detects_divergence() -> None:
    assert sync_results(perturb=False) == {0: True, 1: True}
    assert sync_results(perturb=True) == {0: False, 1: False}


@pytest.mark.slow
def test_torchrun_two_ranks_train_in_sync(manifest: Path, tmp_path: Path) -> None:  # noqa: F811
    run = tmp_path / "run"
    overrides = [*TINY, f"data.sources=[\"manifest:{manifest}\"]", f"data.cache_dir=\"{tmp_path / 'cache'}\"",
                 "stage1.steps=3", "device=\"cpu\""]
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "ainn_cli", "train",
               "--config", str(REPO / "configs" / "default.toml"), "--out", str(run), "--stage", "stage1", "--quiet"]
    for item in overrides:
        command += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(run / "stage1" / "log.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("ranks")]
    assert [r["step"] for r in rows] == ["1", "2", "3"] and all(r["ranks"] == "2" for r in rows)
    checkpoint = torch.load(run / "stage1" / "latest.pt", weights_only=True)
    assert checkpoint["step"] == 3 and not any(k.startswith("module.") for k in checkpoint["nets"])
