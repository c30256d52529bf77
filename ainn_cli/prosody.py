"""The explicit prosody path: measure an utterance's prosody and apply a predicted change to it.

    change (B, 4) = [d median ln f0, ln range ratio, d energy, ln duration ratio]  (models/predictor.py)
    source prosody (B, T) --shift/scale voiced ln f0, raise speech energy--> target prosody
    contour (B, K): ln f0 offsets at K points evenly spread over the speech span --interpolated--> (B, T)
    content, prosody (B, C, T) --linear resampling in time by exp(ln duration ratio)--> (B, C, T')

The predictor is trained on RAVDESS's parallel takes (an actor's emotional take minus the neutral take
of the same sentence, see `measure_change`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.audio import F_MAX, F_MIN, N_MELS
from ainn_cli.controls import Controls
from ainn_cli.mel import hz_to_mel, mel_to_hz
from ainn_cli.pitch import energy

CHANGES = ("log_f0_shift", "log_f0_range", "energy_shift", "log_duration")  # what the predictor predicts
SPEECH_DB = 40.0  # frames within this many dB of the loudest count as speech (duration, energy)
NEPER_TO_DB = 20 / math.log(10)  # energy is ln of a magnitude
SEMITONES = 12 / math.log(2)  # semitones per unit of ln f0
MAX_RATE_CHANGE = 0.5  # |ln duration ratio| is clipped here (x0.61 .. x1.65)
MAX_WARP = 2.0  # frequency warp of the fine structure: at most one octave either way
ENVELOPE_CEPSTRA = 14  # cepstra of the 80-band log-mel that form the spectral envelope


@dataclass(frozen=True)
class Prosody:
    """Frame-level prosody of a batch: every field `(B, T)`."""

    log_f0: torch.Tensor  # ln Hz, continuous (unvoiced frames interpolated)
    voiced: torch.Tensor  # 0/1
    energy: torch.Tensor  # ln mean mel magnitude

    @classmethod
    def of(cls, mel: torch.Tensor, track: torch.Tensor) -> Prosody:
        """From a log-mel `(B, 80, T)` and a pitch track `(B, 2, T)` (ln f0, voicing; `pitch.pitch_track`)."""
        return cls(log_f0=track[:, 0], voiced=track[:, 1], energy=energy(mel))

    def retimed(self, frames: int) -> Prosody:
        voiced = retime(self.voiced.unsqueeze(1).float(), frames).squeeze(1)
        return Prosody(retime(self.log_f0.unsqueeze(1), frames).squeeze(1), (voiced > 0.5).float(),
                       retime(self.energy.unsqueeze(1), frames).squeeze(1))


def speech_mask(frame_energy: torch.Tensor) -> torch.Tensor:
    """Frames within SPEECH_DB of the utterance's loudest frame: `(B, T)` -> `(B, T)` float."""
    floor = frame_energy.amax(dim=-1, keepdim=True) - SPEECH_DB / NEPER_TO_DB
    return (frame_energy > floor).float()


def voiced_speech(prosody: Prosody) -> torch.Tensor:
    """Frames both voiced and within the speech mask: `(B, T)` float (where the f0 statistics are taken)."""
    return prosody.voiced * speech_mask(prosody.energy)


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def statistics(prosody: Prosody) -> torch.Tensor:
    """Utterance statistics `(B, 4)`: mean voiced ln f0, its sd (ln), mean speech energy, ln speech frames."""
    voiced = voiced_speech(prosody)
    mean = _masked_mean(prosody.log_f0, voiced)
    sd = _masked_mean((prosody.log_f0 - mean.unsqueeze(-1)).pow(2), voiced).clamp(min=1e-6).sqrt()
    speech = speech_mask(prosody.energy)
    return torch.stack([mean, sd.log(), _masked_mean(prosody.energy, speech), speech.sum(-1).clamp(min=1).log()], -1)


def measure_change(source: Prosody, target: Prosody) -> torch.Tensor:
    """What an actor changed from `source` to `target` (same sentence): `(B, 4)` as CHANGES."""
    return statistics(target) - statistics(source)


def apply_change(prosody: Prosody, change: torch.Tensor, contour: torch.Tensor | None = None) -> Prosody:
    """Shift and scale voiced ln f0 around its mean, raise the energy of speech frames. `change (B, 4)`;
    an optional `contour (B, K)` then adds a frame-level ln f0 shape over the speech span (`contour_curve`)."""
    voiced = voiced_speech(prosody)
    mean = _masked_mean(prosody.log_f0, voiced).unsqueeze(-1)
    ratio = change[:, 1:2].exp()
    log_f0 = mean + change[:, 0:1] + (prosody.log_f0 - mean) * ratio
    if contour is not None:
        log_f0 = log_f0 + contour_curve(contour.to(log_f0.dtype), prosody.energy)
    gain = change[:, 2:3] * smooth_speech(prosody.energy)
    return Prosody(log_f0=log_f0, voiced=prosody.voiced, energy=prosody.energy + gain)


