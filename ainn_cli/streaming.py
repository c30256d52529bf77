"""A recording of hours as a stream: its log-mel (and YIN's per-frame measures) chunk by chunk, exactly the frames
`Pipeline._mel` and `pitch.yin` compute from the whole wave, with only a chunk of samples in memory.

    AudioReader blocks --SampleWindow (a chunk of samples plus context)--> mel frames [start, stop)
        log-mel: samples [256 (start - 2), 256 stop + 384)   (`mel.log_mel_in_chunks`' spans)
        YIN:     samples [256 start - 384, 256 stop + 384)   (`pitch.frames_of`, reflected at the wave's ends)

`stream_convert` and `stream_strength` run on these chunks. A recording longer than
`audio_stream.STREAM_SECONDS` (by its header) is converted and read this way; a shorter one as one array.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.audio import HOP_LENGTH, N_FFT, PAD, SAMPLE_RATE
from ainn_cli.audio_stream import AudioReader
from ainn_cli.mel import log_mel
from ainn_cli.pitch import yin_frames

MEL_CONTEXT = 2  # frames of samples before a chunk that its first frame's window reaches (log_mel_in_chunks)

Progress = Callable[[float], None]  # told the fraction of the work done, 0..1


class SampleWindow:
    """The samples of a stream of blocks from `start` on, filled as far as asked and dropped once used."""

    def __init__(self, blocks: Iterator[np.ndarray]) -> None:
        self.blocks, self.pieces, self.start, self.ended = blocks, [np.zeros(0, np.float32)], 0, False

    @property
    def end(self) -> int:
        return self.start + sum(len(p) for p in self.pieces)

    def fill(self, upto: int) -> None:
        """Read blocks until the window reaches sample `upto` or the stream ends."""
        end = self.end
        while not self.ended and end < upto:
            block = next(self.blocks, None)
            if block is None:
                self.ended = True
            else:
                self.pieces.append(block)
                end += len(block)

    def take(self, lo: int, hi: int) -> np.ndarray:
        """Samples `[lo, hi)` (`lo` not dropped yet)."""
        if len(self.pieces) > 1:
            self.pieces = [np.concatenate(self.pieces)]
        return self.pieces[0][lo - self.start : hi - self.start]

    def drop(self, before: int) -> None:
        """Forget the samples before `before`."""
        whole = self.take(self.start, self.end)
        cut = min(max(0, before - self.start), len(whole))
        self.pieces, self.start = [whole[cut:].copy()], self.start + cut


@dataclass(frozen=True)
class MelChunk:
    """Mel frames `[start, stop)` of a stream, `(1, 80, stop - start)`, and YIN's measures of them."""

    start: int
    stop: int
    mel: torch.Tensor
    yin: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # lag, d', power (pitch.yin_frames), each (n,)


class MelStream:
    """The chunks of a recording's log-mel, in order: `chunks()`; then `samples` and `frames` are its length."""

    def __init__(self, reader: AudioReader, chunk: int, with_yin: bool = False, keep_head: int = 0) -> None:
        self.reader, self.chunk, self.with_yin, self.keep_head = reader, chunk, with_yin, keep_head
        self.window = SampleWindow(reader.blocks())
        self.head = np.zeros(0, np.float32)  # the first `keep_head` samples (a speaking rate reads them)
        self.samples = 0

    @property
    def frames(self) -> int:
        return self.samples // HOP_LENGTH

    @property
    def expected_frames(self) -> int:
        """Frames the header promises (the stream may end sooner or later)."""
        return self.reader.levels.samples // HOP_LENGTH

    def chunks(self) -> Iterator[MelChunk]:
        start, window = 0, self.window
        window.fill(self.keep_head)
        self.head = window.take(0, min(self.keep_head, window.end)).copy()
        while True:
            window.fill((start + self.chunk) * HOP_LENGTH + PAD)
            total = window.end if window.ended else None
            stop = start + self.chunk if total is None else min(total // HOP_LENGTH, start + self.chunk)
            if total is not None:
                self.samples = total
            if stop <= start:
                return
            yield self._chunk(start, stop, total)
            window.drop((stop - MEL_CONTEXT) * HOP_LENGTH)
            start = stop

    def _chunk(self, start: int, stop: int, total: int | None) -> MelChunk:
        """`log_mel_in_chunks`' span [start, stop): samples [256 lo, min(N, 256 stop + 384)), frames cropped."""
        lo = max(0, start - MEL_CONTEXT)
        hi = stop * HOP_LENGTH + PAD if total is None else min(total, stop * HOP_LENGTH + PAD)
        piece = torch.from_numpy(np.ascontiguousarray(self.window.take(lo * HOP_LENGTH, hi)))
        mel = log_mel(piece)[..., start - lo : stop - lo]
        return MelChunk(start, stop, mel, self._yin(start, stop, total) if self.with_yin else None)

    def _yin(self, start: int, stop: int, total: int | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`yin_frames` of frames [start, stop): `pitch.frames_of`'s windows, the wave reflected at its two ends."""
        lo, hi = start * HOP_LENGTH - PAD, stop * HOP_LENGTH + PAD
        end = hi if total is None else min(total, hi)
        wave = torch.from_numpy(np.ascontiguousarray(self.window.take(max(0, lo), end)))
        pads = (max(0, -lo), hi - end)
        if any(pads):
            wave = F.pad(wave.view(1, 1, -1), pads, mode="reflect").view(-1)
        frames = wave.unfold(0, N_FFT, HOP_LENGTH)[: stop - start]
        return yin_frames(frames, SAMPLE_RATE)
