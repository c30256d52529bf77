"""Fit the reader (`models/reader.py`) on several corpora and put it into a bundle.

    python -m ainn_cli.train.fit_reader --bundle BUNDLE [--out NEW_BUNDLE] [--ravdess DIR] [--librispeech DIR]
        [--emodb DIR] [--urdu DIR] [--cache DIR] [--test]

The corpora default to the data root's `ravdess`, `librispeech`, `emodb` and `urdu` folders (AINN_DATA, else
./data); a corpus whose folder is missing is left out and said so. `ainn data` fetches RAVDESS and
LibriSpeech; EmoDB (Burkhardt et al. 2005; a folder of its 535 wavs under their original names) and URDU
(Latif et al. 2018; its Angry/Happy/Neutral/Sad folders) are for research use and fetched by hand.

Each clip is read as `ainn` reads a reference (`audio.read_audio`, 22050 Hz), encoded by Whisper tiny.en's
encoder (`speech_encoder.encode`, cached per file) and pooled over its speech frames. The reader is a
multinomial logistic regression with an L2 penalty on the standardised pooled states, fitted by L-BFGS on
the `train` speakers of every corpus given (`train/emotional_corpora.py`), each corpus weighing the same and each
class the same within its corpus. The penalty is chosen by the mean accuracy over the corpora's `val`
speakers; `--test` also reports the held-out speakers (do that once). Prints one JSON report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli import speech_encoder
from ainn_cli.audio import SAMPLE_RATE, read_audio
from ainn_cli.bundle import add_component
from ainn_cli.corpora.sources import data_root
from ainn_cli.models.reader import Reader, ReaderConfig
from ainn_cli.train.emotional_corpora import LICENCES, Clip, load

CORPORA = ("ravdess", "librispeech", "emodb", "urdu")
L2_CHOICES = (0.01, 0.03, 0.1)
LBFGS_STEPS = 500
FOUR = ("neutral", "angry", "happy", "sad")  # EmoDB's and URDU's classes among ours


def corpus_folder(name: str, given: Path | None) -> Path | None:
    """The folder of corpus `name`: as given, else under the data root; None (said on stderr) where missing."""
    folder = given if given is not None else data_root() / name
    if not folder.is_dir():
        print(f"{name}: no folder {folder}, left out", file=sys.stderr)
        return None
    return folder


def copy_bundle(bundle: Path, out: Path) -> Path:
    """A copy of `bundle` at `out`, which must not exist yet."""
    if out.exists():
        raise SystemExit(f"{out} exists; give a new folder")
    shutil.copytree(bundle, out)
    return out


def pooled(clip: Clip, cache: Path, below_db: float) -> np.ndarray:
    """Mean encoder state `(D,)` over the clip's speech frames, cached by path, size and mtime."""
    stat = clip.path.stat()
    key = hashlib.sha1(f"{clip.path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{below_db}".encode()).hexdigest()
    file = cache / f"{key}.npy"
    if file.is_file():
        cached: np.ndarray = np.load(file)
        return cached
    states, speech = speech_encoder.encode(read_audio(clip.path).samples, SAMPLE_RATE, below_db)
    vector: np.ndarray = (states[speech] if speech.any() else states).mean(axis=0).astype(np.float32)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(file, vector)
    return vector


def balance(clips: Sequence[Clip]) -> torch.Tensor:
    """`(N,)` weights: every corpus the same in all, every class the same within its corpus; mean 1."""
    count = Counter((c.corpus, c.label) for c in clips)
    classes = Counter(corpus for corpus, _ in count)
    w = torch.tensor([1.0 / (count[(c.corpus, c.label)] * classes[c.corpus]) for c in clips])
    return w * len(clips) / w.sum()


