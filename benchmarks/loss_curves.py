"""Plot a run's losses: `python -m benchmarks.loss_curves RUN_DIR OUT.png`.

One panel per stage found in RUN_DIR (stage1, stage2, recognizer): every logged training loss (thin)
and validation loss (dots) against the step.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

STAGES = ("stage1", "stage2", "recognizer")


def read(file: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[tuple[int, float]]]]:
    """Training and validation series by name: (step, value) pairs."""
    train: dict[str, list[tuple[int, float]]] = {}
    val: dict[str, list[tuple[int, float]]] = {}
    with open(file, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if key in ("step", "seconds", "ranks", "total", "val_total", "val_acc") or not value:
                    continue
                target = val if key.startswith("val_") else train
                target.setdefault(key.removeprefix("val_"), []).append((int(row["step"]), float(value)))
    return train, val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (their stage folders are plotted in order)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logs = [(f"{run.name}/{s}", run / s / "log.csv") for run in args.runs for s in STAGES
            if (run / s / "log.csv").is_file()]
    fig, axes = plt.subplots(1, len(logs), figsize=(5 * len(logs), 3.6), squeeze=False)
    for ax, (title, file) in zip(axes[0], logs):
        train, val = read(file)
        for k, (name, points) in enumerate(sorted(train.items())):
            color = f"C{k}"
            ax.plot(*zip(*points), lw=0.8, color=color, label=name)
            if name in val:
                ax.plot(*zip(*val[name]), "o", ms=3, color=color)
        ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.legend(fontsize=7, ncol=2)
    axes[0][0].set_ylabel("loss (lines: training, dots: validation)")
    fig.tight_layout()
    fig.savefig(args.out, dpi=80)


if __name__ == "__main__":
    main()
