"""Does `ainn strength` follow `--strength`? The model's own conversions of RAVDESS pairs, read back.

    python -m benchmarks.strength_dial --ravdess DIR --model default --actors 21 22 [--out report.json]

The pairs are `ravdess_pairs.py`'s (source = an actor's neutral take of one sentence, reference = the same
actor's strong take of the emotion on the other sentence; angry, happy, sad, surprise; both repetitions).
Each is converted at strength 0, 0.25, 0.5, 0.75 and 1 and read by the same model (`Pipeline.strength`,
what `ainn strength` prints). Reports the mean reading per dial step and emotion, Spearman between dial and
reading pooled over all conversions and per pair (mean), and how many conversions at a dial above 0 read
under 0.05 (a step to 0).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from itertools import product
from pathlib import Path

import numpy as np

from benchmarks.ravdess_pairs import EMOTIONS, ravdess_file
from benchmarks.strength_curve import spearman

DIAL = (0.0, 0.25, 0.5, 0.75, 1.0)


def pairs(root: Path, actors: Sequence[str]) -> list[tuple[str, Path, Path]]:
    """(emotion, source, reference) of the protocol."""
    out = []
    for actor, (emotion, code), statement, rep in product(actors, EMOTIONS.items(), ("01", "02"), ("01", "02")):
        other = "02" if statement == "01" else "01"
        out.append((emotion, ravdess_file(root, actor, "01", "01", statement, rep),
                    ravdess_file(root, actor, code, "02", other, rep)))
    return out


def sweep(model: str, triples: Sequence[tuple[str, Path, Path]]) -> np.ndarray:
    """Readings `(pairs, dial steps)`."""
    from ainn_cli.audio import read_audio
    from ainn_cli.pipeline import load_pipeline

    pipeline = load_pipeline(model, "cpu")
    readings = np.zeros((len(triples), len(DIAL)))
    for i, (_, source, reference) in enumerate(triples):
        src, ref = read_audio(source), read_audio(reference)
        for j, level in enumerate(DIAL):
            readings[i, j] = pipeline.strength(pipeline.convert(src, ref, strength=level).wave).strength
        print(f"  {i + 1}/{len(triples)} {source.name}: {np.round(readings[i], 2).tolist()}", flush=True)
    return readings


def summary(triples: Sequence[tuple[str, Path, Path]], readings: np.ndarray) -> dict[str, object]:
    dial = np.tile(np.array(DIAL), (len(triples), 1))
    per_pair = [spearman(np.array(DIAL), r) for r in readings]
    emotions = sorted({e for e, _, _ in triples})
    return {
        "mean_by_dial": np.round(readings.mean(0), 3).tolist(),
        "by_emotion": {e: np.round(readings[[i for i, t in enumerate(triples) if t[0] == e]].mean(0), 3).tolist()
                       for e in emotions},
        "spearman_pooled": round(spearman(dial.ravel(), readings.ravel()), 3),
        "spearman_per_pair_mean": round(float(np.nanmean(per_pair)), 3),
        "steps_to_zero": int((readings[:, 1:] < 0.05).sum()), "conversions_above_0": int(readings[:, 1:].size),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ravdess", type=Path, required=True)
    parser.add_argument("--model", default="default")
    parser.add_argument("--actors", nargs="+", default=["21", "22"])
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    triples = pairs(args.ravdess, args.actors)
    report = {"model": args.model, "actors": args.actors, **summary(triples, sweep(args.model, triples))}
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
