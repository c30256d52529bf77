"""A strength judge of the Whisper judge's feature family: how strongly a recording carries a named emotion.

The CNN strength judge (`benchmarks/judges/strength`, an ainn recognizer) reads every normal and strong sad
take of RAVDESS actors 21-22 as strength 0, so it cannot measure a strength curve for sad. This judge reads
the speaker-normalised Whisper tiny.en features of `whisper_judge` (mean and standard deviation of the
encoder states, minus the mean of the same speaker's neutral recordings) and, per emotion e, maps them to
RAVDESS's intensity with a ridge regression: 0 for neutral takes, 0.5 for normal and 1 for strong takes of e.
It is fitted on actors 1-20, its ridge weight chosen per emotion on actors 21-22 (Spearman correlation of
judged and true intensity), refitted on 1-22, rescaled so that its mean output on their neutral takes is 0
and on their strong takes 1, and reported on 23-24's real recordings. It never sees
converted speech and is never used as a training loss.

    python -m benchmarks.judges.whisper_strength fit                       # seconds once whisper_judge's cache exists
    python -m benchmarks.judges.whisper_strength score SWEEP.csv --out DIR  # converts each row at its target_strength

`score` writes DIR/results.csv (requested and measured strength per conversion) and DIR/curve.json
(`benchmarks.strength_curve`: mean per level, monotonicity, Spearman pooled and per utterance). The judged
strength is the regression's output, not clipped to [0, 1], so that ranks are not tied at the ends.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.judges.whisper_judge import (
    TEST_ACTORS,
    TRAIN_ACTORS,
    VAL_ACTORS,
    Clip,
    convert_rows,
    judge_parser,
    neutral_takes,
    ravdess_clips,
    source_normalised,
    speaker_normalised,
)
from benchmarks.strength_curve import curve, spearman

EMOTIONS = ("angry", "happy", "sad", "surprise")
INTENSITY = {"normal": 0.5, "strong": 1.0}
RIDGES = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)


@dataclass(frozen=True)
class Regression:
    """Ridge regression on standardised features: intensity = ((x - mean) / scale) . weight + bias."""

    mean: np.ndarray  # (768,)
    scale: np.ndarray  # (768,)
    weight: np.ndarray  # (768,)
    bias: float

    def __call__(self, normalised: np.ndarray) -> np.ndarray:
        """`(N, 768)` -> judged intensity `(N,)`."""
        judged: np.ndarray = ((normalised - self.mean) / self.scale) @ self.weight + self.bias
        return judged


def fit_ridge(x: np.ndarray, y: np.ndarray, ridge: float) -> Regression:
    """Closed-form ridge regression of `y` `(N,)` on `x` `(N, D)` (standardised; the bias is not penalised)."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = (x - mean) / scale
    weight = np.linalg.solve(xs.T @ xs + ridge * np.eye(x.shape[1]), xs.T @ (y - y.mean()))
    return Regression(mean.astype(np.float32), scale.astype(np.float32), weight.astype(np.float32), float(y.mean()))


def calibrated(regression: Regression, x: np.ndarray, y: np.ndarray) -> Regression:
    """The same regression mapped so that its mean output on the neutral rows of `x` is 0 and on the strong
    rows 1: a strong ridge shrinks the outputs towards the mean, by an amount that differs between emotions,
    and the emotions share one scale in a pooled strength curve."""
    low, high = (float(regression(x[y == level]).mean()) for level in (0.0, 1.0))
    span = max(high - low, 1e-6)
    return Regression(regression.mean, regression.scale, (regression.weight / span).astype(np.float32),
                      (regression.bias - low) / span)


def intensity(clip: Clip) -> float:
    return 0.0 if clip.label == "neutral" else INTENSITY[clip.intensity]


