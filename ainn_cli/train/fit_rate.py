"""Give a bundle's prosody predictor the reference's speaking rate: fit `rate_weight`. Writes a new bundle.

    python -m ainn_cli.train.fit_rate --bundle runs/default/contour-bundle --out runs/default/default-bundle \\
        [--ravdess DATA_ROOT/ravdess] [--no-follow]

An actor's emotional take lasts longer or shorter than the neutral take of the same sentence by an amount
that differs from actor to actor (on held-out actors 23-24, one speaks every emotion faster than neutral,
the other slower), so a per-emotion duration change gets its sign wrong for whole speakers. Their reference
says it: for every emotional take of the training actors (1-20), x is ln(the neutral take's phones per
second / the reference's) (`rate.speaking_rate`; the reference is the same actor, emotion and intensity on
the other sentence), y the measured ln duration change (`prosody.measure_change`, speech frames), and the
predictor already asks for level * d(e). The pipeline adds level * w * x, and

    w = sum_i level_i x_i (y_i - level_i d(e_i)) / sum_i (level_i x_i)^2      (least squares on the residual).

Actors 21-22 report the error and the sign agreement with and without it. Every other weight and setting of
the bundle is kept.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from ainn_cli.audio import read_audio
from ainn_cli.bundle import save_bundle
from ainn_cli.models.predictor import ProsodyPredictor
from ainn_cli.prosody import CHANGES
from ainn_cli.rate import rate_ratio, speaking_rate
from ainn_cli.train.data import Corpus
from ainn_cli.train.fit_contour import predictor_and_takes, predictor_arguments
from ainn_cli.train.fit_prosody import TRAIN_ACTORS, VAL_ACTORS, embed

DURATION = CHANGES.index("log_duration")
Examples = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]  # x, level, d, y, emotion


class Rates:
    """Speaking rate of corpus utterances, each read once."""

    def __init__(self, corpus: Corpus) -> None:
        self.corpus, self.known = corpus, dict[int, float | None]()

    def __call__(self, index: int) -> float | None:
        if index not in self.known:
            mel = torch.from_numpy(self.corpus.mels[index])
            self.known[index] = speaking_rate(read_audio(self.corpus.utterances[index].path).samples, mel)
        return self.known[index]


@torch.no_grad()
def examples(corpus: Corpus, speakers: tuple[str, ...], predictor: ProsodyPredictor,
             modules: dict[str, torch.nn.Module], rates: Rates) -> Examples:
    """(rate ratio x (N,), level (N,), the predictor's ln duration change without it (N,), measured (N,),
    target emotion) for every (emotional take, reference) of `speakers`."""
    x, level, asked, measured, emotion = [], [], [], [], []
    by_reference: dict[int, float] = {}  # each reference serves several takes (same emotion and intensity)
    for pair in corpus.pairs:
        target = corpus.utterances[pair.target]
        if target.speaker not in speakers:
            continue
        for ref in pair.refs:
            if ref not in by_reference:
                e = embed(modules, corpus.mels[ref], corpus.labels.index(target.emotion))
                by_reference[ref] = float(predictor(e[None], torch.tensor([target.intensity]))[0, DURATION])
            level.append(target.intensity)
            asked.append(by_reference[ref])
            x.append(rate_ratio(rates(pair.source), rates(ref)))
            measured.append(float(pair.change[DURATION]))
            emotion.append(target.emotion)
    if not x:
        raise SystemExit(f"no parallel takes of {speakers[0]}..{speakers[-1]} found")
    return torch.tensor(x), torch.tensor(level), torch.tensor(asked), torch.tensor(measured), emotion


def fit_weight(data: Examples) -> float:
    """Least-squares w of `y - d ~ level * w * x`."""
    x, level, asked, measured, _ = data
    feature = level * x
    return float((feature * (measured - asked)).sum() / feature.pow(2).sum().clamp(min=1e-9))


def report(data: Examples, weight: float) -> str:
    """RMSE of the ln duration change and, per emotion, how often its sign is right, with weight w."""
    x, level, asked, measured, emotion = data
    predicted = asked + level * weight * x
    rmse = float((predicted - measured).pow(2).mean().sqrt())
    signs = []
    for name in sorted(set(emotion)):
        rows = torch.tensor([e == name for e in emotion])
        agree = float(((predicted[rows] * measured[rows]) > 0).float().mean())
        signs.append(f"{name} {100 * agree:.0f} %")
    return f"RMSE {rmse:.3f}, sign right: {', '.join(signs)}"


def with_rate(predictor: ProsodyPredictor, weight: float, follow: bool = True) -> ProsodyPredictor:
    """A copy of `predictor` (same weights, table and settings) with `rate_weight` = weight, followed by default
    or not (`follow_rate`)."""
    out = ProsodyPredictor(dataclasses.replace(predictor.config, rate_weight=weight, follow_rate=follow))
    out.load_state_dict(predictor.state_dict())
    return out.eval()


def main() -> None:
    parser = predictor_arguments(__doc__)
    parser.add_argument("--follow", action=argparse.BooleanOptionalAction, default=True,
                        help="follow_rate: whether conversions follow the rate unless told (--no-follow: only with "
                             "`ainn convert --tempo`, as the shipped default)")
    args = parser.parse_args()
    start = time.perf_counter()
    bundle, base, corpus = predictor_and_takes(args)
    rates = Rates(corpus)
    train = examples(corpus, TRAIN_ACTORS, base, bundle.modules, rates)
    val = examples(corpus, VAL_ACTORS, base, bundle.modules, rates)
    weight = fit_weight(train)
    print(f"{len(train[0])} training and {len(val[0])} validation (take, reference) pairs; rate_weight {weight:.3f}")
    for name, data in (("training", train), ("validation", val)):
        print(f"  {name}: without {report(data, 0.0)}\n  {' ' * len(name)}  with    {report(data, weight)}")
    metadata = {**bundle.info.metadata, "rate": {
        "fitted_by": "python -m ainn_cli.train.fit_rate", "base_bundle": bundle.info.name,
        "rate_weight": round(weight, 4), "follow_rate": args.follow, "train_actors": "RAVDESS 1-20",
        "validation_actors": "RAVDESS 21-22"}}
    save_bundle(args.out, dataclasses.replace(bundle.info, metadata=metadata),
                {**bundle.modules, "prosody": with_rate(base, weight, args.follow)})
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
