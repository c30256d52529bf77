"""`ainn strength`: read emotion, strength and cue of files and folders, each shown (and plotted) as it is made."""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ainn_cli.audio import Audio, probe, read_audio
from ainn_cli.audio_stream import AudioReader, is_long
from ainn_cli.batch import Walk, walk_audio
from ainn_cli.commands.common import console, load_model
from ainn_cli.commands.long import read_long
from ainn_cli.console import say
from ainn_cli.display import plot_reading, show_reading
from ainn_cli.errors import AudioError, OutputError, OutputExists, UsageError
from ainn_cli.files import atomic_output, check_name, check_writable
from ainn_cli.memory import STREAM_KERNELS, bound_native_caches

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline, StrengthReading

PLOT_SUFFIXES = (".png", ".pdf", ".svg")


@dataclass(frozen=True)
class StrengthOptions:
    """`ainn strength`: read emotion, strength and cue of files and folders, optionally plotted."""

    files: tuple[Path, ...]
    model: str | None = None
    device: str = "auto"
    plot: Path | None = None
    overwrite: bool = False
    as_json: bool = False


@dataclass(frozen=True)
class Reading:
    """One file's reading, as JSON (rounded)."""

    file: str
    label: str
    strength: float
    probabilities: dict[str, float]
    seconds: float
    frame_rate: float
    cue: tuple[float, ...]

    @classmethod
    def of(cls, path: Path, reading: StrengthReading) -> Reading:
        return cls(file=str(path), label=reading.label, strength=round(reading.strength, 4),
                   probabilities={k: round(v, 4) for k, v in reading.probabilities.items()},
                   seconds=round(reading.seconds, 3), frame_rate=reading.frame_rate,
                   cue=tuple(round(v, 3) for v in reading.cue))

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)



def run_strength(options: StrengthOptions) -> bool:
    """Read every file; unreadable ones are reported and the rest go on. False when any failed.

    Plot names are checked before the model loads; each reading is shown (and plotted) as it is made.
    """
    paths, unreadable = _expand(options.files)
    for folder in unreadable:
        say(folder["reason"])
    if not paths and not unreadable:
        raise UsageError("no audio files given")
    if not paths:
        return False
    targets = plot_targets(paths, options.plot, options.overwrite) if options.plot is not None else {}
    readable = _readable(paths)
    if len(paths) == 1 and not readable:
        probe(paths[0])  # one file that cannot be read: its one-line error, and no model loaded for it
    ok = len(readable) == len(paths) and not unreadable
    if not readable:
        return ok
    if any(is_long(path) for path in readable):
        bound_native_caches(STREAM_KERNELS)  # a stream's spans of many lengths must not grow the process
    pipe = load_model(options.model, options.device)
    readings: list[Reading] = []
    for path in readable:
        reading, fine = _read_one(pipe, path, targets.get(path), options)
        readings += [reading] if reading is not None else []
        ok = fine and ok
    if options.as_json:
        print(json.dumps([r.as_dict() for r in readings] if len(paths) > 1 else
                         (readings[0].as_dict() if readings else [])))
    return ok


def _readable(paths: list[Path]) -> list[Path]:
    """The paths whose header can be read; each other one is reported now, before any model loads."""
    readable = []
    for path in paths:
        try:
            probe(path)
        except AudioError as err:
            if len(paths) > 1:
                say(str(err))
            continue
        readable.append(path)
    return readable


def _read_one(pipe: Pipeline, path: Path, target: Path | None, options: StrengthOptions) -> tuple[Reading | None, bool]:
    """One file's reading, plotted to `target` and shown (unless JSON), and whether all of that went well."""
    try:
        reading, plotted = _read_and_plot(pipe, path, target, options)
    except AudioError as err:
        say(str(err))
        return None, False
    if not options.as_json:
        show_reading(console, str(path), reading)
    return Reading.of(path, reading), plotted


