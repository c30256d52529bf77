"""What the page shows, as JSON: the CLI's result line, a recording's reading, and pictures of mel and F0.

    wave (N,) --log-mel (80, T), YIN f0 (T,)--> at most PICTURE_COLUMNS columns (mel: mean, f0: median of
        the voiced frames, 0 if none) --> {"seconds", "columns", "mel": base64 of uint8 (80, C) row-major,
        lowest mel bin first, MEL_RANGE mapped to 0..255, "f0": [Hz]}
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from ainn_cli.audio import SAMPLE_RATE, Audio, limit
from ainn_cli.batch import Job
from ainn_cli.display import Converted
from ainn_cli.mel import log_mel_in_chunks
from ainn_cli.pipeline import READ_CHUNK_FRAMES
from ainn_cli.pitch import yin
from ainn_cli.results import ConversionResult, StrengthReading
from ainn_cli.serve.jobs import Outcome

PICTURE_COLUMNS = 480  # time columns of a mel picture (and points of a cue curve) sent to the page
MEL_RANGE = (-11.5, 2.5)  # natural-log mel magnitude drawn from black to white (the front end floors at ln 1e-5)


@dataclass(frozen=True)
class Named:
    """A recording on the page: the name shown for it, its audio (mono, SAMPLE_RATE), its picture if drawn."""

    name: str
    audio: Audio
    picture: dict[str, Any] | None = None

    def drawn(self) -> dict[str, Any]:
        return self.picture if self.picture is not None else picture(self.audio.samples)


def wav_bytes(wave: np.ndarray) -> bytes:
    """`(N,)` float samples as the 16-bit wav `ainn convert` writes (same limiting), in memory."""
    buffer = io.BytesIO()
    sf.write(buffer, limit(wave), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def output_name(source: str, reference: str | None, emotion: str) -> str:
    """`SRC-REF.wav` (or `SRC-EMOTION.wav`), the name `ainn convert` would choose."""
    return f"{Path(source).stem}-{Path(reference).stem if reference else emotion}.wav"


def conversion_outcome(result: ConversionResult, source: Named, reference: Named | None) -> Outcome:
    """The result as the page shows it: the CLI's line and numbers, the reference's reading, the pictures of
    source and reference, and the output wav (the output's picture is drawn when the page asks for it,
    `output_picture`, so that the audio is not kept waiting for it)."""
    name = output_name(source.name, reference.name if reference else None, result.emotion)
    job = Job(source=Path(source.name), reference=Path(reference.name) if reference else None, output=Path(name))
    converted = Converted.of(job, result)
    summary: dict[str, Any] = {
        "sentence": converted.sentence(), "converted": converted.as_dict(),
        "output": {"name": name, "samples": len(result.wave), "seconds": round(len(result.wave) / SAMPLE_RATE, 3),
                   "sample_rate": SAMPLE_RATE},
        "reading": None if result.reference is None else reading_summary(result.reference),
        "pictures": {"source": source.drawn(), "reference": None if reference is None else reference.drawn()},
        "warnings": [f"{item.name}: {w}" for item in (source, reference) if item for w in item.audio.warnings],
    }
    return Outcome(summary=summary, wav=wav_bytes(result.wave), wav_name=name)


def output_picture(wav: bytes) -> dict[str, Any]:
    """The picture of a conversion's output as the page plays it: its 16-bit wav, decoded."""
    samples, _ = sf.read(io.BytesIO(wav), dtype="float32")
    return picture(samples)


def strength_outcome(reading: StrengthReading, recording: Named) -> Outcome:
    """A reading for the strength view: category, probabilities, strength, cue M and a picture."""
    return Outcome(summary={"name": recording.name, "reading": reading_summary(reading),
                            "picture": recording.drawn(),
                            "warnings": list(recording.audio.warnings)})


def reading_summary(reading: StrengthReading) -> dict[str, Any]:
    """A reading rounded as `ainn strength --json` rounds it, with the cue M cut to PICTURE_COLUMNS points
    (the mean within each)."""
    return {"label": reading.label, "strength": round(reading.strength, 4),
            "probabilities": {k: round(v, 4) for k, v in reading.probabilities.items()},
            "seconds": round(reading.seconds, 3), "frame_rate": reading.frame_rate,
            "cue": [round(float(v), 3) for v in _column_means(np.asarray(reading.cue, dtype=np.float32))]}


def picture(wave: np.ndarray) -> dict[str, Any]:
    """A mel and F0 picture of a waveform `(N,)` for the page (see the module's docstring)."""
    mel = log_mel_in_chunks(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), READ_CHUNK_FRAMES)
    frames = mel[0].numpy()  # (80, T)
    pitch = yin(wave)
    edges = _edges(frames.shape[1])
    columns = np.stack([frames[:, a:b].mean(axis=1) for a, b in zip(edges[:-1], edges[1:])], axis=1)
    low, high = MEL_RANGE
    scaled = np.clip((columns - low) / (high - low) * 255.0, 0, 255).astype(np.uint8)
    f0 = [_voiced_median(pitch.f0[a:b], pitch.voiced[a:b]) for a, b in zip(edges[:-1], edges[1:])]
    return {"seconds": round(len(wave) / SAMPLE_RATE, 3), "columns": int(scaled.shape[1]),
            "mel": base64.b64encode(np.ascontiguousarray(scaled).tobytes()).decode("ascii"), "f0": f0}


def _edges(frames: int) -> np.ndarray:
    """Column boundaries `(C + 1,)` over `frames` frames, C = min(frames, PICTURE_COLUMNS), none empty."""
    count = max(min(frames, PICTURE_COLUMNS), 1)
    edges = np.linspace(0, max(frames, 1), count + 1).astype(int)
    edges[1:] = np.maximum(edges[1:], edges[:-1] + 1)
    return edges


def _column_means(values: np.ndarray) -> np.ndarray:
    """`(T,)` values cut to at most PICTURE_COLUMNS columns, each the mean of the values within it."""
    if values.size == 0:
        return values
    edges = _edges(values.size)
    return np.array([values[a:b].mean() for a, b in zip(edges[:-1], edges[1:])], dtype=np.float32)


def _voiced_median(f0: np.ndarray, voiced: np.ndarray) -> float:
    """Median F0 (Hz, one decimal) of the voiced frames of a column; 0 when none is voiced."""
    return round(float(np.median(f0[voiced])), 1) if voiced.any() else 0.0
