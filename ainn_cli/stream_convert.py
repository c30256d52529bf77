"""`ainn convert` of a recording of hours in bounded memory: the computation of `Pipeline.convert`, as passes over
the source, each stage's frames kept on disk between passes (`chunks.FrameStore`, nameless files in the output's
folder) and the waveform written as it is made (`audio_stream.AudioWriter`).

    read    AudioReader -> MelStream: the source's mel (store), frame energy, YIN, its first 20 s
    ask     Pipeline._ask: the reference's reading, the emotion, the prosody change (whole-utterance statistics
            from the per-frame arrays, T floats each)
    encode  Ec on each chunk (+- CONTEXT) of the encoder's input -> content frames (store), timbre of the first
            (the reshape variant's input is the reshaped mel, retimed, computed per window from the mel store)
    render  G on each chunk (+- CONTEXT) -> converted mel (store); its and the input's frame energy (match_energy)
    vocode  the silence spans from every frame's energy, then HiFi-GAN span by span, chunk by chunk -> AudioWriter

The spans, contexts and statistics are those of `Renderer.convert_mel` and `vocode`, so a stream gives the whole
computation's output up to float rounding (tested); only memory differs: a chunk of each stage, and T floats per
per-frame array (15 MB for 3 hours).
"""

from __future__ import annotations

import contextlib
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ainn_cli.audio import HOP_LENGTH, N_MELS, SAMPLE_RATE, Audio
from ainn_cli.audio_stream import AudioReader, AudioWriter
from ainn_cli.chunks import FLOAT_BYTES, FrameStore, retime_window, sounding_spans, spans
from ainn_cli.controls import Controls
from ainn_cli.errors import BundleError, DeviceError, OutputError, UsageError
from ainn_cli.files import first_existing, reason
from ainn_cli.measure import MeasuredChange
from ainn_cli.memory import release_memory
from ainn_cli.pipeline import Pipeline, _described
from ainn_cli.pitch import Pitch, energy, pitch_track, prosody_inputs, yin_pitch
from ainn_cli.prosody import (
    MAX_RATE_CHANGE,
    NEPER_TO_DB,
    Prosody,
    apply_change,
    level_plan,
    new_length,
    reshape_frames,
    reshape_plan,
    with_fine_structure,
)
from ainn_cli.rate import MAX_SECONDS as RATE_SECONDS
from ainn_cli.render import CONTEXT, MIN_CHUNK, SILENCE_DB, Target
from ainn_cli.results import ProsodyChange, StrengthReading
from ainn_cli.streaming import MelStream, Progress

# shares of the time, for the progress bar and its time left; measured on a 3-minute file on 2 CPU cores, where
# HiFi-GAN takes 87 % (with the old guesses 0.08/0.17/0.35/0.40, a 3-hour file said "7 minutes left" at 60 %
# and had more than an hour to go)
PASSES = {"read": 0.03, "encode": 0.05, "render": 0.05, "vocode": 0.87}
ZERO_BLOCK = 1 << 18  # samples of silence written at once
Window = Callable[[int, int], torch.Tensor]  # frames [lo, hi) of a series, (1, C, hi - lo)


@dataclass(frozen=True)
class StreamedConversion:
    """What `convert_file` did (as `ConversionResult`, without the wave: it is in `output`)."""

    output: Path
    reference: StrengthReading | None
    emotion: str
    strength: float
    seconds: float  # of the source
    elapsed: float
    prosody: ProsodyChange | None = None
    measured: MeasuredChange | None = None  # a stream's output is not measured against its source (measure.py)
    heard: StrengthReading | None = None  # the reader's reading of the reference (`ConversionResult.heard`)

    @property
    def rtf(self) -> float:
        return self.elapsed / max(self.seconds, 1e-9)


class _Steps:
    """The progress of the passes, as one fraction for `progress`."""

    def __init__(self, progress: Progress | None) -> None:
        self.progress, self.done = progress, 0.0

    def part(self, name: str) -> Progress:
        base, share = self.done, PASSES[name]
        self.done += share
        return lambda fraction: self.progress(base + share * min(1.0, fraction)) if self.progress else None


@dataclass
class Source:
    """The read pass's results: the mel on disk, per-frame energy `(1, T)`, YIN's pitch, the first samples."""

    mel: FrameStore
    energy: torch.Tensor
    pitch: Pitch | None
    head: np.ndarray
    samples: int
    folder: Path  # where the passes keep their stores

    @property
    def frames(self) -> int:
        return self.mel.frames