def speech_span(frame_energy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """First speech frame and one past the last, per item: `(B, T)` -> `(B,)`, `(B,)` (0, T without speech)."""
    t = torch.arange(frame_energy.shape[-1], device=frame_energy.device)
    speech = speech_mask(frame_energy) > 0
    first = torch.where(speech, t, frame_energy.shape[-1]).amin(-1)
    last = torch.where(speech, t, -1).amax(-1) + 1
    none = last <= first
    return torch.where(none, 0, first), torch.where(none, frame_energy.shape[-1], last)


def contour_curve(contour: torch.Tensor, frame_energy: torch.Tensor) -> torch.Tensor:
    """A contour `(B, K)` laid over each utterance's speech span `(B, T)` -> `(B, T)`: value k sits at the
    centre of the k-th of K equal parts of the span, linear in between, held before the first and after the last.
    """
    bins = contour.shape[-1]
    first, last = speech_span(frame_energy)
    t = torch.arange(frame_energy.shape[-1], device=contour.device).to(contour.dtype)
    x = ((t - first[:, None]) / (last - first).clamp(min=1)[:, None] * bins - 0.5).clamp(0, bins - 1)
    low = x.floor().long().clamp(max=bins - 1)
    high = (low + 1).clamp(max=bins - 1)
    frac = x - low
    return torch.gather(contour, 1, low) * (1 - frac) + torch.gather(contour, 1, high) * frac


def smooth_speech(frame_energy: torch.Tensor, frames: int = 9) -> torch.Tensor:
    """The speech mask smoothed over `frames`, so gains fade in and out: `(B, T)` -> `(B, T)`."""
    mask = speech_mask(frame_energy).unsqueeze(1)
    return F.avg_pool1d(mask, frames, stride=1, padding=frames // 2, count_include_pad=False).squeeze(1)


def new_length(frames: int, change: torch.Tensor) -> int:
    """Frames after applying the (first item's) ln duration ratio, clipped to MAX_RATE_CHANGE."""
    ratio = math.exp(max(-MAX_RATE_CHANGE, min(MAX_RATE_CHANGE, float(change[0, 3]))))
    return max(1, round(frames * ratio))


@lru_cache(maxsize=1)
@torch.inference_mode(False)  # cached: a first call while converting must not make it an inference tensor
def mel_centres() -> torch.Tensor:
    """Centre frequencies (Hz) of the 80 mel bands `(80,)`."""
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(F_MIN)), hz_to_mel(np.array(F_MAX)), N_MELS + 2))
    return torch.from_numpy(edges[1:-1]).float()


