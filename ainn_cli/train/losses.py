"""AINN's named losses. Each stage returns a dict {name: scalar}; the loop weights them by `lambdas`.

Stage I  (all modules):  rec, cls, str (ranking + triplet), dis (gradient-reversed emotion probe)
Stage II (generator):    rec, cc, ecc, esc, cycle
The `prosody` variant adds par, pros (Stage I) and par, pros, ren (Stage II): prosody_losses.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ainn_cli.content import ContentEncoder
from ainn_cli.emotion import EmotionEncoder
from ainn_cli.generator import Generator
from ainn_cli.layers import grad_reverse
from ainn_cli.prosody import Prosody, ProsodyPredictor
from ainn_cli.recognizer import Recognizer
from ainn_cli.train.augment import warp_factors, warp_mel
from ainn_cli.train.data import Batch
from ainn_cli.train.prosody_losses import (
    channels,
    parallel_losses,
    read_pair,
    stage2_prosody_losses,
    warped_content,
)

RANK_SCALE = 10.0  # sharpens sigma(Rs(x_i) - Rs(x_j)); Rs lives in (0, 1)
GAIN_NEPERS = 0.6  # recognizer stage: random level change of +-5 dB
LABEL_SMOOTHING = 0.1


class Nets(nn.Module):
    """The four AINN modules, the prosody predictor (prosody variant) and the training-only emotion probe."""

    def __init__(self, content: ContentEncoder, emotion: EmotionEncoder, recognizer: Recognizer,
                 generator: Generator, prosody: ProsodyPredictor | None = None) -> None:
        super().__init__()
        self.content, self.emotion, self.recognizer, self.generator = content, emotion, recognizer, generator
        self.prosody = prosody
        c = content.config
        self.probe = nn.Sequential(
            nn.Linear(c.content_dim + c.timbre_dim, 128), nn.GELU(), nn.Linear(128, len(recognizer.config.labels))
        )

    def forward(self, batch: Batch, stage: str, variant: str, margin: float, cycle: bool) -> dict[str, torch.Tensor]:
        """The named losses of a stage (a forward pass, so DistributedDataParallel can wrap it)."""
        if stage == "stage1":
            return stage1_losses(self, batch, variant, margin)
        if stage == "recognizer":
            return recognizer_losses(self, batch)
        if variant == "prosody":
            return stage2_prosody_losses(self, batch)
        return stage2_losses(self, batch, cycle)

    def components(self) -> dict[str, nn.Module]:
        parts: dict[str, nn.Module] = {"content_encoder": self.content, "emotion_encoder": self.emotion,
                                       "recognizer": self.recognizer, "generator": self.generator}
        if self.prosody is not None:
            parts["prosody"] = self.prosody
        return parts


def stage1_losses(nets: Nets, batch: Batch, variant: str, margin: float) -> dict[str, torch.Tensor]:
    """rec, cls, and (unless the baseline) str and dis."""
    if variant == "prosody":
        return stage1_prosody_losses(nets, batch, margin)
    rec = nets.recognizer(batch.mel, batch.label)
    cue = rec.cue if variant == "paper" else torch.ones_like(rec.cue)
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


def stage1_prosody_losses(nets: Nets, batch: Batch, margin: float) -> dict[str, torch.Tensor]:
    """The prosody variant's Stage I: R stays as the init bundle trained it (cue, strength); Ec reads a
    warped mel, G renders the real prosody; str is the triplet on e; par and pros from the parallel takes."""
    assert batch.pitch is not None
    with torch.no_grad():
        rec = nets.recognizer(batch.mel, batch.label)
    content = warped_content(nets, batch.mel, rec.cue)
    emb = nets.emotion(batch.mel, rec.cue)
    prosody = channels(Prosody.of(batch.mel, batch.pitch))
    out = nets.generator(content.frames, emb, rec.strength, content.timbre, prosody)
    pooled = torch.cat([content.frames.mean(dim=-1), content.timbre], dim=-1)
    losses = {"rec": F.l1_loss(out, batch.mel), "str": triplet_loss(emb, batch, margin),
              "dis": F.cross_entropy(nets.probe(grad_reverse(pooled)), batch.label)}
    if batch.parallel is not None:
        losses.update(parallel_losses(nets, batch.parallel))
    return losses


def recognizer_losses(nets: Nets, batch: Batch) -> dict[str, torch.Tensor]:
    """R alone: `cls` on a frequency-warped, gain-shifted mel (voices and levels it has not heard), with
    label smoothing; `str` the strength ranking on the clean mels."""
    alpha = warp_factors(batch.mel.shape[0], batch.mel.shape[-1]).to(batch.mel.device)
    gain = (torch.rand(batch.mel.shape[0], 1, 1, device=batch.mel.device) * 2 - 1) * GAIN_NEPERS
    logits = nets.recognizer(warp_mel(batch.mel, alpha) + gain, batch.label).logits
    return {"cls": F.cross_entropy(logits, batch.label, label_smoothing=LABEL_SMOOTHING),
            "str": ranking_loss(nets.recognizer, batch)}


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
    src, content, emb_src, ref, emb_ref = read_pair(nets, batch)
    with torch.no_grad():
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
