"""Per-mel-frame pitch (YIN, in torch) and energy: the prosody the generator is conditioned on.

    wave (N,) --reflect pad 384, 1024-sample frames, hop 256--> (T, 1024), T = N // 256 (the mel's frames)
          --YIN difference function (FFT) -> cumulative-mean-normalised d'(tau)--> first dip below 0.15
          --parabolic refinement--> f0 (T,) Hz, voiced (T,)
    mel (80, T) --log of the mean mel magnitude--> energy (T,)

Frames line up with the official HiFi-GAN log-mel (frame t is centred on sample t * 256 + 128).
YIN was chosen over pyworld (an optional extra that needs setuptools<81) so that inference needs no
extra package and runs on any torch device; `benchmarks/pitch_check.py` compares the two.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.audio import HOP_LENGTH, N_FFT, PAD, SAMPLE_RATE

F0_MIN = 65.0  # Hz: lowest pitch searched (a low male voice)
F0_MAX = 800.0  # Hz: highest (a shouted or surprised female voice)
YIN_THRESHOLD = 0.15  # a frame is voiced when d'(tau) dips below this
SILENCE_DB = 45.0  # frames this far below the loudest frame are unvoiced whatever YIN says
DIGITAL_SILENCE_DB = -90.0  # and frames under this mean power (dB re full scale): d'(tau) of zeros is 0 / 0
LOG_F0_CENTER, LOG_F0_SCALE = math.log(150.0), 0.5  # generator input: (ln f0 - ln 150) / 0.5
ENERGY_CENTER, ENERGY_SCALE = -6.0, 3.0  # generator input: (energy + 6) / 3
UNVOICED_LOG_F0 = math.log(120.0)  # fill value for an utterance without any voiced frame
BLOCK_FRAMES = 2048  # frames analysed at once (~24 s): 2048 x 2048-point FFTs, about 50 MB


@dataclass(frozen=True)
class Pitch:
    """Pitch of one utterance per mel frame."""

    f0: np.ndarray  # (T,) Hz, 0 where unvoiced
    voiced: np.ndarray  # (T,) bool


def frames_of(wave: torch.Tensor) -> torch.Tensor:
    """`(N,)` -> `(N // 256, 1024)` analysis frames, framed exactly like the mel front end."""
    padded = F.pad(wave.view(1, 1, -1), (PAD, PAD), mode="reflect").view(-1)
    frames = padded.unfold(0, N_FFT, HOP_LENGTH)
    return frames[: wave.shape[-1] // HOP_LENGTH]


def yin(wave: np.ndarray | torch.Tensor, sample_rate: int = SAMPLE_RATE) -> Pitch:
    """YIN (de Cheveigné & Kawahara 2002) on every mel frame of a mono waveform `(N,)`."""
    x = torch.as_tensor(wave, dtype=torch.float32).flatten()
    if x.numel() < N_FFT:
        x = F.pad(x, (0, N_FFT - x.numel()))
    frames = frames_of(x)  # a view: long inputs are analysed BLOCK_FRAMES at a time in bounded memory
    parts = [yin_frames(frames[start : start + BLOCK_FRAMES], sample_rate)
             for start in range(0, len(frames), BLOCK_FRAMES)]
    tau, depth, power = (torch.cat([part[k] for part in parts]) for k in range(3))
    return yin_pitch(tau, depth, power, sample_rate)


def yin_frames(frames: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """YIN's per-frame measures of analysis frames `(T, 1024)` (`frames_of`): the refined lag, d' there and the
    frame's power in dB, each `(T,)`. A frame's values depend on that frame alone (a stream computes them in pieces)."""
    tau_min, tau_max = int(sample_rate / F0_MAX), int(sample_rate / F0_MIN)
    tau, depth = _first_dip(_cumulative_mean_normalised(frames, tau_max), tau_min)
    return tau, depth, 10 * torch.log10(frames.pow(2).mean(dim=-1) + 1e-10)


def yin_pitch(tau: torch.Tensor, depth: torch.Tensor, power: torch.Tensor, sample_rate: int = SAMPLE_RATE) -> Pitch:
    """The utterance's Pitch from every frame's `yin_frames` measures: voiced where d' dips below the threshold and the
    frame is within SILENCE_DB of the loudest one."""
    voiced = (depth < YIN_THRESHOLD) & (power > power.max() - SILENCE_DB) & (power > DIGITAL_SILENCE_DB)
    f0 = torch.where(voiced, sample_rate / tau, torch.zeros_like(tau))
    return Pitch(f0=f0.numpy().astype(np.float32), voiced=voiced.numpy())


def _cumulative_mean_normalised(frames: torch.Tensor, tau_max: int) -> torch.Tensor:
    """d'(tau) of each frame `(T, W)` for tau = 0..tau_max: `(T, tau_max + 1)`."""
    width = frames.shape[-1] - tau_max
    n = 1 << (frames.shape[-1] * 2 - 1).bit_length()
    head = torch.fft.rfft(frames[:, :width], n=n)
    full = torch.fft.rfft(frames, n=n)
    corr = torch.fft.irfft(head.conj() * full, n=n)[:, : tau_max + 1]  # r(tau) = sum_j x_j x_{j+tau}
    sq = F.pad(frames.pow(2).cumsum(dim=-1), (1, 0))
    energy_0 = sq[:, width : width + 1]  # sum_{j<W} x_j^2
    taus = torch.arange(tau_max + 1)
    energy_tau = sq[:, taus + width] - sq[:, taus]  # sum_{j<W} x_{j+tau}^2
    diff = (energy_0 + energy_tau - 2 * corr).clamp(min=0)
    running = diff[:, 1:].cumsum(dim=-1) / taus[1:]
    return torch.cat([torch.ones_like(diff[:, :1]), diff[:, 1:] / (running + 1e-9)], dim=-1)