def warp_mel(mel: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Log-mel `(B, 80, T)` warped by factors `(B, T)`: out(f) = in(f / alpha), linear in band index."""
    centres = mel_centres().to(mel.device)
    source = (centres.view(1, -1, 1) / alpha.unsqueeze(1).to(mel.device)).clamp(centres[0], centres[-1])
    pos = torch.searchsorted(centres, source.contiguous()).clamp(1, len(centres) - 1)
    lo, hi = centres[pos - 1], centres[pos]
    frac = ((source - lo) / (hi - lo)).to(mel.dtype)
    below = torch.gather(mel, 1, pos - 1)
    return below + frac * (torch.gather(mel, 1, pos) - below)


@lru_cache(maxsize=4)
@torch.inference_mode(False)  # cached, and used by training losses after a conversion in the same process
def _dct(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix `(n, n)`: rows are the cosine basis."""
    k, i = torch.arange(n).float()[:, None], torch.arange(n).float()[None, :]
    basis = torch.cos(math.pi / n * (i + 0.5) * k) * math.sqrt(2 / n)
    basis[0] /= math.sqrt(2)
    return basis


def split_envelope(mel: torch.Tensor, keep: int = ENVELOPE_CEPSTRA) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-mel `(B, 80, T)` = envelope (first `keep` cepstra: formants, tilt) + fine structure (harmonics)."""
    basis = _dct(mel.shape[1]).to(mel.device, mel.dtype)
    envelope = basis[:keep].T @ (basis[:keep] @ mel)
    return envelope, mel - envelope


def reshape_mel(mel: torch.Tensor, source: Prosody, change: torch.Tensor,
                contour: torch.Tensor | None = None) -> torch.Tensor:
    """Apply a prosody change (and contour) to a log-mel `(B, 80, T)` itself -> `(B, 80, T')`: the harmonic
    fine structure is warped by f0_target(t) / f0_source(t) over an unchanged envelope (formants stay, so the
    voice does), speech frames get the energy change, and the frames are resampled in time by the duration ratio."""
    return retime(reshape_frames(mel, *reshape_plan(source, change, contour)), new_length(mel.shape[-1], change))


def reshape_plan(source: Prosody, change: torch.Tensor,
                 contour: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """What `reshape_mel` does to each frame: the harmonics' warp factor and the energy gain, both `(B, T)`."""
    wanted = apply_change(source, change, contour)
    return (wanted.log_f0 - source.log_f0).exp().clamp(1 / MAX_WARP, MAX_WARP), wanted.energy - source.energy


def reshape_frames(mel: torch.Tensor, alpha: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """`reshape_mel` before its retiming, frame by frame: `(B, 80, T)` with warp and gain `(B, T)` -> `(B, 80, T)`."""
    envelope, fine = split_envelope(mel)
    return envelope + warp_mel(fine, alpha) + gain.unsqueeze(1).to(mel.dtype)


def mean_f0(prosody: Prosody) -> torch.Tensor:
    """Mean voiced f0 in Hz over speech frames `(B,)` (exp of `statistics`' mean ln f0); NaN with none voiced."""
    voiced = voiced_speech(prosody)
    return torch.where(voiced.sum(-1) > 0, _masked_mean(prosody.log_f0, voiced).exp(), torch.nan)


def with_fine_structure(mel: torch.Tensor, harmonics: torch.Tensor) -> torch.Tensor:
    """`mel`'s spectral envelope under the harmonic fine structure of `harmonics`, both `(B, 80, T)`."""
    return split_envelope(mel)[0] + split_envelope(harmonics)[1]


def energy_shift(have: torch.Tensor, want: torch.Tensor, louder: bool = True) -> torch.Tensor:
    """`match_energy`'s shift `(B,)` from the two mels' frame energies `(B, T)`, `(B, T')`."""
    shift = _masked_mean(want, speech_mask(want)) - _masked_mean(have, speech_mask(have))
    return shift if louder else shift.clamp(max=0.0)


def level_lift(have: torch.Tensor, asked: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
    """The ln gain `(B,)`, >= 0, that raises a conversion whose frame energies are `have` `(B, T')` to the asked
    level (`asked`'s mean speech energy, `(B, T')`), or with `source` `(B, T)` only to the quieter of the asked
    level and the source's. It is applied to the waveform after the vocoder: a mel raised above the generator's
    own level costs words (HiFi-GAN's output saturates), a waveform's gain does not."""
    floor = _masked_mean(asked, speech_mask(asked))
    if source is not None:
        floor = torch.minimum(floor, _masked_mean(source, speech_mask(source)))
    return (floor - _masked_mean(have, speech_mask(have))).clamp(min=0.0)


def level_plan(have: torch.Tensor, asked: torch.Tensor, mode: str, source: torch.Tensor | None = None
               ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """What the predictor's `match_energy` mode does to a conversion whose frame energies are `have` `(B, T')`,
    asked `asked` `(B, T')` (the reshaped mel's: the loudness the prosody path asked for, whatever level the
    generator drifted to) and, unless the level was set by hand, the source's `source` `(B, T)`: the constant
    `(B,)` the mel is shifted by ("match": to the asked level; "lower": only ever down, a mel pushed above the
    generator's own level loses words) and the ln gain `(B,)` the vocoded waveform is raised by ("lower":
    `level_lift`). None where the mode does neither ("off")."""
    if mode == "off":
        return None, None
    shift = energy_shift(have, asked, louder=mode == "match")
    return shift, level_lift(have + shift[:, None], asked, source) if mode == "lower" else None


def retime(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Resample `(B, C, T)` linearly in time to `(B, C, frames)`."""
    if x.shape[-1] == frames:
        return x
    return F.interpolate(x, size=frames, mode="linear", align_corners=True)


def apply_controls(change: torch.Tensor, controls: Controls) -> torch.Tensor:
    """A change `(B, 4)` with the hand controls (`controls.py`) set or added: pitch in semitones on d ln f0, level
    in dB on d energy, a speaking-rate factor X as ln duration -ln X (clipped to MAX_RATE_CHANGE), and
    `keep_length` as ln duration 0 (the output then has the source's length to the sample)."""
    out = change.clone()
    for index, setting, unit in ((0, controls.pitch, SEMITONES), (2, controls.level, NEPER_TO_DB)):
        if setting is not None:
            out[:, index] = (out[:, index] if setting.relative else 0.0) + setting.value / unit
    if controls.rate is not None:
        duration = -math.log(controls.rate.value) + (out[:, 3] if controls.rate.relative else 0.0)
        out[:, 3] = torch.as_tensor(duration).clamp(-MAX_RATE_CHANGE, MAX_RATE_CHANGE)
    if controls.keep_length:
        out[:, 3] = 0.0
    return out
