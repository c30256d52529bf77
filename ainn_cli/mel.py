"""The official HiFi-GAN log-mel front end, in torch.

    wave (B, N) --reflect pad 384--> |STFT| (B, 513, N // 256) --mel--> (B, 80, N // 256) --log-->

`log_mel_in_chunks` computes the same mel of a long wave in bounded memory (chunks.py).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.audio import F_MAX, F_MIN, HOP_LENGTH, LOG_CLAMP, N_FFT, N_MELS, PAD, SAMPLE_RATE
from ainn_cli.chunks import Span, map_chunks


def hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@lru_cache(maxsize=4)
def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS, fmin: float = F_MIN, fmax: float = F_MAX
) -> np.ndarray:
    """Slaney-normalised triangular filters `(n_mels, n_fft // 2 + 1)`, as librosa.filters.mel."""
    fft_hz = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(fmax)), n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights.astype(np.float32)


class LogMel(torch.nn.Module):
    """Waveform `(B, N)` in [-1, 1] at 22050 Hz -> natural-log mel `(B, 80, N // 256)`."""

    basis: torch.Tensor
    window: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("basis", torch.from_numpy(mel_filterbank()), persistent=False)
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        padded = F.pad(wave.unsqueeze(1), (PAD, PAD), mode="reflect").squeeze(1)
        spec = torch.stft(
            padded, N_FFT, hop_length=HOP_LENGTH, win_length=N_FFT, window=self.window,
            center=False, return_complex=True,
        )
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
        mel = torch.matmul(self.basis, magnitude)
        return torch.log(torch.clamp(mel, min=LOG_CLAMP))


def log_mel(wave: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Convenience: `(N,)` or `(B, N)` waveform -> `(B, 80, frames)` log-mel on the wave's device."""
    tensor = torch.as_tensor(wave, dtype=torch.float32)
    if tensor.dim() == 1:
        tensor = tensor.unsqueeze(0)
    mel: torch.Tensor = _front_end(str(tensor.device))(tensor.to(torch.float32))
    return mel


@lru_cache(maxsize=4)
@torch.inference_mode(False)  # cached: its buffers must not become inference tensors on a first call while converting
def _front_end(device: str) -> LogMel:
    return LogMel().to(device)


def log_mel_in_chunks(wave: torch.Tensor, chunk: int) -> torch.Tensor:
    """`log_mel` of a long `(N,)` waveform, `chunk` frames at a time: the same `(1, 80, N // 256)` in bounded memory.

    Frame j sees samples [256 j - 384, 256 j + 640). Frames [a, b) are computed from samples
    [256 (a - 2), 256 b + 384), clipped to the wave: that piece's own reflect padding reaches only
    frames outside [a, b), except at the ends of the wave, where it is the padding log_mel uses.
    """
    samples = wave.shape[-1]

    def piece(s: Span) -> torch.Tensor:
        return log_mel(wave[s.lo * HOP_LENGTH : min(samples, s.stop * HOP_LENGTH + PAD)])

    return map_chunks(samples // HOP_LENGTH, piece, chunk, context=2)