def fit_emotion(x: np.ndarray, y: np.ndarray, actors: np.ndarray) -> tuple[Regression, dict[str, object]]:
    """The regression of one emotion: the ridge weight with the best Spearman on the validation actors, refitted
    on training and validation actors; with its figures on the held-out actors' real recordings."""
    train, val, test = (np.isin(actors, list(group)) for group in (TRAIN_ACTORS, VAL_ACTORS, TEST_ACTORS))
    val_rho = {r: spearman(y[val], fit_ridge(x[train], y[train], r)(x[val])) for r in RIDGES}
    ridge = max(RIDGES, key=lambda r: (val_rho[r], r))
    regression = calibrated(fit_ridge(x[train | val], y[train | val], ridge), x[train | val], y[train | val])
    judged = regression(x[test])
    means = {str(level): round(float(judged[y[test] == level].mean()), 3) for level in (0.0, 0.5, 1.0)}
    report = {"ridge": ridge, "val_spearman_by_ridge": {str(r): round(v, 3) for r, v in val_rho.items()},
              "test_spearman": round(spearman(y[test], judged), 3), "test_mean_by_intensity": means}
    return regression, report


def fit_command(data: Path, out: Path) -> dict[str, object]:
    """Fit one regression per emotion and save them (`strength.npz`, `strength.json`)."""
    clips = [c for c in ravdess_clips(data) if c.label in ("neutral", *EMOTIONS)]
    normalised = speaker_normalised(clips)
    neutral = np.array([c.label == "neutral" for c in clips])
    actors, labels = np.array([c.actor for c in clips]), np.array([c.label for c in clips])
    y = np.array([intensity(c) for c in clips])
    arrays, report, pooled = {}, {}, []
    for emotion in EMOTIONS:
        rows = (labels == emotion) | neutral
        regression, report[emotion] = fit_emotion(normalised[rows], y[rows], actors[rows])
        test = rows & np.isin(actors, list(TEST_ACTORS))
        pooled += list(zip(y[test], regression(normalised[test])))
        for field in ("mean", "scale", "weight"):
            arrays[f"{emotion}_{field}"] = getattr(regression, field)
        arrays[f"{emotion}_bias"] = np.array([regression.bias], dtype=np.float32)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "strength.npz", **arrays)
    summary = {"features": "as benchmarks/judges/whisper", "target": "RAVDESS intensity: neutral 0, normal 0.5, "
               "strong 1; per emotion, that emotion's takes and the neutral ones", "trained_on": "actors 1-22 "
               "(ridge weight chosen on 21-22)", "test": "actors 23-24, real recordings", "emotions": report,
               "test_spearman_pooled": round(spearman(*(np.array(v) for v in zip(*pooled))), 3)}
    (out / "strength.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def load_judge(folder: Path) -> dict[str, Regression]:
    arrays = np.load(folder / "strength.npz", allow_pickle=False)
    return {e: Regression(arrays[f"{e}_mean"], arrays[f"{e}_scale"], arrays[f"{e}_weight"],
                          float(arrays[f"{e}_bias"][0])) for e in EMOTIONS}


def score_command(sweep: Path, judge_dir: Path, data: Path, model: str, out: Path) -> dict[str, object]:
    """Convert every row of a sweep CSV at its target_strength and judge how strongly it carries its target."""
    with open(sweep, newline="") as f:
        rows = list(csv.DictReader(f))
    judge = load_judge(judge_dir)
    files = convert_rows(rows, model, out / "wavs", None)
    results = []
    for row, x in zip(rows, source_normalised(files, rows, neutral_takes(data))):
        judged = float(judge[row["target_emotion"]](x[None])[0])
        results.append({"id": row["id"], "target_emotion": row["target_emotion"],
                        "requested_strength": row["target_strength"], "measured_strength": f"{judged:.4f}"})
    with open(out / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(results[0]))
        writer.writeheader()
        writer.writerows(results)
    found = curve(results)
    (out / "curve.json").write_text(json.dumps(found, indent=2) + "\n")
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser, _ = judge_parser(__doc__, "fit on RAVDESS actors 1-22, report on 23-24", "sweep",
                             "convert and judge a sweep CSV (benchmarks/ravdess_pairs.py sweep.csv)")
    args = parser.parse_args(argv)
    if args.command == "fit":
        print(json.dumps(fit_command(args.data, args.out), indent=2))
    else:
        print(json.dumps(score_command(args.sweep, args.judge, args.data, args.model, args.out), indent=2))


if __name__ == "__main__":
    main()
