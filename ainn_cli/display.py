"""Terminal and figure rendering of readings and reports (rich; matplotlib optional)."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ainn_cli.audio import FRAME_RATE
from ainn_cli.errors import UsageError

if TYPE_CHECKING:
    from ainn_cli.batch import BatchReport, Job
    from ainn_cli.pipeline import ConversionResult, StrengthReading
    from ainn_cli.stream_convert import StreamedConversion

BLOCKS = "▁▂▃▄▅▆▇█"
FAILURES_SHOWN = 100  # rows of the failure table
PLOT_POINTS = 2200  # cue values a plot draws at most (two per pixel of its 1100-pixel width)
MATPLOTLIB_HINT = "pip install matplotlib (or, in the ainn checkout, pip install -e '.[plot]')"  # ainn is not on PyPI


def sparkline(values: tuple[float, ...] | np.ndarray, width: int = 60) -> str:
    """Values in [0, 1] resampled to `width` columns of block characters (the mean within each column)."""
    data = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if data.size == 0:
        return ""
    edges = np.linspace(0, data.size, min(width, data.size) + 1).astype(int)
    columns = [data[a:max(b, a + 1)].mean() for a, b in zip(edges[:-1], edges[1:])]
    return "".join(BLOCKS[min(int(v * len(BLOCKS)), len(BLOCKS) - 1)] for v in columns)


def bar(value: float, width: int = 20) -> str:
    filled = int(round(np.clip(value, 0.0, 1.0) * width))
    return "█" * filled + "·" * (width - filled)


def show_reading(console: Console, name: str, reading: StrengthReading) -> None:
    """Category with probabilities, strength, and the cue M over time as a sparkline."""
    console.print(f"[bold]{escape(name)}[/]  {reading.seconds:.2f} s")
    strength = f"[bold]{reading.strength:.2f}[/] {bar(reading.strength)}"
    console.print(f"  emotion  [bold]{reading.label}[/]   strength {strength}")
    for label, p in sorted(reading.probabilities.items(), key=lambda kv: -kv[1]):
        console.print(f"    {label:<9}{p:6.1%} {bar(p)}")
    console.print(f"  cue M    {sparkline(reading.cue)}")
    console.print(f"           0 s{' ' * 52}{reading.seconds:.1f} s")


def report_table(report: BatchReport[Converted]) -> Table:
    table = Table(title="ainn convert")
    table.add_column("result")
    table.add_column("count", justify="right")
    table.add_row("converted", str(len(report.converted)))
    table.add_row("skipped (exists)", str(len(report.skipped)))
    table.add_row("failed", str(len(report.failed)), style="red" if report.failed else None)
    return table


@dataclass(frozen=True)
class Converted:
    """What one conversion did, as printed and as JSON (rounded as printed)."""

    source: str
    reference: str | None
    output: str
    emotion: str
    strength: float
    reference_label: str | None
    reference_strength: float | None
    seconds: float
    rtf: float
    prosody: dict[str, float] | None
    measured: dict[str, float | None] | None = None  # the output against the source, measured (measure.py)
    heard_label: str | None = None  # the reference as the reader (`ainn strength`) hears it, where the model has one
    heard_strength: float | None = None

    @classmethod
    def of(cls, job: Job, result: ConversionResult | StreamedConversion) -> Converted:
        ref, prosody = result.reference, result.prosody
        return cls(
            source=str(job.source), reference=str(job.reference) if job.reference else None, output=str(job.output),
            emotion=result.emotion, strength=round(result.strength, 3), reference_label=ref.label if ref else None,
            reference_strength=round(ref.strength, 3) if ref else None, seconds=round(result.seconds, 3),
            rtf=round(result.rtf, 3),
            prosody=None if prosody is None else {k: round(v, 2) for k, v in vars(prosody).items()},
            measured=None if result.measured is None else {k: _rounded(v) for k, v in vars(result.measured).items()},
            heard_label=result.heard.label if result.heard else None,
            heard_strength=round(result.heard.strength, 3) if result.heard else None,
        )

    def as_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    def sentence(self) -> str:
        """`out.wav: angry at strength 0.8 (reference strength 0.8), 2.1 s, real-time factor 0.05`."""
        ref = f" (reference strength {self.reference_strength})" if self.reference else ""
        asked = _prosody_text(self.prosody)
        return (f"{self.output}: {self.emotion} at strength {self.strength}{ref}"
                f"{', asked' + asked[1:] if asked else ''}{_measured_text(self.measured)}, "
                f"{self.seconds} s, real-time factor {self.rtf}{self._disagreement()}")

    def _disagreement(self) -> str:
        """A note where `ainn strength` hears the reference as another emotion than the conversion followed."""
        if self.heard_label is None or self.reference_label is None or self.heard_label == self.reference_label:
            return ""
        return (f" (`ainn strength` hears the reference as {self.heard_label} at {self.heard_strength}; the "
                f"conversion follows the model's recognizer, which hears {self.reference_label})")


def _rounded(value: float) -> float | None:
    """Two decimals; None for NaN (JSON has no NaN)."""
    return None if value != value else round(value, 2)


def _measured_text(measured: dict[str, float | None] | None) -> str:
    """`; measured pitch +2.0 st, +2.6 dB, duration x1.10` ('' when not measured; '?' where a side is unvoiced)."""
    if not measured:
        return ""
    pitch, level = measured["pitch_semitones"], measured["level_db"]
    return (f"; measured pitch {'?' if pitch is None else f'{pitch:+.1f}'} st, "
            f"{'?' if level is None else f'{level:+.1f}'} dB, duration x{measured['duration']:.2f}")


def _prosody_text(change: dict[str, float] | None) -> str:
    """`, pitch +3.1 st x1.25 range, ending +4.6 st, +6.0 dB, duration x1.10` from a prosody change ('' if
    none; the ending only where a contour moves it)."""
    if not change:
        return ""
    end = change.get("pitch_end_semitones", 0.0)
    ending = f", ending {end:+.1f} st" if abs(end) >= 0.05 else ""
    return (f", pitch {change['pitch_semitones']:+.1f} st x{change['pitch_range']:.2f} range{ending}, "
            f"{change['energy_db']:+.1f} dB, duration x{change['duration']:.2f}")


def reading_lines(converted: list[Converted], most: int = 3) -> list[str]:
    """How a folder run read its references (emotion, strength), from the converted files' summaries.

    Up to `most` references get a line each, more are counted per emotion with their strength range;
    a run without a reference names the model's prototype emotion it used.
    """
    readings: dict[str, tuple[str, float, float]] = {}  # reference -> (label, its strength, output strength)
    prototypes: set[tuple[str, float]] = set()
    for item in converted:
        if item.reference is None or item.reference_label is None or item.reference_strength is None:
            prototypes.add((item.emotion, item.strength))
        else:
            readings.setdefault(item.reference, (item.reference_label, item.reference_strength, item.strength))
    lines = [f"no reference: the model's {label} prototype, at strength {level}" for label, level in sorted(prototypes)]
    if len(readings) > most:
        counts = Counter(label for label, _, _ in readings.values()).most_common()
        levels = [level for _, level, _ in readings.values()]
        return [*lines, f"{len(readings)} references read: {', '.join(f'{label} {n}' for label, n in counts)}; "
                        f"strength {min(levels):.2f} to {max(levels):.2f}"]
    for ref, (label, level, out) in readings.items():
        lines.append(f"reference {ref}: read as {label} at strength {level}"
                     + (f", converted at strength {out}" if out != level else ""))
    return lines


def failure_table(report: BatchReport[Converted], most: int = FAILURES_SHOWN) -> Table:
    """The failures, the first `most` of them (a folder of 10,000 broken files is not a table to read: the count
    says how many more, `--json` lists them all)."""
    table = Table(title="failures")
    table.add_column("file")
    table.add_column("reason")
    for failure in report.failed[:most]:
        table.add_row(failure["source"], failure["reason"])
    if len(report.failed) > most:
        table.add_row(f"... {len(report.failed) - most} more", "--json lists every failure")
    return table


def pyplot(option: str) -> Any:
    """matplotlib.pyplot on the Agg backend, imported only when a plot is asked for; a UsageError naming
    `option` and the extra to install when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError(f"{option} needs matplotlib: {MATPLOTLIB_HINT}") from None
    return plt


