"""The losses of the `prosody` variant, next to the paper's (losses.py).

Stage I keeps R as the init bundle trained it and trains Ec, Ee, G and the predictor P with
rec, str (the triplet on e), dis (Ec reads a frequency-warped mel, G renders the real prosody) and
    par   L1(G(Ec(warp(neutral)), Ee(ref), Rs(ref), prosody(target)), target), target = the emotional
          take of the same sentence DTW-aligned to the neutral one: the spectral side of each emotion
    pros  smooth-L1(P(Ee(ref), level), measured prosody change neutral -> emotional take)
Stage II (G and P train; R, Ec, Ee frozen) converts with the *predicted* prosody:
    rec, par, pros, cc, ecc, esc as in the paper's Stage II, and
    ren   L1(energy(converted), the energy contour G was asked to render)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from ainn_cli.pitch import energy, prosody_inputs
from ainn_cli.prosody import CHANGES, Prosody, apply_change, reshape_mel, split_envelope
from ainn_cli.train.augment import warp_factors, warp_mel
from ainn_cli.train.critic import critic_losses
from ainn_cli.train.data import Batch, ParallelBatch
from ainn_cli.train.nets import LossSettings, Nets

if TYPE_CHECKING:
    from ainn_cli.models.content import Content
    from ainn_cli.models.recognizer import Recognition


def channels(prosody: Prosody) -> torch.Tensor:
    """Prosody -> the generator's input channels `(B, 3, T)`."""
    return prosody_inputs(prosody.log_f0, prosody.voiced, prosody.energy)


def warped_content(nets: Nets, mel: torch.Tensor, cue: torch.Tensor) -> Content:
    """Ec on a randomly frequency-warped `mel` `(B, 80, T)`; the timbre still comes from the real mel."""
    alpha = warp_factors(mel.shape[0], mel.shape[-1]).to(mel.device)
    content: Content = nets.content(warp_mel(mel, alpha), cue, voice_mel=mel)
    return content


def parallel_losses(nets: Nets, par: ParallelBatch, warp: bool = True) -> dict[str, torch.Tensor]:
    """`par` and `pros` on RAVDESS's parallel takes (see the module docstring)."""
    with torch.no_grad():  # R is not trained by the prosody variant
        source_cue = nets.recognizer(par.source, torch.zeros_like(par.label)).cue
        ref = nets.recognizer(par.ref, par.label)
    content = warped_content(nets, par.source, source_cue) if warp else nets.content(par.source, source_cue)
    emb = nets.emotion(par.ref, ref.cue)
    target = channels(Prosody.of(par.target, par.target_pitch))
    out = nets.generator(content.frames, emb, ref.strength.detach(), content.timbre, target)
    assert nets.prosody is not None
    change = nets.prosody(emb, par.level)
    return {"par": F.l1_loss(out, par.target), "pros": F.smooth_l1_loss(change, par.change, beta=0.1)}


@torch.no_grad()
def reshaped_source(nets: Nets, par: ParallelBatch) -> tuple[Content, torch.Tensor, torch.Tensor]:
    """What G converts in the `reshape` variant: the neutral take with the pair's own measured pitch and energy
    change applied by DSP (`prosody.reshape_mel`, as `--model` with a prosody predictor does when converting;
    the duration is kept, since the target is aligned to the source's frames), read by the frozen R and Ec;
    and the reference's e and raw strength."""
    change = par.change.clone()
    change[:, CHANGES.index("log_duration")] = 0.0
    shaped = reshape_mel(par.source, Prosody.of(par.source, par.source_pitch), change)
    content: Content = nets.content(shaped, nets.recognizer(shaped).cue)
    ref = nets.recognizer(par.ref, par.label)
    return content, nets.emotion(par.ref, ref.cue), ref.strength


def envelope_losses(nets: Nets, par: ParallelBatch) -> dict[str, torch.Tensor]:
    """`env`: the spectral envelope (14 cepstra: tilt, formants, level) of G's conversion of the reshaped
    neutral take against the real emotional take's, DTW-aligned: the voice-quality side of each emotion.
    `par`: the same on the whole mel (harmonics included, which the DSP placed only on average); with a critic,
    `adv` (critic.py)."""
    content, emb, strength = reshaped_source(nets, par)
    out = nets.generator(content.frames, emb, strength, content.timbre)
    envelope, target = split_envelope(out)[0], split_envelope(par.target)[0]
    losses = {"env": F.l1_loss(envelope, target), "par": F.l1_loss(out, par.target)}
    if nets.critic is not None:  # `adv`: the conversion against the real takes of its emotion (critic.py)
        losses.update(critic_losses(nets.critic, par.ref, out, par.label))
    return losses


def target_level(batch: Batch, keep_reference: float) -> torch.Tensor:
    """Strength level `(B,)` for Stage II conversions: the reference's intensity (with probability
    `keep_reference`) or a uniform draw."""
    drawn = torch.rand(batch.ref_label.shape, device=batch.ref.device)
    known = torch.nan_to_num(batch.ref_intensity, nan=1.0) if batch.ref_intensity is not None else drawn
    level = torch.where(torch.rand_like(drawn) < keep_reference, known, drawn)
    return level * (batch.ref_label != 0)


@torch.no_grad()
def read_pair(nets: Nets, batch: Batch) -> tuple[Recognition, Content, torch.Tensor, Recognition, torch.Tensor]:
    """Stage II's frozen view of a batch: R, Ec and Ee of the source and R and Ee of the reference."""
    src = nets.recognizer(batch.mel, batch.label)
    content = nets.content(batch.mel, src.cue)
    emb_src = nets.emotion(batch.mel, src.cue)
    ref = nets.recognizer(batch.ref, batch.ref_label)
    return src, content, emb_src, ref, nets.emotion(batch.ref, ref.cue)


def stage2_prosody_losses(nets: Nets, batch: Batch, settings: LossSettings) -> dict[str, torch.Tensor]:
    """Convert each source towards its reference with the predicted prosody; score it from four views."""
    assert batch.pitch is not None and nets.prosody is not None
    src, content, emb_src, ref, emb_ref = read_pair(nets, batch)
    with torch.no_grad():
        level = target_level(batch, settings.keep_reference_strength)
        raw = ref.strength * level
        source = Prosody.of(batch.mel, batch.pitch)
        wanted = apply_change(source, nets.prosody(emb_ref, level))
    converted = nets.generator(content.frames, emb_ref, raw, content.timbre, channels(wanted))
    seen = nets.recognizer(converted, batch.ref_label)
    again = nets.content(converted, seen.cue)
    rebuilt = nets.generator(content.frames, emb_src, src.strength, content.timbre, channels(source))
    losses = {
        "rec": F.l1_loss(rebuilt, batch.mel),
        "cc": F.l1_loss(again.frames, content.frames),
        "ecc": F.cross_entropy(seen.logits, batch.ref_label),
        "esc": F.l1_loss(seen.strength, raw),
        "ren": F.l1_loss(energy(converted), wanted.energy),
    }
    if batch.parallel is not None:
        losses.update(parallel_losses(nets, batch.parallel, warp=False))
    return losses
