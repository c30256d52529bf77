"""Evaluation pairs on RAVDESS held-out actors: `python -m benchmarks.ravdess_pairs RAVDESS_DIR OUT_DIR`.

RAVDESS is parallel: every actor says both sentences in every emotion. For each held-out actor,
sentence s and target emotion e (angry, happy, sad, surprise; strong intensity), in both repetitions:
  source    = the actor's neutral rendition of s
  reference = the actor's e rendition of the *other* sentence (so it never says the source's words)
  target    = the actor's e rendition of s (the real recording, for MCD and F0)
Writes four CSVs for `ainn evaluate`:
  converted.csv  source + reference, converted on the fly with --model
  sweep.csv      the same at --strength 0, 0.25, 0.5, 0.75, 1 (target_strength), for the strength curve
  real.csv       the real target recordings themselves (what the judge scores on real emotional speech)
  sources.csv    the unconverted neutral sources labelled with the target emotion (the floor)
"""

from __future__ import annotations

import argparse
import csv
from itertools import product
from pathlib import Path

EMOTIONS = {"angry": "05", "happy": "03", "sad": "04", "surprise": "08"}
TEXTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
FIELDS = ["id", "converted", "source", "reference", "target", "target_emotion", "target_strength", "text"]


def ravdess_file(root: Path, actor: str, emotion: str, intensity: str, statement: str, rep: str) -> Path:
    return root / f"Actor_{actor}" / f"03-01-{emotion}-{intensity}-{statement}-{rep}-{actor}.flac"


def rows(root: Path, actors: list[str]) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = {"converted": [], "sweep": [], "real": [], "sources": []}
    for actor, (statement, other), rep in product(actors, (("01", "02"), ("02", "01")), ("01", "02")):
        source = ravdess_file(root, actor, "01", "01", statement, rep)
        for emotion, code in EMOTIONS.items():
            target = ravdess_file(root, actor, code, "02", statement, rep)
            reference = ravdess_file(root, actor, code, "02", other, rep)
            base = {"target_emotion": emotion, "text": TEXTS[statement], "target": str(target)}
            name = f"a{actor}_s{statement}_r{rep}_{emotion}"
            out["converted"].append({**base, "id": name, "source": str(source), "reference": str(reference)})
            out["real"].append({**base, "id": f"{name}_real", "converted": str(target)})
            out["sources"].append({**base, "id": f"{name}_src", "converted": str(source)})
            for level in ("0", "0.25", "0.5", "0.75", "1"):
                out["sweep"].append({**base, "id": f"{name}_at{level}", "source": str(source),
                                     "reference": str(reference), "target_strength": level})
    return out


def write_csv(file: Path, rows: list[dict[str, str]], fields: list[str]) -> None:
    with open(file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ravdess", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--actors", nargs="+", default=["23", "24"], help="held-out actors (default: 23 24)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, table in rows(args.ravdess.resolve(), args.actors).items():
        write_csv(args.out / f"{name}.csv", table, FIELDS)
        print(f"{args.out / name}.csv: {len(table)} rows")


if __name__ == "__main__":
    main()