def plot_reading(out: Path, mel: np.ndarray, reading: StrengthReading, name: str = "", step: int = 1) -> Path:
    """A figure of one reading (format from `out`'s extension, 1100 x 450 px as PNG):

        name: label, strength                           (title)
        [ log-mel (80, T), time x mel bin ][colour bar]  [ probability per class ]
        [ cue M, 0..1 on its own axis     ]
    Mel pixel j spans frame j's hop, so the cue's value j is drawn at the pixel's centre, (j + 0.5) / frame rate.
    A long recording's mel comes averaged over `step` frames per column, and its cue is shown as the mean of
    every `cue_step` values (at most PLOT_POINTS points): the figure costs the same for a minute or for hours.
    """
    plt = pyplot("--plot")
    fig, axes = plt.subplot_mosaic([["mel", "prob"], ["cue", "prob"]], figsize=(11, 4.5), layout="constrained",
                                   width_ratios=[4, 1], height_ratios=[3, 1.4])
    seconds = mel.shape[1] * step / FRAME_RATE
    image = axes["mel"].imshow(mel, origin="lower", aspect="auto", cmap="magma",
                               extent=(0, seconds, 0, mel.shape[0]))
    fig.colorbar(image, ax=axes["mel"], label="log-mel (ln)", pad=0.01)
    axes["mel"].set(ylabel="mel bin", xlim=(0, seconds))
    axes["mel"].tick_params(labelbottom=False)
    times, cue = cue_points(reading.cue, reading.frame_rate)
    axes["cue"].plot(times, cue, color="tab:cyan", lw=1.5)
    axes["cue"].fill_between(times, cue, color="tab:cyan", alpha=0.25)
    axes["cue"].set(xlabel="time (s)", ylabel="cue M", xlim=(0, seconds), ylim=(0, 1.05), yticks=[0, 0.5, 1])
    labels = list(reading.probabilities)
    colours = ["tab:orange" if label == reading.label else "tab:blue" for label in labels]
    axes["prob"].barh(labels, list(reading.probabilities.values()), color=colours)
    axes["prob"].set(xlim=(0, 1), title="probability")
    fig.suptitle(f"{Path(name).name or 'recording'}: {reading.label}, strength {reading.strength:.2f}")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def cue_points(cue: tuple[float, ...], frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """The cue's points to draw: every value, or for more than PLOT_POINTS the mean of each group of `cue_step`,
    at the group's centre (seconds)."""
    values = np.asarray(cue, dtype=np.float32)
    cue_step = max(1, -(-values.size // PLOT_POINTS))
    groups = -(-values.size // cue_step)
    starts = np.arange(groups) * cue_step
    stops = np.minimum(starts + cue_step, values.size)
    means = np.add.reduceat(values, starts) / (stops - starts) if values.size else values
    return (starts + stops) / 2 / frame_rate, means
