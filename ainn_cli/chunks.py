"""Long inputs in bounded memory: the one place that cuts a time axis into chunks with context.

    |<- context ->|<------ chunk ------>|<- context ->|   computed
                  |<------ chunk ------>|                kept

`map_chunks` runs a function on each widened span and keeps each chunk's centre. The log-mel, R,
Ec, G and the vocoder all go through it (the pipeline in `CHUNK_FRAMES` chunks; the CPU vocoder in
its own smaller tiles), so a long recording never needs memory in proportion to its length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
import torch.nn.functional as F


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
