"""Recordings of hours (longer than `audio_stream.STREAM_SECONDS` by their header): converted and read as streams
(`stream_convert`, `stream_strength`) in bounded memory, with the percentage done and the time left on stderr
(a bar on a terminal, a line every 5 % in a pipe or a log)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ainn_cli.audio import Audio
from ainn_cli.audio_stream import AudioReader
from ainn_cli.batch import Job
from ainn_cli.console import Ticker, say
from ainn_cli.controls import Controls
from ainn_cli.memory import STREAM_KERNELS, bound_native_caches

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline
    from ainn_cli.stream_convert import StreamedConversion
    from ainn_cli.stream_strength import StreamedReading

PERCENT_EVERY = 5  # a plain progress line every this many percent


def opened(path: object) -> AudioReader:
    """The source measured (its first pass) and its warnings printed, before any model is loaded; the native
    caches bounded (`memory.py`), as a stream vocodes spans of as many lengths as a folder has files."""
    bound_native_caches(STREAM_KERNELS)
    reader = AudioReader(str(path))
    for warning in reader.levels.warnings:
        say(f"{reader.path}: {warning}", "warning")
    return reader


@contextmanager
def ticking(label: str, quiet: bool, note: Callable[[str], None] | None = None) -> Iterator[Callable[[float], None]]:
    """A progress callback (fraction done) for one long file: its own Ticker, or, inside a folder's, a note."""
    if note is not None:
        yield lambda fraction: note(f"{fraction:.0%}")
        return
    shown = [-1.0]

    def update(fraction: float) -> None:
        percent = round(100 * fraction, 1)
        if percent != shown[0]:
            shown[0] = percent
            ticker.update(percent)

    with Ticker(f"{label}, % done", 100, disable=quiet, every=PERCENT_EVERY, show=lambda n: f"{n:.0f}") as ticker:
        yield update


def convert_long(pipe: Pipeline, job: Job, source: AudioReader, reference: Audio | None, *, strength: float | None,
                 emotion: str | None, tempo: bool | None, controls: Controls, rate: int, overwrite: bool,
                 quiet: bool, note: Callable[[str], None] | None = None) -> StreamedConversion:
    """Convert `job` as a stream, its progress on stderr."""
    from ainn_cli.stream_convert import convert_file

    with ticking(f"converting {job.source.name}", quiet, note) as progress:
        return convert_file(
            pipe, source, reference, job.output, strength=strength, emotion=emotion, tempo=tempo, controls=controls,
            rate=rate, overwrite=overwrite, progress=progress,
            on_limit=lambda peak: say(f"{job.output}: peak {peak:.3f} limited to full scale", "warning"))


def read_long(pipe: Pipeline, source: AudioReader, plot: bool, quiet: bool) -> StreamedReading:
    """Read a recording's emotion as a stream (and the mel its plot shows), its progress on stderr."""
    from ainn_cli.stream_strength import read_file

    with ticking(f"reading {source.path.name}", quiet) as progress:
        return read_file(pipe, source, plot=plot, progress=progress)
