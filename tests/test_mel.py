"""The log-mel front end against an independent NumPy computation of the official HiFi-GAN one."""

from __future__ import annotations

import numpy as np
import pytest

from ainn_cli.mel import log_mel, mel_filterbank
from tests.conftest import tone

SR, N_FFT, HOP, N_MELS, FMAX = 22050, 1024, 256, 80, 8000.0


def slaney_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney's Auditory Toolbox mel scale, written out independently of ainn_cli.mel."""
    hz = np.atleast_1d(np.asarray(hz, dtype=np.float64))
    out = 3.0 * hz / 200.0
    above = hz >= 1000.0
    out[above] = 15.0 + 27.0 * np.log(hz[above] / 1000.0) / np.log(6.4)
    return out


def slaney_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.atleast_1d(np.asarray(mel, dtype=np.float64))
    out = 200.0 * mel / 3.0
    above = mel >= 15.0
    out[above] = 1000.0 * 6.4 ** ((mel[above] - 15.0) / 27.0)
    return out


def reference_filterbank() -> np.ndarray:
    fft_hz = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    points = slaney_hz(np.linspace(slaney_mel(0.0)[0], slaney_mel(FMAX)[0], N_MELS + 2))
    bank = np.zeros((N_MELS, fft_hz.size))
    for m in range(N_MELS):
        lo, centre, hi = points[m : m + 3]
        bank[m] = np.interp(fft_hz, [lo, centre, hi], [0.0, 1.0, 0.0], left=0.0, right=0.0)
        bank[m] *= 2.0 / (hi - lo)
    return bank


def reference_log_mel(wave: np.ndarray) -> np.ndarray:
    """Reflect pad 384, frames of 1024 every 256, periodic Hann, |rfft| + 1e-9, mel, log clamp 1e-5."""
    x = np.pad(wave.astype(np.float64), (N_FFT - HOP) // 2, mode="reflect")
    n_frames = 1 + (len(x) - N_FFT) // HOP
    frames = np.stack([x[i * HOP : i * HOP + N_FFT] for i in range(n_frames)])
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    spec = np.fft.rfft(frames * window, axis=1)
    magnitude = np.sqrt(spec.real**2 + spec.imag**2 + 1e-9)
    log_mel_spec: np.ndarray = np.log(np.maximum(reference_filterbank() @ magnitude.T, 1e-5))
    return log_mel_spec


def test_filterbank_matches_reference() -> None:
    np.testing.assert_allclose(mel_filterbank(), reference_filterbank(), atol=1e-6)


@pytest.mark.parametrize("seconds", [0.5, 1.37])
def test_log_mel_matches_numpy(seconds: float) -> None:
    wave = tone(seconds, seed=3)
    ours = log_mel(wave)[0].numpy()
    ref = reference_log_mel(wave)
    assert ours.shape == ref.shape == (N_MELS, len(wave) // HOP)
    assert np.max(np.abs(ours - ref)) < 1e-4


def test_log_mel_is_clamped_on_silence() -> None:
    mel = log_mel(np.zeros(4096, dtype=np.float32))
    assert mel.shape == (1, N_MELS, 16)
    assert float(mel.min()) >= np.log(1e-5) - 1e-6