def fit(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, classes: int, l2: float) -> tuple[torch.Tensor, ...]:
    """Standardised weighted L2 logistic regression: `(N, D)`, `(N,)`, `(N,)` -> center, scale `(D,)`,
    weight `(K, D)`, bias `(K,)`."""
    center, scale = x.mean(0), x.std(0).clamp_min(1e-4)
    z = (x - center) / scale
    weight = torch.zeros(classes, x.shape[1], requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    solver = torch.optim.LBFGS([weight, bias], max_iter=LBFGS_STEPS, line_search_fn="strong_wolfe")

    def objective() -> torch.Tensor:
        solver.zero_grad()
        loss = (F.cross_entropy(z @ weight.T + bias, y, reduction="none") * w).mean() + l2 * weight.pow(2).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        return loss

    with torch.enable_grad():
        solver.step(objective)  # type: ignore[no-untyped-call]
    return center, scale, weight.detach(), bias.detach()


def build(parts: tuple[torch.Tensor, ...], config: ReaderConfig) -> Reader:
    reader = Reader(config)
    center, scale, weight, bias = parts
    reader.load_state_dict({"center": center, "scale": scale, "classifier.weight": weight, "classifier.bias": bias})
    return reader.eval()


def score(reader: Reader, x: torch.Tensor, clips: Sequence[Clip]) -> dict[str, object]:
    """Accuracy (over the corpus's own classes) and the share of neutral clips read as neutral."""
    labels = reader.config.labels
    with torch.no_grad():
        logits = reader(x.unsqueeze(1)).logits
    if clips[0].corpus in ("emodb", "urdu"):  # their four classes
        logits[:, [i for i, name in enumerate(labels) if name not in FOUR]] = -torch.inf
    pred = [labels[i] for i in logits.argmax(-1).tolist()]
    right = [p == c.label for p, c in zip(pred, clips)]
    neutral = [p == "neutral" for p, c in zip(pred, clips) if c.label == "neutral"]
    per_class = {label: round(float(np.mean([r for r, c in zip(right, clips) if c.label == label])), 3)
                 for label in labels if any(c.label == label for c in clips)}
    return {"clips": len(clips), "accuracy": round(float(np.mean(right)), 3),
            "neutral_read_neutral": round(float(np.mean(neutral)), 3) if neutral else float("nan"),
            "per_class": per_class}


def report(reader: Reader, x: torch.Tensor, clips: Sequence[Clip], split: str) -> dict[str, dict[str, object]]:
    out = {}
    for corpus in sorted({c.corpus for c in clips}):
        rows = [i for i, c in enumerate(clips) if c.corpus == corpus and c.split == split]
        if rows:
            out[corpus] = score(reader, x[rows], [clips[i] for i in rows])
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="bundle folder that gets the reader")
    parser.add_argument("--out", type=Path, help="write a copy of --bundle with the reader here (default: in place)")
    for name in CORPORA:
        parser.add_argument(f"--{name}", type=Path, help=f"{name} corpus (default: DATA_ROOT/{name})")
    parser.add_argument("--cache", type=Path, default=Path(".cache/ainn-reader"), help="pooled states per file")
    parser.add_argument("--test", action="store_true", help="also report the held-out speakers (once)")
    args = parser.parse_args(argv)
    clips = load(*(corpus_folder(name, getattr(args, name)) for name in CORPORA))
    target = args.bundle if args.out is None else copy_bundle(args.bundle, args.out)
    config = ReaderConfig()
    x = torch.from_numpy(np.stack([pooled(c, args.cache, config.speech_db) for c in clips])).float()
    train = [i for i, c in enumerate(clips) if c.split == "train"]
    y = torch.tensor([config.labels.index(clips[i].label) for i in train])
    tried = {}
    for l2 in L2_CHOICES:
        reader = build(fit(x[train], y, balance([clips[i] for i in train]), len(config.labels), l2), config)
        val = report(reader, x, clips, "val")
        tried[l2] = (float(np.mean([cast(float, v["accuracy"]) for v in val.values()])), reader, val)
    l2 = max(tried, key=lambda k: tried[k][0])
    reader = tried[l2][1]
    figures = {"l2": l2, "val": tried[l2][2], "tried": {str(k): round(v[0], 3) for k, v in tried.items()}}
    if args.test:
        figures["test"] = report(reader, x, clips, "test")
    trained_on = Counter(f"{clips[i].corpus}" for i in train)
    licences = {name: LICENCES[name] for name in trained_on}
    add_component(target, "reader", reader, {"trained_on": dict(trained_on), "licences": licences, **figures})
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
