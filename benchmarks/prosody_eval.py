"""Does the output's prosody move like the real target's? `python -m benchmarks.prosody_eval OUT [--model M]`

On RAVDESS held-out actors (benchmarks/ravdess_pairs.py's converted pairs: neutral source, reference
of the other sentence, real target of the same sentence), per pair and target emotion:
  - the change output - source and real target - source of mean voiced ln f0 (semitones), its spread
    (ratio), mean speech energy (dB) and speech duration (ratio), all measured the same way
    (prosody.statistics); the sign agreement of the two changes, per emotion;
  - at --strength 0: the output's median voiced f0 against the source's (semitones), and the median of the
    frame-by-frame difference over frames voiced in both (strength 0 keeps the timing, so frames align);
  - F0 following: Pearson correlation of the ln f0 G was asked to render and the ln f0 the tracker finds in
    the vocoded output, over frames voiced in both.
Pitch is measured by `--tracker`: WORLD Harvest (default; the tracker `ainn evaluate` uses, not the
pipeline's own) or the pipeline's YIN. The two disagree on the F0 spread even of real recordings (README,
"The default model and what it does today"). Writes OUT/prosody_pairs.csv and OUT/prosody_summary.json
and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ainn_cli.audio import read_audio
from ainn_cli.corpora.sources import data_root
from ainn_cli.eval.metrics import f0_world
from ainn_cli.mel import log_mel
from ainn_cli.pipeline import Pipeline, load_pipeline
from ainn_cli.pitch import Pitch, pitch_track, yin
from ainn_cli.prosody import (
    NEPER_TO_DB,
    SEMITONES,
    Prosody,
    apply_change,
    new_length,
    retime,
    statistics,
    voiced_speech,
)
from benchmarks.ravdess_pairs import rows

MEASURES = ("f0_st", "range", "energy_db", "duration")
EMOTIONS = ("angry", "happy", "sad", "surprise")


def harvest(wave: np.ndarray) -> Pitch:
    """WORLD Harvest's f0 per frame (`ainn evaluate`'s tracker), as a `Pitch`."""
    f0 = f0_world(wave).astype(np.float32)
    return Pitch(f0=f0, voiced=f0 > 0)


TRACKERS = {"harvest": harvest, "yin": yin}


def prosody(wave: np.ndarray, tracker: str = "harvest") -> Prosody:
    """Prosody `(1, T)` of a waveform: the pipeline's energy and the `tracker`'s pitch."""
    mel = log_mel(wave)
    return Prosody.of(mel, torch.from_numpy(pitch_track(TRACKERS[tracker](wave), mel.shape[-1]))[None])


def change(source: np.ndarray, other: np.ndarray, tracker: str = "harvest") -> dict[str, float]:
    """other - source in the four MEASURES (readable units)."""
    d = (statistics(prosody(other, tracker)) - statistics(prosody(source, tracker)))[0].tolist()
    return {"f0_st": d[0] * SEMITONES, "range": math.exp(d[1]), "energy_db": d[2] * NEPER_TO_DB,
            "duration": math.exp(d[3])}


def kept_pitch(source: np.ndarray, output: np.ndarray, tracker: str = "harvest") -> dict[str, float]:
    """At strength 0: output - source median voiced f0 (each over its own voiced speech frames), and the
    median frame-by-frame difference over frames voiced in both (semitones; NaN with under 10 such frames)."""
    a, b = prosody(source, tracker), prosody(output, tracker)
    va, vb = voiced_speech(a)[0] > 0, voiced_speech(b)[0] > 0
    if va.sum() < 10 or vb.sum() < 10:
        return {"median_st": float("nan"), "framewise_st": float("nan")}
    median = float(b.log_f0[0][vb].median() - a.log_f0[0][va].median()) * SEMITONES
    n = min(len(va), len(vb))
    both = va[:n] & vb[:n]
    diff = (b.log_f0[0, :n] - a.log_f0[0, :n])[both]
    return {"median_st": median, "framewise_st": float(diff.median()) * SEMITONES if len(diff) >= 10 else float("nan")}


def f0_following(pipe: Pipeline, source: np.ndarray, reference: np.ndarray, output: np.ndarray,
                 tracker: str = "harvest") -> float:
    """Correlation of the ln f0 G was asked to render with the ln f0 the `tracker` hears in the vocoded `output`."""
    if pipe.prosody is None:
        return float("nan")
    asked = _asked_log_f0(pipe, source, reference)
    heard = TRACKERS[tracker](output)
    n = min(len(asked), len(heard.f0))
    voiced = heard.voiced[:n] & (asked[:n] > 0)
    if voiced.sum() < 10:
        return float("nan")
    return float(np.corrcoef(asked[:n][voiced], np.log(heard.f0[:n][voiced]))[0, 1])


@torch.inference_mode()
def _asked_log_f0(pipe: Pipeline, source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The ln f0 contour (voiced frames; 0 elsewhere) that the pipeline hands G for this pair."""
    target = pipe._ask(source, pipe._mel(source), reference, None, None, None)[3]  # as pipe.convert asks it
    delta, contour = target.change, target.contour
    assert delta is not None
    src = prosody(source, "yin")  # what the pipeline measured
    wanted = apply_change(src, delta, contour).retimed(new_length(src.log_f0.shape[-1], delta))
    voiced = retime(src.voiced[:, None], wanted.log_f0.shape[-1])[0, 0] > 0.5
    return np.where(voiced.numpy(), wanted.log_f0[0].numpy(), 0.0)