def _first_dip(cmnd: torch.Tensor, tau_min: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per frame: the refined lag of the first local minimum below the threshold (else the global
    minimum) and d' there. `(T, L)` -> `(T,)`, `(T,)`."""
    inner = cmnd[:, 1:-1]
    is_min = (inner <= cmnd[:, :-2]) & (inner <= cmnd[:, 2:]) & (inner < YIN_THRESHOLD)
    is_min[:, : max(tau_min - 1, 0)] = False
    has = is_min.any(dim=-1)
    first = is_min.float().argmax(dim=-1) + 1
    best = cmnd[:, tau_min:].argmin(dim=-1) + tau_min
    tau = torch.where(has, first, best).clamp(1, cmnd.shape[-1] - 2)
    rows = torch.arange(len(tau))
    a, b, c = cmnd[rows, tau - 1], cmnd[rows, tau], cmnd[rows, tau + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c).where((a - 2 * b + c).abs() > 1e-9, torch.ones_like(b))
    return tau.float() + shift.clamp(-1, 1), b


def continuous_log_f0(pitch: Pitch) -> np.ndarray:
    """ln f0 `(T,)` with unvoiced frames filled by linear interpolation (edges held)."""
    t = np.arange(len(pitch.f0))
    if not pitch.voiced.any():
        return np.full(len(t), UNVOICED_LOG_F0, dtype=np.float32)
    known = np.log(pitch.f0[pitch.voiced])
    filled: np.ndarray = np.interp(t, t[pitch.voiced], known).astype(np.float32)
    return filled


def pitch_track(pitch: Pitch, frames: int) -> np.ndarray:
    """Continuous ln f0 and voicing `(2, T)` over the first `frames` mel frames, float32."""
    return np.stack([continuous_log_f0(pitch), pitch.voiced.astype(np.float32)])[:, :frames].astype(np.float32)


def energy(mel: torch.Tensor) -> torch.Tensor:
    """Frame energy: natural log of the mean mel magnitude. `(..., 80, T)` -> `(..., T)`."""
    return torch.logsumexp(mel, dim=-2) - math.log(mel.shape[-2])


def prosody_inputs(log_f0: torch.Tensor, voiced: torch.Tensor, frame_energy: torch.Tensor) -> torch.Tensor:
    """The generator's prosody channels `(B, 3, T)` from ln f0, voicing and energy, each `(B, T)`."""
    return torch.stack([(log_f0 - LOG_F0_CENTER) / LOG_F0_SCALE, voiced.float(),
                        (frame_energy - ENERGY_CENTER) / ENERGY_SCALE], dim=1)