def read_source(pipe: Pipeline, reader: AudioReader, folder: Path, progress: Progress) -> Source:
    """The read pass: the mel as `Pipeline._mel` makes it (chunked, in the pipeline's dtype) and YIN's measures."""
    head = int(RATE_SECONDS * SAMPLE_RATE) // HOP_LENGTH * HOP_LENGTH
    stream = MelStream(reader, pipe.chunk_frames, with_yin=pipe.prosody is not None, keep_head=head)
    store, energies, measures = FrameStore(N_MELS, folder), [], []
    try:
        for chunk in stream.chunks():
            mel = chunk.mel.to(pipe.dtype)
            store.append(mel)
            energies.append(energy(mel.float()))
            if chunk.yin is not None:
                measures.append(chunk.yin)
            release_memory()
            progress(chunk.stop / max(stream.expected_frames, chunk.stop))
    except BaseException:
        store.close()
        raise
    pitch = None
    if measures:
        tau, depth, power = (torch.cat([m[k] for m in measures]) for k in range(3))
        pitch = yin_pitch(tau, depth, power)
    return Source(store, torch.cat(energies, dim=-1), pitch, stream.head, stream.samples, folder)


@torch.inference_mode()
def convert_file(pipe: Pipeline, source: AudioReader, reference: Audio | None, output: Path, *,
                 strength: float | None = None, emotion: str | None = None, tempo: bool | None = None,
                 controls: Controls | None = None, rate: int = SAMPLE_RATE, overwrite: bool = False,
                 on_limit: Callable[[float], None] | None = None, progress: Progress | None = None
                 ) -> StreamedConversion:
    """`Pipeline.convert(read_audio(path), reference, ...)` written to `output` as `write_wav` would, as a stream
    (`source` is the opened `AudioReader(path)`: its first pass has measured it, its warnings are known)."""
    start = time.perf_counter()
    if strength is not None and not 0.0 <= strength <= 1.0:
        raise UsageError(f"strength must be between 0 and 1, got {strength}")
    steps = _Steps(progress)
    _check_space(output, disk_needed(source.levels.samples, rate, getattr(pipe.content.config, "content_dim", 64)))
    with AudioWriter(output, rate, overwrite, on_limit) as writer, _scratch_space(output):
        src = read_source(pipe, source, output.parent, steps.part("read"))
        try:
            head_mel = src.mel.read(0, len(src.head) // HOP_LENGTH).to(pipe.device, pipe.dtype)
            reading, label, level, target = pipe._ask(src.head, head_mel, reference, strength, emotion, tempo,
                                                      pitch=src.pitch)
            target = pipe._controlled(target, controls or Controls())
            length = _length(src, target)
            _render_retrying(pipe, src, target, writer, length, steps)
        finally:
            src.mel.close()
        if writer.nonfinite:
            raise BundleError(f"{source.path}: the model gave NaN or infinite samples; nothing written")
        writer.finish()
    change = target.change
    return StreamedConversion(
        output=output, reference=reading, emotion=label, strength=level, seconds=src.samples / SAMPLE_RATE,
        elapsed=time.perf_counter() - start,
        prosody=None if change is None else _described(change, length / max(src.samples, 1), target.contour),
        heard=pipe.hear(reference))


def disk_needed(samples: int, rate: int, content_dim: int) -> int:
    """Bytes a stream of `samples` (at SAMPLE_RATE) may need beside its output at most: the mel, content and
    converted mel stores, the waveform's scratch at `rate` and the output itself, at the longest duration a
    prosody change allows (e^MAX_RATE_CHANGE; about 1 GB an hour in all at 22050 Hz)."""
    stretch = math.exp(MAX_RATE_CHANGE)
    frames = samples / HOP_LENGTH
    stores = FLOAT_BYTES * frames * (N_MELS + stretch * (content_dim + N_MELS))
    out = samples * stretch * rate / SAMPLE_RATE
    return int(stores + out * (FLOAT_BYTES + 2))  # the scratch in float32, the output in 16 bits at most


def _check_space(output: Path, needed: int) -> None:
    """Refuse, before hours of work, a stream whose output folder has not the room for it."""
    try:
        free = shutil.disk_usage(first_existing((output.parent, *output.parents)) or Path(".")).free
    except OSError:
        return  # the writer will say what is wrong with the folder
    if free < needed:
        raise OutputError(f"{output}: a stream of this length needs up to {needed / 1e9:.1f} GB in its folder "
                          f"(frames on the way and the output), and {free / 1e9:.1f} GB are free")


@contextlib.contextmanager
def _scratch_space(output: Path) -> Iterator[None]:
    """The passes' stores live beside `output`: a full disk there is one OutputError naming `output`."""
    try:
        yield
    except OSError as err:
        raise OutputError(f"{output}: cannot write ({reason(err)})") from None


def _length(src: Source, target: Target) -> int:
    """Output samples: the source's, times the duration change (as `Pipeline.convert`)."""
    if target.change is None:
        return src.samples
    return round(src.samples * new_length(src.frames, target.change) / max(src.frames, 1))


def _render_retrying(pipe: Pipeline, src: Source, target: Target, writer: AudioWriter, length: int,
                     steps: _Steps) -> None:
    """Encode, render and vocode in `pipe.chunk_frames` chunks; after a CUDA out-of-memory, again with half."""
    chunk, done = pipe.chunk_frames, steps.done
    while True:
        try:
            _Render(pipe, src, target, chunk).run(writer, length, steps)
            return
        except torch.OutOfMemoryError:
            if chunk <= MIN_CHUNK:
                raise DeviceError(f"out of memory on {pipe.device} even with {chunk}-frame chunks; use --device cpu"
                                  ) from None
            chunk //= 2
            torch.cuda.empty_cache()
            writer.reset()
            steps.done = done


class _Render:
    """`Renderer.convert_mel` and `vocode` as passes over stores (one per stage, closed at the end)."""

    def __init__(self, pipe: Pipeline, src: Source, target: Target, chunk: int) -> None:
        self.pipe, self.src, self.target, self.chunk = pipe, src, target, chunk
        self.rendered = bool(getattr(pipe.generator.config, "prosody_dim", 0))
        self.source = self._source_prosody()
        change, frames = target.change, src.frames
        self.length = frames if change is None or self.source is None else new_length(frames, change)
        self.plan = None  # the reshape variant's per-frame warp and gain `(1, T)` each
        if self.source is not None and change is not None and not self.rendered:
            self.plan = reshape_plan(self.source, change.to(pipe.dtype), target.contour)
        self.prosody = self._rendered_prosody()
        self.stores: list[FrameStore] = []

    def _source_prosody(self) -> Prosody | None:
        """As `render._source_prosody`, from the read pass's pitch and energy."""
        pitch, change = self.target.pitch, self.target.change
        if pitch is None or change is None:
            return None
        track = torch.from_numpy(pitch_track(pitch, self.src.frames)).to(self.pipe.device).unsqueeze(0)
        return Prosody(log_f0=track[:, 0], voiced=track[:, 1], energy=self.src.energy.to(self.pipe.device))

    def _rendered_prosody(self) -> torch.Tensor | None:
        """G's prosody channels `(1, 3, T')` where G renders the contour (the prosody variant)."""
        change = self.target.change
        if self.source is None or change is None or not self.rendered:
            return None
        wanted = apply_change(self.source, change.to(self.source.log_f0.dtype), self.target.contour)
        wanted = wanted.retimed(self.length)
        return prosody_inputs(wanted.log_f0, wanted.voiced, wanted.energy).to(self.pipe.dtype)

    def _mel(self, lo: int, hi: int) -> torch.Tensor:
        return self.src.mel.read(lo, hi).to(self.pipe.device, self.pipe.dtype)

    def encoder_input(self, lo: int, hi: int) -> torch.Tensor:
        """Frames [lo, hi) of what Ec reads: the mel, or (reshape variant) the reshaped mel retimed to T'."""
        if self.plan is None:
            return self._mel(lo, hi)
        alpha, gain = self.plan

        def reshaped(a: int, b: int) -> torch.Tensor:
            return reshape_frames(self._mel(a, b), alpha[..., a:b], gain[..., a:b])

        return retime_window(reshaped, self.src.frames, self.length, lo, hi)

    def store(self, channels: int) -> FrameStore:
        store = FrameStore(channels, self.src.folder)
        self.stores.append(store)
        return store

    def run(self, writer: AudioWriter, length: int, steps: _Steps) -> None:
        try:
            content, timbre = self.encode(steps.part("encode"))
            out, shift, lift = self.generate(content, timbre, steps.part("render"))
            self.vocode(out, shift, lift, writer, length, steps.part("vocode"))
        finally:
            for store in self.stores:
                store.close()

    def encode(self, progress: Progress) -> tuple[FrameStore, torch.Tensor]:
        """Ec chunk by chunk over its input (T' frames, or T where G renders the contour)."""
        frames = self.src.frames if self.rendered or self.plan is None else self.length
        content, timbre = None, None
        for span in spans(frames, self.chunk, CONTEXT):
            part, voice = self.pipe._content(self.encoder_input(span.lo, span.hi))
            timbre = voice if timbre is None else timbre
            if content is None:
                content = self.store(part.shape[1])
            content.append(part[..., span.start - span.lo : span.stop - span.lo])
            release_memory()
            progress(span.stop / frames)
        assert content is not None and timbre is not None  # a stream has at least one frame
        return content, timbre

    def generate(self, content: FrameStore, timbre: torch.Tensor, progress: Progress
                 ) -> tuple[FrameStore, torch.Tensor | None, float]:
        """G chunk by chunk; then the low-voice fine structure, match_energy's shift and the waveform's gain, as
        `convert_mel`."""
        out, have, want = self.store(N_MELS), [], []
        low_voice = self.plan is not None and self.source is not None and self.pipe._low_voice(self.source)
        for span in spans(self.length, self.chunk, CONTEXT):
            part = None if self.prosody is None else self.prosody[..., span.lo : span.hi]
            mel = self.pipe._generate(self._content(content, span.lo, span.hi), self.target, timbre, part)
            mel = mel[..., span.start - span.lo : span.stop - span.lo]
            if self.plan is not None:
                like = self.encoder_input(span.start, span.stop)
                if low_voice:
                    mel = with_fine_structure(mel.float(), like.float()).to(mel.dtype)
                have.append(energy(mel.float()))
                want.append(energy(like.float()))
            out.append(mel)
            release_memory()  # each chunk's freed pages back to the system: hours must not fragment the heap
            progress(span.stop / self.length)
        return out, *self._shift(have, want)

    def _content(self, content: FrameStore, lo: int, hi: int) -> torch.Tensor:
        def read(a: int, b: int) -> torch.Tensor:
            return content.read(a, b).to(self.pipe.device, self.pipe.dtype)

        return retime_window(read, content.frames, self.length, lo, hi) if self.rendered else read(lo, hi)

    def _shift(self, have: list[torch.Tensor], want: list[torch.Tensor]) -> tuple[torch.Tensor | None, float]:
        """match_energy's constant `(1,)` (None where the model does not match the energy) and the waveform's
        linear gain (`level_lift`, with match_energy "lower")."""
        mode = self.pipe.prosody.config.match_energy if self.pipe.prosody is not None else "off"
        if self.plan is None or mode == "off":
            return None, 1.0
        got, asked = torch.cat(have, dim=-1), torch.cat(want, dim=-1)
        floor = None if self.target.lift_to_asked else self.src.energy.to(got.device)
        shift, lift = level_plan(got, asked, mode, floor)
        return shift, 1.0 if lift is None else float(torch.exp(lift[0].float()))

    def _vocode_chunk(self) -> int:
        """Frames HiFi-GAN gets at once: one of its tiles with its context where it tiles (the CPU), so the progress
        moves every few seconds of audio at no cost (the tiled vocoder cuts a longer span into such tiles anyway)."""
        tile = getattr(self.pipe.vocoder, "tile", None)
        if not isinstance(tile, int):
            return self.chunk
        return max(1, min(self.chunk, tile - 2 * self.pipe.vocoder_context))

    def vocode(self, out: FrameStore, shift: torch.Tensor | None, gain: float, writer: AudioWriter, length: int,
               progress: Progress) -> None:
        """`Renderer.vocode`: silence spans from the final mel's energy, then HiFi-GAN span by span, times `gain`."""
        dtype = self.pipe.dtype

        def final(lo: int, hi: int) -> torch.Tensor:
            mel = out.read(lo, hi).to(self.pipe.device, dtype)
            return (mel if shift is None else mel + shift[:, None, None].to(dtype)).to(torch.float32)

        frames = out.frames
        loudness = torch.cat([energy(final(s.start, s.stop)[0]) for s in spans(frames, self.chunk, 0)])
        sink = _Fitted(writer, length)
        cursor = 0
        for start, stop in sounding_spans(loudness, SILENCE_DB / NEPER_TO_DB, self.pipe.vocoder_context + 1):
            sink.zeros((start - cursor) * HOP_LENGTH)
            for span in spans(stop - start, self._vocode_chunk(), self.pipe.vocoder_context):
                wave = self.pipe.vocoder(final(start + span.lo, start + span.hi))[0] * gain
                sink.write(wave[(span.start - span.lo) * HOP_LENGTH : (span.stop - span.lo) * HOP_LENGTH])
                release_memory()
                progress((start + span.stop) / frames)
            cursor = stop
        sink.zeros((frames - cursor) * HOP_LENGTH)
        sink.close()
        progress(1.0)


class _Fitted:
    """Samples on their way to the writer, cut or zero-padded to `length` (`pipeline._fit`)."""

    def __init__(self, writer: AudioWriter, length: int) -> None:
        self.writer, self.left = writer, length

    def write(self, wave: torch.Tensor | np.ndarray) -> None:
        samples = wave.float().cpu().numpy() if isinstance(wave, torch.Tensor) else wave
        if self.left > 0 and samples.size:
            self.writer.write(samples[: self.left])
            self.left -= min(self.left, samples.size)

    def zeros(self, count: int) -> None:
        for size in _blocks(min(count, self.left)):
            self.write(np.zeros(size, np.float32))

    def close(self) -> None:
        self.zeros(self.left)


def _blocks(count: int) -> Iterator[int]:
    while count > 0:
        yield min(count, ZERO_BLOCK)
        count -= ZERO_BLOCK
