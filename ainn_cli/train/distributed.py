"""Several processes (GPUs or machines) with `torchrun`: DistributedDataParallel, gloo on CPU, nccl on CUDA.

    torchrun --nproc_per_node 4 -m ainn_cli train --config configs/default.toml --out runs/x

Rank 0 logs, validates and writes checkpoints; every rank draws its own batches (seed + rank) and
DDP averages the gradients, so the weights stay identical on all ranks (checked at each checkpoint).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

RANK_SEED_STRIDE = 1_000_003  # rank r draws batches from seed + r * stride


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def seed(self, seed: int) -> int:
        return seed + self.rank * RANK_SEED_STRIDE


def init_world() -> World:
    """Join the process group that torchrun describes in the environment; a single process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def wrap(nets: nn.Module, world: World, device: torch.device) -> nn.Module:
    """DDP around the module when distributed (unused parameters allowed: the probe idles in Stage II)."""
    if not world.distributed:
        return nets
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(nets, device_ids=ids, find_unused_parameters=True)


def in_sync(module: nn.Module, world: World) -> bool:
    """True when every rank holds bit-identical weights (a sha256 of them per rank, gathered)."""
    if not world.distributed:
        return True
    digest = hashlib.sha256()
    for tensor in module.state_dict().values():
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    device = next(module.parameters()).device  # nccl gathers CUDA tensors only
    mine = torch.tensor(list(digest.digest()), dtype=torch.uint8, device=device)
    gathered = [torch.zeros_like(mine) for _ in range(world.size)]
    dist.all_gather(gathered, mine)
    return all(torch.equal(g, gathered[0]) for g in gathered)


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def shutdown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()
