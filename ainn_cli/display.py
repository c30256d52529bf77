"""Terminal and figure rendering of readings and reports (rich; matplotlib optional)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table

from ainn_cli.errors import UsageError

if TYPE_CHECKING:
    from ainn_cli.batch import BatchReport
    from ainn_cli.pipeline import StrengthReading

BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: tuple[float, ...] | np.ndarray, width: int = 60) -> str:
    """Values in [0, 1] resampled to `width` columns of block characters (max within each column)."""
    data = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    if data.size == 0:
        return ""
    edges = np.linspace(0, data.size, min(width, data.size) + 1).astype(int)
    columns = [data[a:max(b, a + 1)].max() for a, b in zip(edges[:-1], edges[1:])]
    return "".join(BLOCKS[min(int(v * len(BLOCKS)), len(BLOCKS) - 1)] for v in columns)


def bar(value: float, width: int = 20) -> str:
    filled = int(round(np.clip(value, 0.0, 1.0) * width))
    return "█" * filled + "·" * (width - filled)


def show_reading(console: Console, name: str, reading: StrengthReading) -> None:
    """Category with probabilities, strength, and the cue M over time as a sparkline."""
    console.print(f"[bold]{name}[/]  {reading.seconds:.2f} s")
    strength = f"[bold]{reading.strength:.2f}[/] {bar(reading.strength)}"
    console.print(f"  emotion  [bold]{reading.label}[/]   strength {strength}")
    for label, p in sorted(reading.probabilities.items(), key=lambda kv: -kv[1]):
        console.print(f"    {label:<9}{p:6.1%} {bar(p)}")
    console.print(f"  cue M    {sparkline(reading.cue)}")
    console.print(f"           0 s{' ' * 52}{reading.seconds:.1f} s")


def report_table(report: BatchReport) -> Table:
    table = Table(title="ainn convert")
    table.add_column("result")
    table.add_column("count", justify="right")
    table.add_row("converted", str(len(report.converted)))
    table.add_row("skipped (exists)", str(len(report.skipped)))
    table.add_row("failed", str(len(report.failed)), style="red" if report.failed else None)
    return table


def failure_table(report: BatchReport) -> Table:
    table = Table(title="failures")
    table.add_column("file")
    table.add_column("reason")
    for failure in report.failed:
        table.add_row(failure["source"], failure["reason"])
    return table


def plot_reading(out: Path, mel: np.ndarray, reading: StrengthReading) -> Path:
    """PNG: log-mel `(80, T)` with the cue M over it and the class probabilities beside."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'ainn[plot]'") from None
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 3.5), gridspec_kw={"width_ratios": [4, 1]})
    seconds = mel.shape[1] / reading.frame_rate
    ax.imshow(mel, origin="lower", aspect="auto", extent=(0, seconds, 0, mel.shape[0]), cmap="magma")
    times = np.arange(len(reading.cue)) / reading.frame_rate
    ax.plot(times, np.asarray(reading.cue) * mel.shape[0] * 0.95, color="cyan", lw=1.5, label="cue M")
    ax.set(xlabel="time (s)", ylabel="mel bin", title=f"{reading.label}, strength {reading.strength:.2f}")
    ax.legend(loc="upper right")
    bx.barh(list(reading.probabilities), list(reading.probabilities.values()), color="tab:blue")
    bx.set(xlim=(0, 1), title="probability")
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
