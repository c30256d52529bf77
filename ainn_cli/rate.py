"""Speaking rate: phones per second of speech, read by a phone recognizer.

    wave (N,) at 22050 Hz --log-mel--> frame energy --speech_mask--> speech frames (within 40 dB of the loudest)
    speech frames +- 0.1 s, joined --soxr--> 16 kHz --hama CTC phone recognizer--> phones (greedy decode, word
                                                                                        marks dropped)
    rate = phones / seconds of speech frames

The prosody path uses it to carry the reference's tempo over (`ainn convert --tempo`; the shipped default does
not unless asked, `follow_rate = false`): an emotional take's duration change from the
speaker's neutral one follows the ratio of the two speaking rates (RAVDESS actors 1-20: the speaker's own
fast or slow emotional speech, which a per-emotion mean cannot know; `train/fit_rate.py`). Counting phones,
not syllable peaks, makes it hold across sentences: hama reads RAVDESS's two 7-syllable sentences as
17.8 +- 1.0 phones. Pauses do not count as speech, so a long source with pauses is not read as slow, and
they are not run through the recognizer (it costs ~0.07 s per second it hears on this project's CPU).

hama (PyPI, Apache-2.0) runs its own CPU engine on numpy arrays: no torch, no onnxruntime, no network.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import soxr
import torch

from ainn_cli.audio import HOP_LENGTH, SAMPLE_RATE
from ainn_cli.errors import BundleError
from ainn_cli.mel import log_mel
from ainn_cli.pitch import energy
from ainn_cli.prosody import speech_mask

RECOGNIZER_RATE = 16000  # Hz, what hama's phone recognizer reads
MIN_PHONES = 3  # fewer phones than this (noise, a cough): no rate
MARGIN_FRAMES = 9  # ~0.1 s kept around speech frames for the recognizer, so that no phone edge is cut
MAX_SECONDS = 20.0  # a longer wave's rate is read on its first 20 s (bounded time and memory for any length)
WORD_MARK = "<wb>"


@lru_cache(maxsize=1)
def _recognizer() -> Any:
    """hama's phone recognizer, loaded once per process (~20 MB of weights)."""
    try:
        from hama.asr import ASRModel
    except ImportError as err:  # a broken install: hama is a dependency of ainn
        raise BundleError(f"this model reads speaking rates with the phone recognizer of the PyPI package hama, "
                          f"which cannot be imported ({err}); reinstall ainn") from None
    return ASRModel()


def phone_count(samples: np.ndarray) -> int:
    """Phones hama hears in a mono wave `(N,)` at SAMPLE_RATE (greedy CTC decode, word marks not counted)."""
    if len(samples) < HOP_LENGTH:
        return 0
    wave = soxr.resample(np.asarray(samples, dtype=np.float32), SAMPLE_RATE, RECOGNIZER_RATE, quality="HQ")
    result = _recognizer().transcribe_waveform(np.clip(wave, -1.0, 1.0), RECOGNIZER_RATE)
    return sum(1 for phone in result.phonemes if phone != WORD_MARK)


def speech_frames(mel: torch.Tensor) -> np.ndarray:
    """Speech frames of a log-mel `(80, T)` or `(1, 80, T)`: `(T,)` bool, within SPEECH_DB of the loudest."""
    mask: np.ndarray = speech_mask(energy(mel.float().reshape(-1, *mel.shape[-2:])))[0].cpu().numpy() > 0
    return mask


def around_speech(samples: np.ndarray, speech: np.ndarray, margin: int = MARGIN_FRAMES) -> np.ndarray:
    """The samples `(N,)` of the speech frames `(T,)` and `margin` frames either side, joined: `(M,)`."""
    kernel = np.ones(2 * margin + 1)
    keep = np.convolve(speech.astype(float), kernel, mode="same") > 0
    per_sample = np.repeat(keep, HOP_LENGTH)[: len(samples)]
    per_sample = np.pad(per_sample, (0, len(samples) - len(per_sample)), constant_values=bool(keep[-1:].any()))
    return samples[per_sample]


def speaking_rate(samples: np.ndarray, mel: torch.Tensor | None = None) -> float | None:
    """Phones per second of speech of a wave `(N,)` at SAMPLE_RATE (its log-mel `(1, 80, T)` if already
    computed), over its first MAX_SECONDS; None when it has too few phones to tell."""
    frames = int(MAX_SECONDS * SAMPLE_RATE) // HOP_LENGTH
    samples = samples[: frames * HOP_LENGTH]
    if mel is None:
        mel = log_mel(torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32)))
    speech = speech_frames(mel[..., :frames])
    phones = phone_count(around_speech(samples, speech))
    if phones < MIN_PHONES or not speech.any():
        return None
    return phones / (float(speech.sum()) * HOP_LENGTH / SAMPLE_RATE)


def rate_ratio(source: float | None, reference: float | None) -> float:
    """ln(source rate / reference rate): > 0 when the reference speaks slower (the output should last longer);
    0 when either rate is unknown."""
    if source is None or reference is None:
        return 0.0
    return math.log(source / reference)
