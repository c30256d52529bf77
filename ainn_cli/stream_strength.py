"""`ainn strength` of a recording of hours in bounded memory: `Pipeline.strength` with R's heads summed as the
chunks come, and the mel a plot shows kept decimated.

    MelStream chunks --R's trunk per span (+- CONTEXT, `_recognize_in_chunks`' spans)--> features (1, C, n)
        sums: features (C), each class's activation per frame (K x T floats), features x each class's
        activation (K x C); at the end the class read, its cue M = CAM / max CAM, and Rs on the cue-pooled
        features: `Recognizer.heads` in closed form (equal up to float rounding, tested)
    plot: the mel averaged over `step` frames per column (at most PLOT_COLUMNS columns)
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import cast

import numpy as np
import soxr
import torch

from ainn_cli import speech_encoder
from ainn_cli.audio import N_MELS, SAMPLE_RATE
from ainn_cli.audio_stream import AudioReader
from ainn_cli.chunks import Span, spans
from ainn_cli.errors import BundleError
from ainn_cli.memory import release_memory
from ainn_cli.models.layers import EPS
from ainn_cli.models.recognizer import Recognizer
from ainn_cli.pipeline import Pipeline
from ainn_cli.reading import read_windows
from ainn_cli.render import CONTEXT
from ainn_cli.results import StrengthReading
from ainn_cli.streaming import MelChunk, MelStream, Progress

PLOT_COLUMNS = 2200  # mel columns a plot keeps (two per pixel of its 1100-pixel width); more frames are averaged


def plot_step(frames: int) -> int:
    """Mel frames per plotted column."""
    return max(1, math.ceil(frames / PLOT_COLUMNS))


class Decimated:
    """A mel `(80, T)` arriving in pieces, kept as the mean of every `step` frames: `(80, ceil(T / step))`."""

    def __init__(self, step: int) -> None:
        self.step, self.columns, self.pending = step, [np.zeros((N_MELS, 0), np.float32)], np.zeros((N_MELS, 0))

    def add(self, mel: np.ndarray) -> None:
        pending = np.concatenate([self.pending, mel.astype(np.float64)], axis=1)
        whole = pending.shape[1] // self.step * self.step
        self.columns.append(pending[:, :whole].reshape(N_MELS, -1, self.step).mean(axis=2).astype(np.float32))
        self.pending = pending[:, whole:]

    def result(self) -> np.ndarray:
        tail = [self.pending.mean(axis=1, keepdims=True).astype(np.float32)] if self.pending.shape[1] else []
        return np.concatenate(self.columns + tail, axis=1)


@dataclass(frozen=True)
class StreamedReading:
    """A reading, and the mel a plot shows (decimated `step` frames per column; None when not asked)."""

    reading: StrengthReading
    mel: np.ndarray | None
    step: int


class _Heads:
    """`Recognizer.heads` over features that arrive chunk by chunk `(1, C, n)`."""

    def __init__(self, recognizer: Recognizer) -> None:
        self.r = recognizer
        self.weight = recognizer.classifier.weight.detach()  # (K, C)
        classes, channels = self.weight.shape
        self.total = torch.zeros(channels, dtype=torch.float64)
        self.pooled = torch.zeros(classes, channels, dtype=torch.float64)
        self.cams: list[torch.Tensor] = []
        self.dtype = self.weight.dtype

    def add(self, features: torch.Tensor) -> None:
        f = features[0]
        cam = torch.einsum("ct,kc->kt", f, self.weight)  # every class's activation per frame
        self.cams.append(cam.float().cpu())
        self.total += f.double().sum(dim=-1).cpu()
        self.pooled += torch.einsum("ct,kt->kc", f.double(), torch.relu(cam).double()).cpu()

    def result(self) -> tuple[torch.Tensor, float, torch.Tensor]:
        """Logits `(K,)`, Rs's raw strength and the cue `(T,)`, as `Recognizer.heads` gives them."""
        cams = torch.cat(self.cams, dim=-1)
        frames = cams.shape[-1]
        device = self.weight.device
        logits = self.r.classifier((self.total / frames).to(device, self.dtype)[None])[0]
        chosen = int(logits.argmax())
        cam = torch.relu(cams[chosen]).double()
        top = float(cam.max()) + EPS
        cue = cam / top
        pooled = (self.pooled[chosen] / top + EPS * self.total) / (float(cue.sum()) + EPS * frames + EPS)
        raw = torch.sigmoid(self.r.strength_head(pooled.to(device, self.dtype)[None]).squeeze(-1))
        return logits.float().cpu(), float(raw[0]), cue.float()


