"""Parallel supervision from RAVDESS: an actor's neutral take, the emotional take of the same sentence
time-aligned to it by DTW, and a reference (same actor, same emotion and intensity, other sentence).

    neutral take  n: |----------- T_n frames -----------|
    emotional take x: |------- T_x frames -------|          DTW on cepstra (mean-normalised)
    warp[t] = the x frame matched to n's frame t, so x[:, warp] is `(80, T_n)`, frame-aligned with n

The conversion of `n` towards the reference's emotion is scored against `x[:, warp]`; the measured
prosody change (`prosody.measure_change` on the whole takes) supervises the prosody predictor, and the
aligned f0 difference in time (`measure_contour`) its contour head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ainn_cli.prosody import CHANGES, Prosody, measure_change, speech_mask, speech_span
from ainn_cli.train.emotional_corpora import corpus_of

CEPSTRA = 20  # DCT coefficients of the log-mel used for alignment (c0, the loudness, left out)


class Take(Protocol):
    """What pairing reads of an utterance (`data.Utterance` has it; data.py imports this module, not back)."""

    @property
    def speaker(self) -> str: ...
    @property
    def emotion(self) -> str: ...
    @property
    def intensity(self) -> float: ...
    @property
    def take(self) -> str: ...


# Corpora (the speaker name's prefix) whose copies are cut or padded to 2 s and peak-normalised clip by clip (EmoDB's
# GitHub copy): their level and duration changes are not the actors'. Their pairs keep the source's level (energy
# change 0, the target's log-mel shifted to match; G's pairs keep the source's duration anyway), and the prosody fit
# learns only their f0 from them.
LEVEL_FREE = ("emodb",)
ENERGY, DURATION = CHANGES.index("energy_shift"), CHANGES.index("log_duration")


def level_free(take: Take) -> bool:
    return corpus_of(take.speaker) in LEVEL_FREE


@dataclass(frozen=True)
class Pair:
    source: int  # corpus index of the neutral take
    target: int  # corpus index of the emotional take of the same sentence
    refs: tuple[int, ...]  # same speaker, emotion and intensity, another sentence
    warp: np.ndarray  # (T_source,) target frame for each source frame
    change: np.ndarray  # (4,) measured prosody change, see prosody.CHANGES
    gain: float = 0.0  # added to the target's log-mel (a corpus in LEVEL_FREE: its level is the source's)


def cepstra(mel: np.ndarray) -> np.ndarray:
    """`(80, T)` log-mel -> `(T, CEPSTRA)` mean-normalised DCT-II coefficients 1..CEPSTRA."""
    n = mel.shape[0]
    k = np.arange(1, CEPSTRA + 1)[:, None]
    basis = np.cos(np.pi / n * (np.arange(n)[None, :] + 0.5) * k)
    c: np.ndarray = (basis @ mel).T
    centred: np.ndarray = c - c.mean(axis=0, keepdims=True)
    return centred


def dtw_warp(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """For each row of `source (T_s, D)`, the mean index of the `target (T_t, D)` rows DTW matches to it."""
    cost = np.sqrt(((source[:, None, :] - target[None, :, :]) ** 2).sum(-1))
    acc = _accumulate(cost)
    i, j = len(source) - 1, len(target) - 1
    matched: list[list[int]] = [[] for _ in range(len(source))]
    matched[i].append(j)
    while i > 0 or j > 0:
        steps = [(i - 1, j - 1), (i - 1, j), (i, j - 1)]
        i, j = min((s for s in steps if s[0] >= 0 and s[1] >= 0), key=lambda s: acc[s])
        matched[i].append(j)
    warp: np.ndarray = np.array([np.mean(m) for m in matched]).round().astype(np.int64)
    return warp


def _accumulate(cost: np.ndarray) -> np.ndarray:
    """Accumulated DTW cost with steps (1,1), (1,0), (0,1); rows vectorised by a running minimum."""
    acc = np.empty_like(cost)
    acc[0] = np.cumsum(cost[0])
    for i in range(1, len(cost)):
        base = cost[i] + np.minimum(acc[i - 1], np.concatenate([[np.inf], acc[i - 1][:-1]]))
        running = np.cumsum(cost[i])
        acc[i] = running + np.minimum.accumulate(base - running)  # allows horizontal runs within the row
    return acc


def prosody_of(mel: np.ndarray, pitch: np.ndarray) -> Prosody:
    """A batch of one from a cached mel `(80, T)` and pitch `(2, T)` (ln f0, voiced)."""
    return Prosody.of(torch.from_numpy(mel).float()[None], torch.from_numpy(pitch).float()[None])


def build_pairs(utterances: Sequence[Take], mels: list[np.ndarray], pitches: list[np.ndarray]) -> list[Pair]:
    """Every emotional take that has a neutral take of the same speaker and sentence ("take")."""
    neutral = {(u.speaker, u.take): i for i, u in enumerate(utterances) if u.emotion == "neutral" and u.take}
    pairs = []
    for i, u in enumerate(utterances):
        source = neutral.get((u.speaker, u.take))
        if u.emotion == "neutral" or source is None:
            continue
        refs = tuple(j for j, v in enumerate(utterances) if v.speaker == u.speaker and v.emotion == u.emotion
                     and v.intensity == u.intensity and v.take.split("-")[0] != u.take.split("-")[0])
        warp = dtw_warp(cepstra(mels[source]), cepstra(mels[i]))
        change = measure_change(prosody_of(mels[source], pitches[source]), prosody_of(mels[i], pitches[i]))[0]
        gain = -float(change[ENERGY]) if level_free(u) else 0.0
        change[ENERGY] += gain
        pairs.append(Pair(source, i, refs or (i,), warp, change.numpy(), gain))
    return pairs


def measure_contour(source: Prosody, target: Prosody, warp: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """The shape in time of an actor's f0 change (batches of one; `warp` as `dtw_warp`): the aligned ln f0
    difference target - source over frames voiced in both, its median removed, as medians over `bins` equal
    parts of the source's speech span `(K,)`, and which parts had at least two such frames `(K,)` bool."""
    speech = speech_mask(source.energy)[0].numpy() > 0
    diff = target.log_f0[0].numpy()[warp] - source.log_f0[0].numpy()
    both = speech & (source.voiced[0].numpy() > 0.5) & (target.voiced[0].numpy()[warp] > 0.5)
    values, known = np.zeros(bins, dtype=np.float32), np.zeros(bins, dtype=bool)
    if both.sum() < 2:
        return values, known
    diff = diff - np.median(diff[both])
    first, last = (int(x[0]) for x in speech_span(source.energy))
    part = ((np.arange(len(diff)) - first) * bins // max(last - first, 1)).clip(0, bins - 1)
    for k in range(bins):
        frames = both & (part == k)
        if frames.sum() >= 2:
            values[k], known[k] = np.median(diff[frames]), True
    return values, known
