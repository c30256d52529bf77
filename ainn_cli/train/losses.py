"""AINN's named losses. Each stage returns a dict {name: scalar}; the loop weights them by `lambdas`.

Stage I  (all modules):  rec, cls, str (ranking + triplet), dis (gradient-reversed emotion probe)
Stage II (generator):    rec, cc, ecc, esc, cycle
The `prosody` variant adds par, pros (Stage I) and par, pros, ren (Stage II): prosody_losses.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ainn_cli.models.layers import grad_reverse
from ainn_cli.models.recognizer import Recognizer
from ainn_cli.prosody import Prosody
from ainn_cli.train.augment import warp_factors, warp_mel
from ainn_cli.train.data import Batch
from ainn_cli.train.nets import LossSettings, Nets
from ainn_cli.train.prosody_losses import channels, parallel_losses, read_pair, warped_content

RANK_SCALE = 10.0  # sharpens sigma(Rs(x_i) - Rs(x_j)); Rs lives in (0, 1)
GAIN_NEPERS = 0.6  # recognizer stage: random level change of +-5 dB
LABEL_SMOOTHING = 0.1


def stage1_losses(nets: Nets, batch: Batch, settings: LossSettings) -> dict[str, torch.Tensor]:
    """rec, cls, and (unless the baseline) str and dis."""
    if settings.variant == "prosody":
        return stage1_prosody_losses(nets, batch, settings)
    rec = nets.recognizer(batch.mel, batch.label)
    content = nets.content(batch.mel, rec.cue)  # each encoder's `use_cue` decides whether it reads the cue
    emb = nets.emotion(batch.mel, rec.cue)
    out = nets.generator(content.frames, emb, rec.strength.detach(), content.timbre)
    losses = {"rec": F.l1_loss(out, batch.mel), "cls": F.cross_entropy(rec.logits, batch.label)}
    if settings.variant == "baseline":
        return losses
    losses["str"] = ranking_loss(nets.recognizer, batch) + triplet_loss(emb, batch, settings)
    pooled = torch.cat([content.frames.mean(dim=-1), content.timbre], dim=-1)
    losses["dis"] = F.cross_entropy(nets.probe(grad_reverse(pooled)), batch.label)
    return losses


def stage1_prosody_losses(nets: Nets, batch: Batch, settings: LossSettings) -> dict[str, torch.Tensor]:
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
    losses = {"rec": F.l1_loss(out, batch.mel), "str": triplet_loss(emb, batch, settings),
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


def triplet_loss(emb: torch.Tensor, batch: Batch, settings: LossSettings) -> torch.Tensor:
    """Batch-hard triplet on cosine distance: same emotion and close strength (intensities at most
    `settings.triplet_closeness` apart) vs another emotion, with margin `settings.triplet_margin`."""
    dist = 1 - emb @ emb.T  # (B, B); embeddings are unit-norm
    same = batch.label[:, None] == batch.label[None, :]
    gap = (batch.intensity[:, None] - batch.intensity[None, :]).abs()
    close = torch.nan_to_num(gap, nan=0.0) <= settings.triplet_closeness
    eye = torch.eye(len(emb), dtype=torch.bool, device=emb.device)
    positive = same & close & ~eye
    hardest_pos = torch.where(positive, dist, torch.zeros_like(dist)).amax(dim=1)
    hardest_neg = torch.where(~same, dist, torch.full_like(dist, 4.0)).amin(dim=1)
    valid = positive.any(dim=1) & (~same).any(dim=1)
    loss = F.relu(hardest_pos - hardest_neg + settings.triplet_margin)
    return (loss * valid).sum() / valid.sum().clamp(min=1)


def stage2_losses(nets: Nets, batch: Batch, settings: LossSettings) -> dict[str, torch.Tensor]:
    """Convert each source to its reference's emotion at a strength (the reference's own with probability
    `settings.keep_reference_strength`, else a uniform draw); check three views of it."""
    src, content, emb_src, ref, emb_ref = read_pair(nets, batch)
    with torch.no_grad():
        drawn = torch.rand_like(ref.strength)
        keep = torch.rand_like(drawn) < settings.keep_reference_strength
        target = torch.where(keep, ref.strength, drawn) * (batch.ref_label != 0)
    converted = nets.generator(content.frames, emb_ref, target, content.timbre)
    seen = nets.recognizer(converted, batch.ref_label)
    again = nets.content(converted, seen.cue)
    losses = {
        "rec": F.l1_loss(nets.generator(content.frames, emb_src, src.strength, content.timbre), batch.mel),
        "cc": F.l1_loss(again.frames, content.frames),
        "ecc": F.cross_entropy(seen.logits, batch.ref_label),
        "esc": F.l1_loss(seen.strength, target),
    }
    if settings.cycle:
        back = nets.generator(again.frames, emb_src, src.strength, again.timbre)
        losses["cycle"] = F.l1_loss(back, batch.mel)
    return losses
