"""One training step's forward: the named losses of a stage from the nets and a batch.

    Objective(nets)(batch, stage, settings) -> {"rec": ..., "cls": ..., ...}   (losses.py, prosody_losses.py)

It is a module around `Nets` so that DistributedDataParallel can wrap the whole step; checkpoints hold the
plain `Nets`.
"""

from __future__ import annotations

import torch
from torch import nn

from ainn_cli.train.data import Batch
from ainn_cli.train.losses import recognizer_losses, stage1_losses, stage2_losses
from ainn_cli.train.nets import RECOGNIZER_STAGE, LossSettings, Nets
from ainn_cli.train.prosody_losses import envelope_losses, stage2_prosody_losses


def stage_losses(nets: Nets, batch: Batch, stage: str, settings: LossSettings) -> dict[str, torch.Tensor]:
    """The named losses of `stage` (stage1, stage2 or recognizer) for the run's variant."""
    if stage == "stage1":
        return stage1_losses(nets, batch, settings)
    if stage == RECOGNIZER_STAGE:
        return recognizer_losses(nets, batch)
    if settings.variant == "prosody":
        return stage2_prosody_losses(nets, batch, settings)
    losses = stage2_losses(nets, batch, settings)
    if settings.variant == "reshape" and batch.parallel is not None:
        losses.update(envelope_losses(nets, batch.parallel))
    return losses


class Objective(nn.Module):
    """`Nets` whose forward is a training step's losses (`stage_losses`)."""

    def __init__(self, nets: Nets) -> None:
        super().__init__()
        self.nets = nets

    def forward(self, batch: Batch, stage: str, settings: LossSettings) -> dict[str, torch.Tensor]:
        return stage_losses(self.nets, batch, stage, settings)
