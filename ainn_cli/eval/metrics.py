"""Objective metrics for converted speech: MCD with DTW, F0 RMSE and correlation, WER, bootstrap CIs.

Pure NumPy functions of waveforms `(N,)` at SAMPLE_RATE, cepstra `(T, D)` and F0 tracks `(T,)`; every
frame grid is the mel front end's (hop 256, centred, `1 + N // 256` frames), so a DTW path found on
mel-cepstra indexes the F0 tracks too.

Mel-cepstrum (the MCD feature), computed here rather than with SPTK or WORLD:

    wave (N,) --Hann 1024, hop 256, centred--> |STFT| (T, 513) --ln, floor -100 dB of the peak-->
      ln|X(w)| --read on a uniform grid of the all-pass-warped frequency
                 W(w) = w + 2 atan(a sin w / (1 - a cos w)),  a = 0.455 (mel scale at 22050 Hz)-->
      ln|X(W)| (T, 1024) --cosine transform c_m = mean_k ln|X(W_k)| cos(m W_k), m = 0..24-->
      mel-cepstrum (T, 25), so that ln|X(W)| ~ c_0 + 2 sum_m c_m cos(m W)

Keeping orders 1..24 (c_0, the level, is dropped) is the cepstral smoothing that turns the STFT into a
spectral envelope. MCD = 10 / ln 10 * sqrt(2 sum_d (c_d - c'_d)^2) dB, averaged over the frames of the
DTW path between the speech frames (within 40 dB of the loudest) of the two recordings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ainn_cli.audio import HOP_LENGTH, N_FFT, SAMPLE_RATE

MCEP_ORDER = 24  # mel-cepstral coefficients c_1..c_24 (c_0 dropped)
MCEP_ALPHA = 0.455  # all-pass warping constant that approximates the mel scale at 22050 Hz
WARP_POINTS = 1024  # samples of the warped frequency axis for the cosine transform
SPECTRUM_FLOOR = 1e-5  # magnitude floor relative to the recording's peak (-100 dB)
SPEECH_RANGE_DB = 40.0  # frames quieter than the loudest by more than this are silence
MCD_SCALE = 10.0 / np.log(10.0) * np.sqrt(2.0)  # nepers of cepstral distance -> dB
F0_MIN, F0_MAX = 60.0, 600.0  # Hz, the search range of both F0 trackers
YIN_THRESHOLD = 0.15  # cumulative-mean-normalised difference below which a frame is voiced
YIN_WIDTH = 512  # samples (~23 ms) of the YIN integration window
BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """An aggregate with its percentile-bootstrap confidence interval (NaN when undefined)."""

    value: float
    low: float
    high: float
    n: int  # utterances that had this metric


@dataclass(frozen=True)
class F0Match:
    """F0 agreement on the aligned frames voiced in both recordings."""

    rmse: float  # Hz
    corr: float  # Pearson r; NaN with fewer than 3 frames or a flat track
    frames: int


def frames(wave: np.ndarray, length: int = N_FFT) -> np.ndarray:
    """Centred frames `(1 + N // 256, length)` of `(N,)`: reflect-padded by length // 2 on each side."""
    padded = np.pad(np.asarray(wave, dtype=np.float64), (length // 2, length // 2), mode="reflect")
    return np.lib.stride_tricks.sliding_window_view(padded, length)[::HOP_LENGTH][: 1 + len(wave) // HOP_LENGTH]


def magnitude(wave: np.ndarray) -> np.ndarray:
    """|STFT| `(T, 513)` with a Hann window of N_FFT samples and hop HOP_LENGTH."""
    return np.abs(np.fft.rfft(frames(wave) * np.hanning(N_FFT + 1)[:-1], axis=-1))


def speech_mask(spectrum: np.ndarray) -> np.ndarray:
    """Frames `(T,)` whose energy is within SPEECH_RANGE_DB of the loudest frame of `(T, F)`."""
    energy_db = 10.0 * np.log10(np.sum(spectrum**2, axis=-1) + 1e-20)
    mask: np.ndarray = energy_db >= energy_db.max() - SPEECH_RANGE_DB
    return mask


def warp(omega: np.ndarray, alpha: float) -> np.ndarray:
    """The first-order all-pass frequency warping of `omega` in [0, pi]; warp(., -alpha) inverts it."""
    warped: np.ndarray = omega + 2.0 * np.arctan(alpha * np.sin(omega) / (1.0 - alpha * np.cos(omega)))
    return warped


@lru_cache(maxsize=4)
def cepstrum_matrix(order: int = MCEP_ORDER, alpha: float = MCEP_ALPHA) -> np.ndarray:
    """Linear map `(513, order + 1)` from a log-magnitude spectrum to its mel-cepstrum c_0..c_order."""
    warped = np.pi * (np.arange(WARP_POINTS) + 0.5) / WARP_POINTS
    position = warp(warped, -alpha) / np.pi * (N_FFT // 2)  # fractional STFT bin of each warped point
    low = np.clip(np.floor(position).astype(int), 0, N_FFT // 2 - 1)
    interp = np.zeros((WARP_POINTS, N_FFT // 2 + 1))
    rows = np.arange(WARP_POINTS)
    interp[rows, low] = 1.0 - (position - low)
    interp[rows, low + 1] = position - low
    cosine = np.cos(np.outer(warped, np.arange(order + 1))) / WARP_POINTS
    matrix: np.ndarray = interp.T @ cosine
    return matrix


def mel_cepstrum(wave: np.ndarray, order: int = MCEP_ORDER, alpha: float = MCEP_ALPHA) -> np.ndarray:
    """Mel-cepstrum `(T, order + 1)` (c_0 first) of a waveform `(N,)` at SAMPLE_RATE; see the module doc."""
    spectrum = magnitude(wave)
    floor = SPECTRUM_FLOOR * max(float(spectrum.max()), 1e-12)
    cepstrum: np.ndarray = np.log(np.maximum(spectrum, floor)) @ cepstrum_matrix(order, alpha)
    return cepstrum


def speech_cepstrum(wave: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mel-cepstra c_1..c_24 of the speech frames `(S, 24)` and those frames' indices `(S,)`."""
    keep = np.flatnonzero(speech_mask(magnitude(wave)))
    return mel_cepstrum(wave)[keep, 1:], keep


def dtw_path(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum-cost alignment `(P, 2)` of frames `(Ta, D)` and `(Tb, D)` by Euclidean distance.

    Steps (1, 0), (0, 1), (1, 1); the path runs from (0, 0) to (Ta - 1, Tb - 1). Each row of the
    cost matrix is solved at once: D[i, j] = S[j] + min_{k <= j} (m[k] - S[k]), where
    m[k] = cost[i, k] + min(D[i-1, k], D[i-1, k-1]) and S is the row's cumulative cost.
    """
    square = np.sum(a**2, axis=1)[:, None] + np.sum(b**2, axis=1)[None, :] - 2.0 * a @ b.T
    cost = np.sqrt(np.maximum(square, 0.0))
    total = np.empty_like(cost)
    total[0] = np.cumsum(cost[0])
    for i in range(1, len(a)):
        above = total[i - 1]
        diagonal = np.concatenate(([np.inf], above[:-1]))
        entry = cost[i] + np.minimum(above, diagonal)
        running = np.cumsum(cost[i])
        total[i] = running + np.minimum.accumulate(entry - running)
    return _backtrack(total)


def _backtrack(total: np.ndarray) -> np.ndarray:
    """The path `(P, 2)` through an accumulated-cost matrix `(Ta, Tb)`, from the end back to (0, 0)."""
    i, j = total.shape[0] - 1, total.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((s for s in steps if s[0] >= 0 and s[1] >= 0), key=lambda s: total[s])
        path.append((i, j))
    return np.array(path[::-1])


def mcd_frames(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame MCD in dB `(T,)` of aligned cepstra `(T, D)` (c_0 already left out)."""
    distance: np.ndarray = MCD_SCALE * np.sqrt(np.sum((a - b) ** 2, axis=-1))
    return distance


def mcd_dtw(a: np.ndarray, b: np.ndarray) -> tuple[float, np.ndarray]:
    """MCD in dB of cepstra `(Ta, D)` and `(Tb, D)` averaged over their DTW path `(P, 2)`, and the path."""
    path = dtw_path(a, b)
    return float(np.mean(mcd_frames(a[path[:, 0]], b[path[:, 1]]))), path


def f0_yin(wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """F0 in Hz per frame `(1 + N // 256,)`, 0 where unvoiced: a YIN-style autocorrelation tracker.

    Per centred frame of YIN_WIDTH + rate / F0_MIN samples: the difference function
    d(tau) = E_0 + E_tau - 2 r(tau) from an FFT autocorrelation r, its cumulative-mean normalisation,
    the first local minimum below YIN_THRESHOLD among periods rate / F0_MAX .. rate / F0_MIN, refined
    by a parabola. Frames outside the speech range (see `speech_mask`) are unvoiced.
    """
    longest, shortest, width = int(np.ceil(rate / F0_MIN)), int(np.floor(rate / F0_MAX)), YIN_WIDTH
    x = frames(wave, width + longest + (width + longest) % 2)
    size = 2 * x.shape[1]  # no circular wrap-around in the correlation
    r = np.fft.irfft(np.conj(np.fft.rfft(x[:, :width], size)) * np.fft.rfft(x, size))[:, : longest + 1]
    energy = np.concatenate((np.zeros((len(x), 1)), np.cumsum(x**2, axis=1)), axis=1)
    taus = np.arange(longest + 1)
    diff = np.maximum(energy[:, [width]] + energy[:, taus + width] - energy[:, taus] - 2.0 * r, 0.0)
    norm = diff[:, 1:] * taus[1:] / np.maximum(np.cumsum(diff[:, 1:], axis=1), 1e-12)
    cmnd = np.concatenate((np.ones((len(x), 1)), norm), axis=1)
    f0 = np.array([_yin_pick(row, shortest, longest, rate) for row in cmnd])
    return np.where(speech_mask(magnitude(wave)), f0, 0.0)


def _yin_pick(cmnd: np.ndarray, shortest: int, longest: int, rate: int) -> float:
    """F0 from one frame's normalised difference `(longest + 1,)`: first dip below threshold, or 0."""
    inner = cmnd[shortest:longest]
    dips = (inner < YIN_THRESHOLD) & (inner <= cmnd[shortest - 1 : longest - 1]) & (inner <= cmnd[shortest + 1 :])
    if not dips.any():
        return 0.0
    tau = shortest + int(np.argmax(dips))
    left, mid, right = cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]
    bend = left - 2.0 * mid + right
    shift = 0.5 * (left - right) / bend if bend > 1e-12 else 0.0
    return rate / (tau + float(np.clip(shift, -1.0, 1.0)))


def f0_world(wave: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """F0 in Hz per frame `(1 + N // 256,)`, 0 where unvoiced, by WORLD Harvest (needs pyworld)."""
    import pyworld

    period_ms = 1000.0 * HOP_LENGTH / rate
    f0, _ = pyworld.harvest(np.asarray(wave, dtype=np.float64), rate, f0_floor=F0_MIN, f0_ceil=F0_MAX,
                            frame_period=period_ms)
    count = 1 + len(wave) // HOP_LENGTH
    track: np.ndarray = np.pad(f0, (0, max(0, count - len(f0))))[:count]
    return track


def f0_match(f0_a: np.ndarray, f0_b: np.ndarray, path: np.ndarray) -> F0Match:
    """RMSE (Hz) and Pearson r of two F0 tracks `(Ta,)`, `(Tb,)` on path `(P, 2)`, where both are voiced."""
    a, b = f0_a[path[:, 0]], f0_b[path[:, 1]]
    voiced = (a > 0) & (b > 0)
    a, b = a[voiced], b[voiced]
    if not len(a):
        return F0Match(float("nan"), float("nan"), 0)
    rmse = float(np.sqrt(np.mean((a - b) ** 2)))
    flat = len(a) < 3 or np.std(a) < 1e-9 or np.std(b) < 1e-9
    return F0Match(rmse, float("nan") if flat else float(np.corrcoef(a, b)[0, 1]), len(a))


def words(text: str) -> list[str]:
    """Lower-case words without punctuation (apostrophes kept): the text normalisation for WER."""
    return re.sub(r"[^\w']+", " ", text.lower()).split()


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words) by Levenshtein distance over words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, word in enumerate(ref, start=1):
        previous, row[0] = row[0], i
        for j, guess in enumerate(hyp, start=1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (word != guess))
    return row[-1], len(ref)


def estimate(values: np.ndarray, kind: str = "mean", weights: np.ndarray | None = None,
             resamples: int = BOOTSTRAP_RESAMPLES, level: float = CI_LEVEL, seed: int = BOOTSTRAP_SEED) -> Estimate:
    """Aggregate `(n,)` values (NaN = missing) with a seeded percentile-bootstrap CI over utterances.

    kind: `mean`; `rmse` (root of the mean square); `weighted` (sum(v * w) / sum(w), e.g. WER from
    per-utterance WER weighted by reference words). The CI is NaN with fewer than 2 values.
    """
    values = np.asarray(values, dtype=np.float64)
    w = np.ones_like(values) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = np.isfinite(values) & np.isfinite(w)
    values, w = values[keep], w[keep]
    if not len(values):
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    value = float(_statistic(values[None], w[None], kind)[0])
    if len(values) < 2:
        return Estimate(value, float("nan"), float("nan"), 1)
    picks = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    spread = _statistic(values[picks], w[picks], kind)
    low, high = np.nanpercentile(spread, [50 * (1 - level), 50 * (1 + level)])
    return Estimate(value, float(low), float(high), len(values))


def _statistic(values: np.ndarray, weights: np.ndarray, kind: str) -> np.ndarray:
    """The aggregate of each row of `(B, n)` values: `(B,)`."""
    if kind == "mean":
        out: np.ndarray = values.mean(axis=1)
    elif kind == "rmse":
        out = np.sqrt(np.mean(values**2, axis=1))
    elif kind == "weighted":
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sum(values * weights, axis=1) / np.sum(weights, axis=1)
    else:
        raise ValueError(f"unknown aggregate {kind!r}")
    return out
