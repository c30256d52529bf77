"""Hours-long audio in bounded memory: a file read block by block as `audio.read_audio` prepares it, and an
output written block by block as `audio.write_wav` writes a whole wave.

    file --pass 1: length, mean, peaks, NaN, clipping--> Levels (read_audio's refusals and warnings)
         --pass 2: NaN -> 0, - mean, / peak (when > 1), soxr stream to 22050 Hz, clip--> (n,) float32 blocks

    blocks at 22050 Hz --soxr stream to the output rate--> nameless scratch file (float32; peak, NaN counted)
         --scaled under LIMIT when the peak is above it--> hidden temp file --link--> out.wav

The blocks are those `read_audio` gives (soxr's stream resampler is its one-shot one, sample for sample), and the
file those `write_wav` writes. Scratch files are made with `tempfile.TemporaryFile` in the output's folder: they
have no name, so nothing is left behind by a crash, a full disk or SIGKILL.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import soundfile as sf
import soxr

from ainn_cli.audio import (
    CLIP_LEVEL_TOLERANCE,
    CLIPPED_FRACTION,
    LIMIT,
    MAX_RATE,
    MIN_RATE,
    MIN_SECONDS,
    READ_BLOCK,
    SAMPLE_RATE,
    SILENCE_PEAK,
    check_input,
    check_rate,
    output_format,
    sound_file,
)
from ainn_cli.errors import AudioError, OutputError
from ainn_cli.files import KeptErrors, atomic_output, check_writable, reason, short_reason

SAMPLE_BYTES = 4  # float32
STREAM_SECONDS = 120.0  # inputs longer than this (by their header) are read, converted and written as streams


@dataclass(frozen=True)
class Levels:
    """What the first pass over a file found: its length and rate, and how `prepare` treats its samples."""

    frames: int  # at the file's own rate
    rate: int  # Hz
    mean: np.float32  # DC offset removed from every sample
    peak: float  # of the samples without their DC offset: above 1 they are divided by it
    warnings: tuple[str, ...]

    @property
    def samples(self) -> int:
        """Samples at SAMPLE_RATE once resampled (soxr's output length)."""
        return self.frames if self.rate == SAMPLE_RATE else round(self.frames * SAMPLE_RATE / self.rate)


def header_seconds(path: Path) -> float:
    """A file's duration as its header states it (0 when it has none that libsndfile reads)."""
    try:
        with sound_file(path) as sound:
            frames, rate = sound.frames, sound.samplerate
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError, ValueError):
        return 0.0
    return frames / rate if rate > 0 and frames > 0 else 0.0


def is_long(path: Path) -> bool:
    """Is `path` (by its header) long enough to be streamed?"""
    return header_seconds(path) > STREAM_SECONDS


