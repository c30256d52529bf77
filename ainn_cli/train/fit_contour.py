"""Give a bundle's prosody predictor a contour table: the shape in time of the f0 change per emotion (e.g.
surprise's rise at the end of the sentence, which a shift and a range cannot make). Writes a new bundle.

    python -m ainn_cli.train.fit_contour --bundle runs/default/recognizer-bundle --out runs/default/default-bundle \\
        [--ravdess DATA_ROOT/ravdess] [--bins 8] [--gain 1]

For every emotional take of the training actors (1-20), the measured contour is the DTW-aligned ln f0
difference from the neutral take of the same sentence and repetition, its median removed, as medians over
`--bins` equal parts of the neutral take's speech span (`parallel.measure_contour`; parts without two frames
voiced in both are left out). The pipeline asks for level x row(emotion), level being the strength (0.5 for
RAVDESS's normal takes, 1 for the strong ones), so each row is the least-squares fit

    row_c[k] = sum_i level_i y_i[k] / sum_i level_i^2     over the takes i of emotion c known in part k,

a mean of single takes that scatter by several semitones around it. Neutral's row is zero. Actors 21-22 report
the validation error against asking for no contour. Every other weight and setting of the bundle is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from ainn_cli.bundle import Bundle, load_bundle, save_bundle
from ainn_cli.corpora.sources import data_root
from ainn_cli.emotions import NEUTRAL
from ainn_cli.models.predictor import ProsodyPredictor
from ainn_cli.prosody import SEMITONES
from ainn_cli.train.data import Corpus, build_corpus, load_source
from ainn_cli.train.fit_prosody import TRAIN_ACTORS, VAL_ACTORS
from ainn_cli.train.parallel import measure_contour, prosody_of

Examples = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]  # label, level, contour, known


def examples(corpus: Corpus, speakers: tuple[str, ...], bins: int) -> Examples:
    """(label index (N,), level (N,), measured contour (N, K), known parts (N, K)) of the emotional takes
    of `speakers` that have a neutral take of the same sentence."""
    label, level, contour, known = [], [], [], []
    for pair in corpus.pairs:
        target = corpus.utterances[pair.target]
        if target.speaker not in speakers:
            continue
        values, mask = measure_contour(prosody_of(corpus.mels[pair.source], corpus.pitches[pair.source]),
                                       prosody_of(corpus.mels[pair.target], corpus.pitches[pair.target]),
                                       pair.warp, bins)
        label.append(corpus.labels.index(target.emotion))
        level.append(target.intensity)
        contour.append(torch.from_numpy(values))
        known.append(torch.from_numpy(mask))
    if not label:
        raise SystemExit(f"no parallel takes of {speakers[0]}..{speakers[-1]} found")
    return torch.tensor(label), torch.tensor(level), torch.stack(contour), torch.stack(known).float()


def fit_table(data: Examples, classes: int, neutral: int) -> torch.Tensor:
    """Per label, the least-squares row of `contour ~ level x row` over the known parts: `(classes, K)`."""
    label, level, contour, known = data
    table = torch.zeros(classes, contour.shape[1])
    for c in range(classes):
        rows = label == c
        if c == neutral or not rows.any():
            continue
        weight = level[rows, None] * known[rows]
        table[c] = (weight * contour[rows]).sum(0) / (weight * level[rows, None]).sum(0).clamp(min=1e-6)
    return table


def error(table: torch.Tensor, data: Examples) -> float:
    """Mean squared error (ln f0) over the known parts of `data` when asking for level x row(label)."""
    label, level, contour, known = data
    residual = (level[:, None] * table[label] - contour) * known
    return float(residual.pow(2).sum() / known.sum().clamp(min=1))


def with_contour(predictor: ProsodyPredictor, table: torch.Tensor, gain: float) -> ProsodyPredictor:
    """A copy of `predictor` (same weights and settings) with the contour table `(classes, K)`."""
    config = dataclasses.replace(predictor.config, contour_bins=table.shape[1], contour_classes=table.shape[0],
                                 contour_gain=gain)
    out = ProsodyPredictor(config)
    out.net.load_state_dict(predictor.net.state_dict())
    assert out.contour_table is not None
    out.contour_table.copy_(table)
    return out.eval()


def predictor_arguments(doc: str | None) -> argparse.ArgumentParser:
    """The arguments of a step that refits part of a bundle's prosody predictor on RAVDESS's parallel takes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True, help="a bundle with a prosody predictor")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ravdess", type=Path, default=data_root() / "ravdess", help="default: DATA_ROOT/ravdess")
    parser.add_argument("--cache", type=Path, default=Path(".cache/ainn-features"))
    return parser


def predictor_and_takes(args: argparse.Namespace) -> tuple[Bundle, ProsodyPredictor, Corpus]:
    """`--bundle`, its prosody predictor, and RAVDESS's takes of its labels with pitch and parallel pairs."""
    bundle = load_bundle(args.bundle)
    base, labels = bundle.modules.get("prosody"), bundle.info.labels
    if not isinstance(base, ProsodyPredictor):
        raise SystemExit(f"{args.bundle} has no prosody predictor")
    utterances = [u for u in load_source(f"ravdess:{args.ravdess}") if u.emotion in labels]
    return bundle, base, build_corpus(utterances, labels, args.cache, prosody=True)


def main() -> None:
    parser = predictor_arguments(__doc__)
    parser.add_argument("--bins", type=int, default=8)
    parser.add_argument("--gain", type=float, default=1.0, help="contour_gain: scales the fitted shapes")
    args = parser.parse_args()
    start = time.perf_counter()
    bundle, base, corpus = predictor_and_takes(args)
    labels = bundle.info.labels
    train, val = examples(corpus, TRAIN_ACTORS, args.bins), examples(corpus, VAL_ACTORS, args.bins)
    table = fit_table(train, len(labels), labels.index(NEUTRAL))
    flat = error(torch.zeros_like(table), val)
    print(f"{len(train[0])} training and {len(val[0])} validation takes; validation squared error "
          f"{error(table, val):.4f} with the contours, {flat:.4f} without")
    for name, row in zip(labels, table):
        print(f"  {name:9s} " + " ".join(f"{v:+.1f}" for v in (row * SEMITONES).tolist()) + " st")
    metadata = {**bundle.info.metadata, "contour": {
        "fitted_by": "python -m ainn_cli.train.fit_contour", "base_bundle": bundle.info.name, "bins": args.bins,
        "train_actors": "RAVDESS 1-20", "validation_actors": "RAVDESS 21-22"}}
    save_bundle(args.out, dataclasses.replace(bundle.info, metadata=metadata),
                {**bundle.modules, "prosody": with_contour(base, table, args.gain)})
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
