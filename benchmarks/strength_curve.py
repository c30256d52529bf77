"""Strength control from an `ainn evaluate` run of sweep.csv: `python -m benchmarks.strength_curve results.csv`.

Prints the judge's mean measured strength at each requested `--strength`, whether it rises
monotonically, and the Spearman correlation between requested and measured strength (pooled over
utterances, and the mean of per-utterance correlations).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    out = np.empty(len(values))
    sorted_values = values[order]
    start = 0
    while start < len(values):
        stop = start
        while stop + 1 < len(values) and sorted_values[stop + 1] == sorted_values[start]:
            stop += 1
        out[order[start : stop + 1]] = (start + stop) / 2 + 1
        start = stop + 1
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = ranks(x), ranks(y)
    if rx.std() == 0 or ry.std() == 0:
        return float("nan")
    return float(np.corrcoef(rx, ry)[0, 1])


def curve(rows: list[dict[str, str]]) -> dict[str, object]:
    scored = [r for r in rows if r.get("requested_strength") and r.get("measured_strength")]
    pairs = [(float(r["requested_strength"]), float(r["measured_strength"])) for r in scored]
    requested, measured = (np.array(v) for v in zip(*pairs))
    levels = sorted(set(requested.tolist()))
    means = [float(measured[requested == level].mean()) for level in levels]
    by_utterance: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r, pair in zip(scored, pairs):
        by_utterance[r["id"].rsplit("_at", 1)[0]].append(pair)
    per = [spearman(*(np.array(v) for v in zip(*pts))) for pts in by_utterance.values() if len(pts) > 2]
    return {"levels": levels, "mean_measured": [round(m, 3) for m in means],
            "monotonic": bool(all(b >= a for a, b in zip(means, means[1:]))),
            "spearman_pooled": round(spearman(requested, measured), 3),
            "spearman_per_utterance_mean": round(float(np.nanmean(per)), 3) if per else None, "n": len(pairs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    args = parser.parse_args()
    with open(args.results, newline="") as handle:
        print(json.dumps(curve(list(csv.DictReader(handle))), indent=2))


if __name__ == "__main__":
    main()