def evaluate(pipe: Pipeline, pairs: list[dict[str, str]], tracker: str = "harvest") -> list[dict[str, Any]]:
    out = []
    zeros: dict[str, dict[str, float]] = {}  # strength 0 asks the same of every reference: once per source
    for row in pairs:
        source, reference = read_audio(row["source"]).samples, read_audio(row["reference"]).samples
        target = read_audio(row["target"]).samples
        result = pipe.convert(source, reference)
        if row["source"] not in zeros:
            zero = pipe.convert(source, reference, strength=0.0).wave
            zeros[row["source"]] = {"zero_f0_st": change(source, zero, tracker)["f0_st"],
                                    **{f"zero_{k}": v for k, v in kept_pitch(source, zero, tracker).items()}}
        made, real = change(source, result.wave, tracker), change(source, target, tracker)
        record: dict[str, Any] = {"id": row["id"], "emotion": row["target_emotion"],
                                  "judged_reference": result.emotion, "reference_strength": result.strength}
        record.update({f"out_{k}": v for k, v in made.items()})
        record.update({f"real_{k}": v for k, v in real.items()})
        record.update(zeros[row["source"]])
        record["f0_following"] = f0_following(pipe, source, reference, result.wave, tracker)
        out.append(record)
        print(row["id"], {k: round(v, 2) for k, v in made.items()}, flush=True)
    return out


def agrees(record: dict[str, Any], measure: str) -> bool:
    """Same direction of change (ratios compared with 1)."""
    pivot = 1.0 if measure in ("range", "duration") else 0.0
    return bool((record[f"out_{measure}"] - pivot) * (record[f"real_{measure}"] - pivot) > 0)


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for emotion in EMOTIONS:
        rows_e = [r for r in records if r["emotion"] == emotion]
        if rows_e:
            table[emotion] = {m: {"agree": float(np.mean([agrees(r, m) for r in rows_e])),
                                  "output": float(np.median([r[f"out_{m}"] for r in rows_e])),
                                  "real": float(np.median([r[f"real_{m}"] for r in rows_e]))} for m in MEASURES}
    follow = [r["f0_following"] for r in records if np.isfinite(r["f0_following"])]
    zero = {f"zero_strength_abs_{k}_max": float(np.nanmax([abs(r[f"zero_{k}"]) for r in records]))
            for k in ("f0_st", "median_st", "framewise_st")}
    return {"per_emotion": table, **zero,
            "f0_following_mean": float(np.mean(follow)) if follow else float("nan"), "pairs": len(records)}


def markdown(result: dict[str, Any]) -> str:
    lines = ["| target | median F0, st (output / real, agree) | F0 range (output / real, agree) | "
             "energy, dB (output / real, agree) | duration (output / real, agree) |", "|---|---|---|---|---|"]
    for emotion, cells in result["per_emotion"].items():
        parts = [f"{c['output']:+.1f} / {c['real']:+.1f}, {c['agree']:.0%}" if m in ("f0_st", "energy_db")
                 else f"x{c['output']:.2f} / x{c['real']:.2f}, {c['agree']:.0%}" for m, c in cells.items()]
        lines.append(f"| {emotion} | " + " | ".join(parts) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", default=None, help="bundle folder or name (default: the embedded default)")
    parser.add_argument("--ravdess", type=Path, default=data_root() / "ravdess")
    parser.add_argument("--actors", nargs="+", default=["23", "24"])
    parser.add_argument("--limit", type=int, default=0, help="only the first N pairs (a quick look)")
    parser.add_argument("--tracker", choices=sorted(TRACKERS), default="harvest",
                        help="pitch tracker of every measure (default: WORLD Harvest, needs the eval extra)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    pipe = load_pipeline(args.model, device="cpu")
    pairs = rows(args.ravdess, args.actors)["converted"]
    records = evaluate(pipe, pairs[: args.limit] if args.limit else pairs, args.tracker)
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "prosody_pairs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    result = summary(records)
    (args.out / "prosody_summary.json").write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    print(f"strength 0 ({args.tracker}): max |median f0 change| {result['zero_strength_abs_median_st_max']:.2f} st, "
          f"frame by frame {result['zero_strength_abs_framewise_st_max']:.2f} st, mean ln f0 "
          f"{result['zero_strength_abs_f0_st_max']:.2f} st; F0 following r = {result['f0_following_mean']:.3f} "
          f"over {result['pairs']} pairs")


if __name__ == "__main__":
    main()