def _read_and_plot(pipe: Pipeline, path: Path, target: Path | None, options: StrengthOptions
                   ) -> tuple[StrengthReading, bool]:
    """The reading (a recording of hours as a stream, `commands.long`) and whether its plot, if any, was written."""
    if is_long(path):
        streamed = read_long(pipe, AudioReader(path), plot=target is not None, quiet=options.as_json)
        mel, step, reading = streamed.mel, streamed.step, streamed.reading
    else:
        audio = read_audio(path)
        reading = pipe.strength(audio)
        mel, step = _shown_mel(audio) if target is not None else (None, 1)
    if target is None or mel is None:
        return reading, True
    return reading, _plot(target, mel, step, reading, str(path), options.overwrite)


def _shown_mel(audio: Audio) -> tuple[np.ndarray, int]:
    """The mel a plot shows `(80, columns)` and the frames per column (`stream_strength.PLOT_COLUMNS` at most)."""
    import torch

    from ainn_cli.mel import log_mel_in_chunks
    from ainn_cli.pipeline import READ_CHUNK_FRAMES
    from ainn_cli.stream_strength import Decimated, plot_step

    mel = log_mel_in_chunks(torch.from_numpy(audio.samples), READ_CHUNK_FRAMES)[0].numpy()
    step = plot_step(mel.shape[1])
    if step == 1:
        return mel, 1
    shown = Decimated(step)
    shown.add(mel)
    return shown.result(), step


def _expand(files: Iterable[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Files, and the audio files under folders, each once; and the folders that could not be listed."""
    out: dict[str, Path] = {}
    unreadable: list[dict[str, str]] = []
    for item in files:
        walk = walk_audio(item) if os.path.isdir(item) else Walk([item], [])
        unreadable += walk.unreadable
        for path in walk.files:
            out.setdefault(os.path.realpath(path), path)
    return list(out.values()), unreadable


def plot_targets(paths: list[Path], plot: Path, overwrite: bool) -> dict[Path, Path]:
    """Where each input's plot goes, checked before anything is read: names, formats, no file replaced.

    One input: `plot` itself, unless it is a folder or has no extension. Several: under the folder `plot`,
    each at its path relative to the inputs' common folder, as `stem.png` (`name.png` where stems meet).
    """
    if len(paths) == 1 and plot.suffix and not plot.is_dir():
        targets = {paths[0]: plot}
    else:
        targets = _plots_in_folder(paths, plot)
    for target in targets.values():
        _check_plot_target(target, overwrite)
    return targets


def _plots_in_folder(paths: list[Path], plot: Path) -> dict[Path, Path]:
    """Each input's figure under the folder `plot`, the inputs' tree mirrored from their common folder."""
    if plot.exists() and not plot.is_dir():
        raise UsageError(f"--plot {plot}: is a file; for several inputs or a folder give a folder")
    base = os.path.commonpath([os.path.abspath(p.parent) for p in paths])
    rel = {p: Path(os.path.relpath(os.path.abspath(p), base)) for p in paths}
    stems = Counter(r.with_suffix("") for r in rel.values())
    return {p: plot / (r.with_suffix(".png") if stems[r.with_suffix("")] == 1 else r.with_name(f"{r.name}.png"))
            for p, r in rel.items()}


def _check_plot_target(target: Path, overwrite: bool) -> None:
    check_name(target)
    if target.suffix.lower() not in PLOT_SUFFIXES:
        raise UsageError(f"--plot {target}: use a {', '.join(PLOT_SUFFIXES[:-1])} or {PLOT_SUFFIXES[-1]} name")
    if not overwrite and (target.exists() or target.is_symlink()):
        raise OutputExists(f"{target}: exists already (use --overwrite to replace it)")


def _plot(target: Path, mel: np.ndarray, step: int, reading: StrengthReading, name: str, overwrite: bool) -> bool:
    """Write one figure through a hidden temp file; a file that appeared meanwhile is reported, not replaced."""
    try:
        check_writable(target, overwrite)
        with atomic_output(target, overwrite, suffix=f".part{target.suffix}") as tmp:
            plot_reading(Path(tmp), mel, reading, name=name, step=step)
    except OutputError as err:
        say(str(err))
        return False
    except OSError as err:
        say(f"{target}: cannot write ({err.strerror or err})")
        return False
    return True
