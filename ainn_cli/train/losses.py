"""AINN's named losses. Each stage returns a dict {name: scalar}; the loop weights them by `lambdas`.

Stage I  (all modules):  rec, cls, str (ranking + triplet), dis (gradient-reversed emotion probe)
Stage II (generator):    rec, cc, ecc, esc, cycle
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.content import ContentEncoder
from ainn_cli.emotion import EmotionEncoder
from ainn_cli.generator import Generator
from ainn_cli.layers import grad_reverse
from ainn_cli.recognizer import Recognizer
from ainn_cli.train.data import Batch

RANK_SCALE = 10.0  # sharpens sigma(Rs(x_i) - Rs(x_j)); Rs lives in (0, 1)


class Nets(nn.Module):
    """The four AINN modules plus the training-only emotion probe on Ec's output."""

    def __init__(self, content: ContentEncoder, emotion: EmotionEncoder, recognizer: Recognizer,
                 generator: Generator) -> None:
        super().__init__()
        self.content, self.emotion, self.recognizer, self.generator = content, emotion, recognizer, generator
        c = content.config
        self.probe = nn.Sequential(
            nn.Linear(c.content_dim + c.timbre_dim, 128), nn.GELU(), nn.Linear(128, len(recognizer.config.labels))
        )

    def forward(self, batch: Batch, stage: str, variant: str, margin: float, cycle: bool) -> dict[str, torch.Tensor]:
        """The named losses of a stage (a forward pass, so DistributedDataParallel can wrap it)."""
        if stage == "stage1":
            return stage1_losses(self, batch, variant, margin)
        return stage2_losses(self, batch, cycle)

    def components(self) -> dict[str, nn.Module]:
        return {"content_encoder": self.content, "emotion_encoder": self.emotion,
                "recognizer": self.recognizer, "generator": self.generator}


def stage1_losses(nets: Nets, batch: Batch, variant: str, margin: float) -> dict[str, torch.Tensor]:
    """rec, cls, and (unless the baseline) str and dis."""
    rec = nets.recognizer(batch.mel, batch.label)
    cue = rec.cue if variant == "full" else torch.ones_like(rec.cue)
    content = nets.content(batch.mel, cue)
    emb = nets.emotion(batch.mel, cue)
    out = nets.generator(content.frames, emb, rec.strength.detach(), content.timbre)
    losses = {"rec": F.l1_loss(out, batch.mel), "cls": F.cross_entropy(rec.logits, batch.label)}
    if variant == "baseline":
        return losses
    losses["str"] = ranking_loss(nets.recognizer, batch) + triplet_loss(emb, batch, margin)
    pooled = torch.cat([content.frames.mean(dim=-1), content.timbre], dim=-1)
    losses["dis"] = F.cross_entropy(nets.probe(grad_reverse(pooled)), batch.label)
    return losses


def ranking_loss(recognizer: Recognizer, batch: Batch) -> torch.Tensor:
    """Mix x_l = l x_e + (1 - l) x_n at two l_i > l_j; -log sigma(Rs(x_i) - Rs(x_j)); neutral -> 0."""
    emotional = batch.label != 0
    lam = torch.rand(2, batch.mel.shape[0], 1, 1, device=batch.mel.device).sort(dim=0).values
    mixes = lam * batch.mel.unsqueeze(0) + (1 - lam) * batch.neutral.unsqueeze(0)  # (2, B, 80, T)
    both = recognizer(torch.cat([mixes[1], mixes[0], batch.neutral]), batch.label.repeat(3)).strength
    hi, lo, neutral = both.chunk(3)
    rank = -F.logsigmoid(RANK_SCALE * (hi - lo))
    rank = (rank * emotional).sum() / emotional.sum().clamp(min=1)
    pin = F.binary_cross_entropy(neutral.clamp(1e-6, 1 - 1e-6), torch.zeros_like(neutral))
    return rank + pin


def triplet_loss(emb: torch.Tensor, batch: Batch, margin: float) -> torch.Tensor:
    """Batch-hard triplet on cosine distance: same emotion and close strength vs another emotion."""
    dist = 1 - emb @ emb.T  # (B, B); embeddings are unit-norm
    same = batch.label[:, None] == batch.label[None, :]
    gap = (batch.intensity[:, None] - batch.intensity[None, :]).abs()
    close = torch.nan_to_num(gap, nan=0.0) <= 0.25
    eye = torch.eye(len(emb), dtype=torch.bool, device=emb.device)
    positive = same & close & ~eye
    hardest_pos = torch.where(positive, dist, torch.zeros_like(dist)).amax(dim=1)
    hardest_neg = torch.where(~same, dist, torch.full_like(dist, 4.0)).amin(dim=1)
    valid = positive.any(dim=1) & (~same).any(dim=1)
    loss = F.relu(hardest_pos - hardest_neg + margin)
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def stage2_losses(nets: Nets, batch: Batch, cycle: bool) -> dict[str, torch.Tensor]:
    """Convert each source to its reference's emotion at a drawn strength; check three views of it."""
    with torch.no_grad():
        src = nets.recognizer(batch.mel, batch.label)
        content = nets.content(batch.mel, src.cue)
        emb_src = nets.emotion(batch.mel, src.cue)
        ref = nets.recognizer(batch.ref, batch.ref_label)
        emb_ref = nets.emotion(batch.ref, ref.cue)
        drawn = torch.rand_like(ref.strength)
        target = torch.where(torch.rand_like(drawn) < 0.5, ref.strength, drawn) * (batch.ref_label != 0)
    converted = nets.generator(content.frames, emb_ref, target, content.timbre)
    seen = nets.recognizer(converted, batch.ref_label)
    again = nets.content(converted, seen.cue)
    losses = {
        "rec": F.l1_loss(nets.generator(content.frames, emb_src, src.strength, content.timbre), batch.mel),
        "cc": F.l1_loss(again.frames, content.frames),
        "ecc": F.cross_entropy(seen.logits, batch.ref_label),
        "esc": F.l1_loss(seen.strength, target),
    }
    if cycle:
        back = nets.generator(again.frames, emb_src, src.strength, again.timbre)
        losses["cycle"] = F.l1_loss(back, batch.mel)
    return losses
