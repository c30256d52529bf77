"""What `ainn evaluate` reports: per-row results, the rich summary table, results.csv, summary.json, PNG plots."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.markup import escape
from rich.table import Table

from ainn_cli.display import pyplot as display_pyplot
from ainn_cli.eval import metrics
from ainn_cli.eval.metrics import Estimate
from ainn_cli.eval.pairs import EMOTIONS
from ainn_cli.files import write_bytes

OUTPUT_FILES = ("results.csv", "summary.json")
PLOT_FILES = ("confusion.png", "strength.png", "mcd_hist.png")


@dataclass(frozen=True)
class UtteranceResult:
    """Every metric of one row; NaN (an empty CSV cell) where it could not be measured."""

    id: str
    target_emotion: str
    recognised: str = ""  # the judge's label
    correct: float = math.nan  # 1 when recognised == target_emotion, else 0
    requested_strength: float = math.nan
    measured_strength: float = math.nan  # the judge's calibrated strength
    mcd: float = math.nan  # dB
    f0_rmse: float = math.nan  # Hz
    f0_corr: float = math.nan
    f0_frames: int = 0  # aligned frames voiced in both
    wer: float = math.nan
    words: int = 0  # words in `text`, the weight of this row's WER
    transcript: str = ""
    speaker_sim: float = math.nan  # cosine of speaker embeddings, converted vs source
    error: str = ""  # why the row failed

    @property
    def strength_error(self) -> float:
        return self.measured_strength - self.requested_strength


@dataclass(frozen=True)
class Metric:
    column: str  # an UtteranceResult attribute
    header: str
    kind: str  # how utterances aggregate: mean, rmse or weighted (by words)
    fmt: str


METRICS = (
    Metric("mcd", "MCD (dB)", "mean", "{:.2f}"), Metric("f0_rmse", "F0 RMSE (Hz)", "mean", "{:.1f}"),
    Metric("f0_corr", "F0 corr", "mean", "{:.2f}"), Metric("correct", "accuracy", "mean", "{:.0%}"),
    Metric("strength_error", "strength RMSE", "rmse", "{:.2f}"), Metric("wer", "WER", "weighted", "{:.1%}"),
    Metric("speaker_sim", "speaker sim", "mean", "{:.2f}"),
)


@dataclass(frozen=True)
class Evaluation:
    results: tuple[UtteranceResult, ...]
    summary: dict[str, dict[str, Estimate]]  # group (emotion or overall) -> metric column -> estimate
    counts: dict[str, int]  # group -> utterances evaluated
    methods: dict[str, str]
    notes: tuple[str, ...]


def _cell(value: Estimate, fmt: str) -> str:
    """`value` over `[low, high]` (the CI, when there is one); empty when not measured."""
    if not value.n:
        return ""
    if not math.isfinite(value.low):
        return fmt.format(value.value)
    return fmt.format(value.value) + f"\n[dim]{escape(f'[{fmt.format(value.low)}, {fmt.format(value.high)}]')}[/]"


def summary_table(evaluation: Evaluation) -> Table:
    table = Table(title=f"ainn evaluate (mean over utterances, [{metrics.CI_LEVEL:.0%} bootstrap CI])")
    for header in ("emotion", "n", *(m.header for m in METRICS)):
        table.add_column(header, justify="left" if header == "emotion" else "right")
    for group, estimates in evaluation.summary.items():
        cells = [_cell(estimates[m.column], m.fmt) for m in METRICS]
        table.add_row(group, str(evaluation.counts[group]), *cells, style="bold" if group == "overall" else None,
                      end_section=group != "overall")
    return table


def _plain(value: Any) -> Any:
    """NaN -> None, so JSON stays standard and CSV cells stay empty."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def results_csv(results: tuple[UtteranceResult, ...]) -> str:
    names = [f.name for f in dataclasses.fields(UtteranceResult)] + ["strength_error"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({name: _plain(getattr(r, name)) for name in names})
    return out.getvalue()


def summary_json(evaluation: Evaluation) -> dict[str, Any]:
    groups = {group: {"n": evaluation.counts[group]} | {
        metric: {k: _plain(v) for k, v in dataclasses.asdict(est).items()} for metric, est in estimates.items()}
        for group, estimates in evaluation.summary.items()}
    return {
        "groups": groups, "methods": evaluation.methods, "notes": list(evaluation.notes),
        "bootstrap": {"method": "percentile", "resamples": metrics.BOOTSTRAP_RESAMPLES, "level": metrics.CI_LEVEL,
                      "seed": metrics.BOOTSTRAP_SEED},
        "failed": [{"id": r.id, "error": r.error} for r in evaluation.results if r.error],
    }


def write_plots(folder: Path, results: tuple[UtteranceResult, ...], labels: tuple[str, ...],
                overwrite: bool) -> list[str]:
    """confusion.png, strength.png and mcd_hist.png where the data exist; notes for those skipped."""
    plt, done = display_pyplot("--plots"), [r for r in results if not r.error]
    judged = [r for r in done if r.recognised]
    scattered = [r for r in judged if math.isfinite(r.strength_error)]
    measured = [r.mcd for r in done if math.isfinite(r.mcd)]
    plots: dict[str, tuple[list[Any], Callable[[Any], None]]] = {
        "confusion.png": (judged, lambda ax: _confusion(ax, judged, labels)),
        "strength.png": (scattered, lambda ax: _strength_scatter(ax, scattered)),
        "mcd_hist.png": (measured, lambda ax: _mcd_histogram(ax, measured)),
    }
    skipped = []
    for name, (data, draw) in plots.items():
        if not data:
            skipped.append(name)
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        write_bytes(folder / name, buffer.getvalue(), overwrite)
    return [f"plots: no data for {', '.join(skipped)} (needs --judge, requested strengths or targets)"] if skipped \
        else []


def _confusion(ax: Any, judged: list[UtteranceResult], labels: tuple[str, ...]) -> None:
    rows = [e for e in EMOTIONS if any(r.target_emotion == e for r in judged)]
    counts = np.zeros((len(rows), len(labels)))
    for r in judged:
        counts[rows.index(r.target_emotion), labels.index(r.recognised)] += 1
    share = counts / counts.sum(axis=1, keepdims=True)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, f"{int(n)}", ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set(xticks=range(len(labels)), xticklabels=labels, yticks=range(len(rows)), yticklabels=rows,
           xlabel="recognised by the judge", ylabel="target emotion", title="emotion confusion (counts)")


def _strength_scatter(ax: Any, rows: list[UtteranceResult]) -> None:
    for emotion in EMOTIONS:
        mine = [r for r in rows if r.target_emotion == emotion]
        if mine:
            ax.scatter([r.requested_strength for r in mine], [r.measured_strength for r in mine], label=emotion, s=18)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xlabel="requested strength", ylabel="measured strength (judge)",
           title="emotional strength")
    ax.legend(loc="upper left", fontsize=8)


def _mcd_histogram(ax: Any, values: list[float]) -> None:
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="tab:blue")
    ax.set(xlabel="MCD (dB)", ylabel="utterances", title=f"per-utterance MCD (mean {np.mean(values):.2f} dB)")
