"""Long inputs in bounded memory: the one place that cuts a time axis into chunks with context.

    |<- context ->|<------ chunk ------>|<- context ->|   computed
                  |<------ chunk ------>|                kept

`map_chunks` runs a function on each widened span and keeps each chunk's centre. The log-mel, R,
Ec, G and the vocoder all go through it (the pipeline in `CHUNK_FRAMES` chunks; the CPU vocoder in
its own smaller tiles), so a long recording never needs memory in proportion to its length.
A stream of hours (`stream_convert`) keeps each stage's frames on disk (`FrameStore`) and reads back the
windows the next stage's spans need; `retime_window` is `prosody.retime` on such a window.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

FLOAT_BYTES = 4


class Span(NamedTuple):
    start: int  # first frame of the chunk
    stop: int  # one past its last frame
    lo: int  # first frame computed (start - context, clipped)
    hi: int  # one past the last frame computed (stop + context, clipped)


def spans(frames: int, chunk: int, context: int) -> Iterator[Span]:
    """The chunks of `frames` frames, `chunk` at a time, each widened by `context` frames per side."""
    for start in range(0, frames, chunk):
        stop = min(frames, start + chunk)
        yield Span(start, stop, max(0, start - context), min(frames, stop + context))


def map_chunks(frames: int, run: Callable[[Span], torch.Tensor], chunk: int, context: int,
               scale: int = 1) -> torch.Tensor:
    """`run(span)` on every span; its output's last axis (`scale` values per frame, from `span.lo`) is cropped
    to the chunk's own frames, and the pieces are joined along that axis."""
    pieces = []
    for span in spans(frames, chunk, context):
        out = run(span)
        pieces.append(out[..., (span.start - span.lo) * scale : (span.stop - span.lo) * scale])
    return torch.cat(pieces, dim=-1)


def sounding_spans(frame_energy: torch.Tensor, floor: float, margin: int) -> list[tuple[int, int]]:
    """[start, stop) runs of frames within `floor` of the loudest frame, each widened by `margin` frames per
    side; runs that overlap or are less than `margin` apart are merged. `frame_energy (T,)` and `floor` are
    natural-log energies (pitch.energy; dB / prosody.NEPER_TO_DB); a NaN anywhere keeps every frame, so
    that a broken model's output is not hidden as silence."""
    if frame_energy.numel() == 0:
        return []
    loud = ~(frame_energy < frame_energy.max() - floor)  # NaN counts as loud: it shows
    kernel = torch.ones(1, 1, 2 * margin + 1)
    near = F.conv1d(loud.float()[None, None], kernel, padding=margin)[0, 0] > 0
    edges = torch.diff(F.pad(near.int(), (1, 1))).nonzero()[:, 0].tolist()
    spans: list[tuple[int, int]] = []
    for start, stop in zip(edges[::2], edges[1::2]):
        if spans and start - spans[-1][1] < margin:  # a gap too short to be worth a cut
            start = spans.pop()[0]
        spans.append((start, stop))
    return spans


class FrameStore:
    """A `(1, C, T)` float32 series kept on disk as its frames are made, read back in windows: hours of frames in
    bounded memory. The file has no name (`tempfile.TemporaryFile`), so nothing is left behind by any exit."""

    def __init__(self, channels: int, folder: Path | None = None) -> None:
        self.channels, self.frames = channels, 0
        self.file: IO[bytes] = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (closed by close())

    def append(self, frames: torch.Tensor) -> None:
        """Add `(1, C, n)` frames at the end."""
        rows = frames[0].detach().float().cpu().T.contiguous().numpy()
        self.file.seek(self.frames * self.channels * FLOAT_BYTES)
        self.file.write(rows.tobytes())
        self.frames += rows.shape[0]

    def read(self, lo: int, hi: int) -> torch.Tensor:
        """Frames `[lo, hi)` as `(1, C, hi - lo)` float32 on the CPU."""
        lo, hi = max(0, lo), min(self.frames, hi)
        self.file.seek(lo * self.channels * FLOAT_BYTES)
        data = self.file.read(max(0, hi - lo) * self.channels * FLOAT_BYTES)
        rows = np.frombuffer(data, dtype=np.float32).reshape(-1, self.channels)
        return torch.from_numpy(rows.T.copy()).unsqueeze(0)

    def close(self) -> None:
        self.file.close()


def retime_window(read: Callable[[int, int], torch.Tensor], frames: int, length: int, lo: int, hi: int) -> torch.Tensor:
    """Frames `[lo, hi)` of `prosody.retime(x, length)` for a series `x` of `frames` frames that `read(a, b)` gives
    in pieces `(1, C, b - a)`: linear, ends aligned, with the arithmetic of `F.interpolate(align_corners=True)`."""
    if frames == length:
        return read(lo, hi)
    scale = torch.tensor(frames - 1, dtype=torch.float32) / (length - 1) if length > 1 else torch.tensor(0.0)
    position = scale * torch.arange(lo, hi, dtype=torch.float32)
    index = position.floor().long().clamp(max=frames - 1)
    weight = (position - index).clamp(0.0, 1.0)
    following = index + (index < frames - 1).long()
    first = int(index[0])
    x = read(first, int(following[-1]) + 1)
    near, far = x[..., index - first].float(), x[..., following - first].float()
    return (near * (1.0 - weight) + far * weight).to(x.dtype)