class AudioReader:
    """A file's samples as `read_audio` would prepare them, `blocks()` at a time: two passes, bounded memory."""

    def __init__(self, path: str | Path) -> None:
        self.path = check_input(path)
        self.levels = self._guarded(self._measure)

    def _guarded(self, run: Callable[[], Levels]) -> Levels:
        try:
            return run()
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise AudioError(f"{self.path}: not a readable audio file ({short_reason(err)})") from None
        except OSError as err:
            raise AudioError(f"{self.path}: cannot read ({err.strerror or err})") from None

    def _mono_blocks(self, frames: int = -1) -> Iterator[tuple[np.ndarray, int]]:
        """(mono block with NaN/inf as 0, its count of NaN/inf samples), as `audio._read_mono` and `_finite` make
        them; and the file's rate first, as `(empty, rate)`."""
        with sound_file(self.path) as handle:
            yield np.zeros(0, np.float32), handle.samplerate
            for block in handle.blocks(blocksize=READ_BLOCK, frames=frames, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32)
                finite = np.isfinite(mono)
                bad = int(mono.size - np.count_nonzero(finite))
                yield (np.where(finite, mono, np.float32(0.0)) if bad else mono), bad

    def _measure(self) -> Levels:
        """Pass 1: the numbers `audio.prepare` takes from the whole wave, and its refusals."""
        blocks = self._mono_blocks()
        rate = next(blocks)[1]
        if not MIN_RATE <= rate <= MAX_RATE:
            raise AudioError(f"{self.path}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
        count = bad = clipped = 0
        total, high, low, loudest = 0.0, -np.inf, np.inf, 0.0
        for mono, nonfinite in blocks:
            if mono.size:
                count, bad = count + mono.size, bad + nonfinite
                total += float(np.sum(mono, dtype=np.float64))
                high, low = max(high, float(mono.max())), min(low, float(mono.min()))
                loudest = max(loudest, float(np.max(np.abs(mono))))
                clipped += int(np.count_nonzero(np.abs(mono) >= 1.0 - CLIP_LEVEL_TOLERANCE))
        return self._levels(count, rate, bad, total, (high, low, loudest), clipped)

    def _levels(self, count: int, rate: int, bad: int, total: float, peaks: tuple[float, float, float],
                clipped: int) -> Levels:
        """`audio.prepare`'s checks and warnings, in its order, from pass 1's sums."""
        warnings: list[str] = []
        if bad and bad == count:
            raise AudioError(f"{self.path}: every sample is NaN or infinite")
        if bad:
            warnings.append(f"{bad} NaN/infinite samples replaced by 0")
        if count / rate < MIN_SECONDS:
            raise AudioError(f"{self.path}: too short ({count / rate:.3f} s, need {MIN_SECONDS} s)")
        high, low, loudest = peaks
        if loudest > 1.0 + CLIP_LEVEL_TOLERANCE:
            warnings.append(f"peak {loudest:.3g} is beyond full scale; normalised")
        elif clipped / count > CLIPPED_FRACTION:
            warnings.append(f"more than {CLIPPED_FRACTION:.0%} of samples are clipped")
        mean = np.float32(total / count)
        peak = max(float(np.float32(high) - mean), float(mean - np.float32(low)))  # max |x - mean|, in float32
        if peak < SILENCE_PEAK:
            raise AudioError(f"{self.path}: silent (peak amplitude {peak:.1e})")
        return Levels(count, rate, mean, peak, tuple(warnings))

    def blocks(self) -> Iterator[np.ndarray]:
        """Pass 2: `(n,)` float32 blocks at SAMPLE_RATE, together the samples `read_audio(path)` holds."""
        try:
            yield from self._prepared()
        except (sf.LibsndfileError, RuntimeError, TypeError) as err:
            raise AudioError(f"{self.path}: not a readable audio file ({short_reason(err)})") from None
        except OSError as err:
            raise AudioError(f"{self.path}: cannot read ({err.strerror or err})") from None

    def _prepared(self) -> Iterator[np.ndarray]:
        levels = self.levels
        resampler = None
        if levels.rate != SAMPLE_RATE:
            resampler = soxr.ResampleStream(levels.rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        blocks = self._mono_blocks(levels.frames)  # no further than pass 1 went, should the file grow meanwhile
        next(blocks)
        for mono, _ in blocks:
            wave = mono - levels.mean
            if levels.peak > 1.0:
                wave = wave / np.float32(levels.peak)
            out = wave.astype(np.float32, copy=False)
            if resampler is not None:
                out = np.clip(resampler.resample_chunk(out, last=False), -1.0, 1.0).astype(np.float32)
            if out.size:
                yield out
        if resampler is not None:
            tail = np.clip(resampler.resample_chunk(np.zeros(0, np.float32), last=True), -1.0, 1.0)
            if tail.size:
                yield tail.astype(np.float32)


class AudioWriter:
    """Float blocks at SAMPLE_RATE in, `path` out at `rate` in the format its extension names: the file that
    `write_wav(path, whole_wave, rate)` writes, with only a block of samples in memory at a time.

    `write` blocks, then `finish()` places the file (atomically; without `overwrite` never over one that exists)
    or `close()` drops everything. Any failure is one OutputError naming `path`; nothing is left behind.
    """

    def __init__(self, path: Path, rate: int = SAMPLE_RATE, overwrite: bool = False,
                 on_limit: Callable[[float], None] | None = None) -> None:
        self.path, self.rate, self.overwrite, self.on_limit = path, rate, overwrite, on_limit
        self.kind, self.subtype = output_format(path)
        check_rate(path, rate)
        check_writable(path, overwrite)
        self.scratch: IO[bytes] = self._scratch()
        self.reset()

    def _scratch(self) -> IO[bytes]:
        try:
            return tempfile.TemporaryFile(dir=self.path.parent)
        except OSError as err:
            raise OutputError(f"{self.path}: cannot write ({reason(err)})") from None

    def reset(self) -> None:
        """Forget what was written (a conversion that starts again, e.g. with smaller chunks)."""
        self.scratch.seek(0)
        self.scratch.truncate()
        self.resampler = None if self.rate == SAMPLE_RATE else soxr.ResampleStream(
            SAMPLE_RATE, self.rate, 1, dtype="float32", quality="HQ")
        self.received = self.nonfinite = self.samples = 0  # samples in at SAMPLE_RATE, of them not finite; out
        self.peak = 0.0

    def write(self, block: np.ndarray) -> None:
        """Append `(n,)` samples at SAMPLE_RATE."""
        block = np.asarray(block, dtype=np.float32)
        self.received += block.size
        self.nonfinite += int(block.size - np.count_nonzero(np.isfinite(block)))
        self._keep(block if self.resampler is None else self.resampler.resample_chunk(block, last=False))

    def _keep(self, out: np.ndarray) -> None:
        clean = np.nan_to_num(np.asarray(out, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
        if clean.size:
            self.peak = max(self.peak, float(np.max(np.abs(clean))))
        try:
            self.scratch.write(clean.tobytes())
        except OSError as err:
            raise OutputError(f"{self.path}: cannot write ({reason(err)})") from None
        self.samples += clean.size

    def finish(self) -> Path:
        """Scale under LIMIT if the peak is above it (telling `on_limit`), encode, and place the file."""
        if self.resampler is not None:
            self._keep(self.resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            self.resampler = None
        scale = None
        if self.peak > LIMIT:
            if self.on_limit is not None:
                self.on_limit(self.peak)
            scale = np.float32(LIMIT / self.peak)
        kept = None
        try:
            with atomic_output(self.path, self.overwrite) as tmp, open(tmp, "wb") as handle:
                kept = KeptErrors(handle)
                self._encode(kept, scale)
                handle.flush()
                os.fsync(handle.fileno())
        except (OSError, sf.LibsndfileError, AssertionError) as err:  # soundfile asserts a short write away
            raise OutputError(f"{self.path}: cannot write ({reason(kept.error if kept and kept.error else err)})"
                              ) from None
        finally:
            self.close()
        return self.path

    def _encode(self, handle: KeptErrors, scale: np.float32 | None) -> None:
        self.scratch.seek(0)
        with sf.SoundFile(handle, "w", samplerate=self.rate, channels=1, format=self.kind,
                          subtype=self.subtype) as out:
            while True:
                data = self.scratch.read(READ_BLOCK * SAMPLE_BYTES)
                if not data:
                    break
                block = np.frombuffer(data, dtype=np.float32)
                out.write(block * scale if scale is not None else block)

    def close(self) -> None:
        self.scratch.close()

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