@torch.inference_mode()
def read_file(pipe: Pipeline, reader: AudioReader, plot: bool = False, progress: Progress | None = None
              ) -> StreamedReading:
    """`pipe.strength(read_audio(path))`, and with `plot` the decimated mel, read as a stream (`reader` is the
    opened `AudioReader(path)`)."""
    stream = MelStream(reader, pipe.chunk_frames)
    step = plot_step(stream.expected_frames)
    shown = Decimated(step) if plot else None
    if pipe.reader is not None:  # the bundle's reader reads the emotion (reading.py), 30 s windows at 16 kHz
        read = read_windows(pipe.reader, _whisper_windows(reader), reader.levels.samples / SAMPLE_RATE, progress)
        if shown is not None:
            for chunk in stream.chunks():
                shown.add(chunk.mel[0].float().numpy())
                release_memory()
        return StreamedReading(read, None if shown is None else shown.result(), step)
    heads = _Heads(cast(Recognizer, pipe.recognizer))
    for features in _features(pipe, stream, shown, progress):
        heads.add(features)
    logits, raw, cue = heads.result()
    probs = torch.softmax(logits, dim=-1).tolist()
    if not np.isfinite([*probs, raw]).all():
        raise BundleError(f"{pipe.bundle.path}: the recognizer gives NaN or infinite outputs")
    label = pipe.labels[int(np.argmax(probs))]
    reading = StrengthReading(
        label=label, probabilities=dict(zip(pipe.labels, probs)),
        strength=pipe.bundle.info.calibration.calibrate(label, raw), cue=tuple(cue.tolist()),
        seconds=stream.samples / SAMPLE_RATE)
    return StreamedReading(reading, None if shown is None else shown.result(), step)


def _features(pipe: Pipeline, stream: MelStream, shown: Decimated | None,
              progress: Progress | None) -> Iterator[torch.Tensor]:
    """R's trunk features of `_recognize_in_chunks`' spans, as soon as their mel (with its context) has come."""
    r = cast(Recognizer, pipe.recognizer)
    mel = _MelWindow()
    span = 0  # start of the next span of R's
    for chunk in stream.chunks():
        mel.add(chunk, pipe)
        if shown is not None:
            shown.add(chunk.mel[0].float().numpy())
        while span + pipe.read_chunk_frames + CONTEXT <= mel.end:
            yield _trunk(r, mel, Span(span, span + pipe.read_chunk_frames, max(0, span - CONTEXT),
                                      span + pipe.read_chunk_frames + CONTEXT))
            release_memory()  # freed pages back to the system as they come: hours must not fragment the heap
            span += pipe.read_chunk_frames
        if progress is not None:
            progress(chunk.stop / max(stream.expected_frames, chunk.stop))
    for last in spans(mel.end, pipe.read_chunk_frames, CONTEXT):
        if last.start >= span:
            yield _trunk(r, mel, last)


def _trunk(r: Recognizer, mel: _MelWindow, span: Span) -> torch.Tensor:
    features = r.features(mel.read(span.lo, span.hi))
    mel.drop(span.stop - CONTEXT)
    return features[..., span.start - span.lo : span.stop - span.lo]


class _MelWindow:
    """The stream's mel frames from `start` on, in the pipeline's dtype on its device."""

    def __init__(self) -> None:
        self.parts: list[torch.Tensor] = []
        self.start = self.end = 0

    def add(self, chunk: MelChunk, pipe: Pipeline) -> None:
        self.parts.append(chunk.mel.to(pipe.device, pipe.dtype))
        self.end = chunk.stop

    def read(self, lo: int, hi: int) -> torch.Tensor:
        if len(self.parts) > 1:
            self.parts = [torch.cat(self.parts, dim=-1)]
        return self.parts[0][..., lo - self.start : hi - self.start]

    def drop(self, before: int) -> None:
        whole = self.read(self.start, self.end)
        cut = max(0, before - self.start)
        self.parts, self.start = [whole[..., cut:].clone()], self.start + cut


def _whisper_windows(reader: AudioReader) -> Iterator[tuple[np.ndarray, float]]:
    """`reading.read_emotion`'s windows of a stream: its samples at 16 kHz (soxr, as `to_whisper_rate`), 30 s at
    a time, each with the fraction of the recording done."""
    resampler = soxr.ResampleStream(SAMPLE_RATE, speech_encoder.RATE, 1, dtype="float32")
    size, expected = int(speech_encoder.WINDOW_SECONDS * speech_encoder.RATE), max(1, reader.levels.samples)
    pending, done = np.zeros(0, np.float32), 0
    for block in reader.blocks():
        done += block.size
        pending = np.concatenate([pending, resampler.resample_chunk(block, last=False)])
        while pending.size >= size:
            yield pending[:size], min(1.0, done / expected)
            release_memory()  # the encoder's freed pages, between windows (measured: 50 MB an hour kept otherwise)
            pending = pending[size:]
    pending = np.concatenate([pending, resampler.resample_chunk(np.zeros(0, np.float32), last=True)])
    while pending.size:
        yield pending[:size], 1.0
        pending = pending[size:]
