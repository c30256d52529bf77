"""A recording's emotion as the reader (`models/reader.py`) reads it: category, strength and cue over time.

    samples (N,) at 22050 Hz --speech_encoder.encode--> states (T, D), speech mask (T,)   (30 s at a time)
        --Reader--> logits (K,), strength = 1 - P(neutral), cue (T,) at 50 per second

Long recordings are encoded 30 s at a time and the reader's frame logits summed as they come, so memory
holds one window's states, the running sums and the cue (4 bytes per 20 ms).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

from ainn_cli import speech_encoder
from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.errors import BundleError
from ainn_cli.models.reader import Reader
from ainn_cli.results import StrengthReading


@torch.inference_mode()
def read_emotion(reader: Reader, samples: np.ndarray, progress: Callable[[float], None] | None = None
                 ) -> StrengthReading:
    """The reading of one mono waveform `(N,)` at SAMPLE_RATE."""
    audio = speech_encoder.to_whisper_rate(samples, SAMPLE_RATE)
    if len(audio) < speech_encoder.N_FFT:
        audio = np.pad(audio, (0, speech_encoder.N_FFT - len(audio)))
    windows = ((audio[lo:hi], hi / len(audio)) for lo, hi in speech_encoder.windows(len(audio)))
    return read_windows(reader, windows, len(samples) / SAMPLE_RATE, progress)


@torch.inference_mode()
def read_windows(reader: Reader, windows: Iterable[tuple[np.ndarray, float]], seconds: float,
                 progress: Callable[[float], None] | None = None) -> StrengthReading:
    """The reading of a recording of `seconds` given as its `speech_encoder.windows` at 16 kHz, each with the
    fraction of the recording done at its end (a stream of hours gives them as it reads: `stream_strength`)."""
    device = reader.center.device
    total = torch.zeros(len(reader.config.labels), dtype=torch.float64)
    count, cues = 0, []
    for window, done in windows:
        states = speech_encoder.encode_window(window, reader.config.layers)
        speech = speech_encoder.speech_mask(window, len(states), reader.config.speech_db)
        z = reader.frame_logits(torch.from_numpy(states).to(device, reader.center.dtype).unsqueeze(0))[0]
        keep = torch.from_numpy(speech).to(device) if speech.any() else torch.ones(len(states), dtype=torch.bool)
        total += z[keep.to(z.device)].double().sum(0).cpu()
        count += int(keep.sum())
        cues.append(reader.cue(z.unsqueeze(0))[0].float().cpu().numpy())
        if progress is not None:
            progress(done)
    logits = (total / max(count, 1)).float()
    probs = torch.softmax(logits, dim=-1)
    if not torch.isfinite(probs).all():
        raise BundleError("the reader gives NaN or infinite outputs")
    labels = reader.config.labels
    return StrengthReading(
        label=labels[int(probs.argmax())], probabilities=dict(zip(labels, probs.tolist())),
        strength=float(1.0 - probs[reader.neutral]), cue=tuple(np.concatenate(cues).tolist()),
        seconds=seconds, frame_rate=float(speech_encoder.STATES_PER_SECOND),
    )
