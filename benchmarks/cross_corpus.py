"""Conversions judged on another corpus: EmoDB's parallel takes, the README's protocol.

For each speaker of a split (`ainn_cli/train/emotional_corpora.py`: val or test), each emotion E of angry, happy, sad
and each text t the speaker says both neutrally and with E: source = the neutral take of t, reference = the
speaker's E take of the next such text t' != t, target = the real E take of t.

The judge is the Whisper-judge recipe (`judges/whisper_judge.py`: Whisper tiny.en encoder states, pooled,
minus the mean of the speaker's neutral recordings, softmax regression) fitted on real recordings of
RAVDESS actors 1-20 and EmoDB's `train` speakers only: it never hears the speakers it judges, nor converted
speech. Its weight decay is chosen on the `val` speakers' real recordings. A conversion is normalised with
its source speaker's neutral takes (what it started from); a real target with the speaker's other neutral
takes. Prosody: median F0 (WORLD Harvest) and speech energy of output and real target against the source; voicing
(the share of speech frames Harvest calls voiced) and how much the loudness moves (dB standard deviation).
With `--copy-synthesis`, the real targets vocoded from their own log-mel are judged too: the figure a
conversion could reach if the generator made the real target's mel.

    python -m benchmarks.cross_corpus --emodb DIR --ravdess DIR --model default --split val --out OUT \
        [--corpus ravdess] [--copy-synthesis]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ainn_cli.train.emotional_corpora import SPLITS, Clip, emodb, ravdess
from benchmarks.judges.whisper_judge import DECAYS, bootstrap_ci, cached_features, fit_judge, neutral_offsets

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline

EMOTIONS = ("angry", "happy", "sad")
RAVDESS_EMOTIONS = ("angry", "happy", "sad", "surprise")
JUDGE_LABELS = ("neutral", "angry", "happy", "sad", "surprise")


def pairs(clips: Sequence[Clip], speakers: Sequence[str], emotions: Sequence[str] = EMOTIONS
          ) -> list[tuple[Clip, Clip, Clip]]:
    """(source, reference, target) triples of the protocol; the first take of each text."""
    first: dict[tuple[str, str, str], Clip] = {}
    for c in sorted(clips, key=lambda c: c.path.name):
        first.setdefault((c.speaker, c.label, c.text), c)
    out = []
    for s in speakers:
        for e in emotions:
            texts = sorted(t for (sp, lab, t) in first if sp == s and lab == e and (s, "neutral", t) in first)
            for i, t in enumerate(texts):
                if len(texts) > 1:
                    ref = first[(s, e, texts[(i + 1) % len(texts)])]
                    out.append((first[(s, "neutral", t)], ref, first[(s, e, t)]))
    return out


def normalised(clips: Sequence[Clip]) -> np.ndarray:
    feats = cached_features([c.path for c in clips], progress=False)
    neutral = np.array([c.label == "neutral" for c in clips])
    result: np.ndarray = feats - neutral_offsets(feats, [f"{c.corpus}{c.speaker}" for c in clips], neutral)
    return result


def fit(emodb_clips: Sequence[Clip], ravdess_clips: Sequence[Clip]) -> tuple[object, dict[str, float]]:
    """The judge, fitted on the train speakers of both corpora, decay chosen on their val speakers."""
    clips = [c for c in [*ravdess_clips, *emodb_clips] if c.split in ("train", "val")]
    x = normalised(clips)
    y = np.array([JUDGE_LABELS.index(c.label) for c in clips])
    train = np.array([c.split == "train" for c in clips])
    val_acc = {}
    for d in DECAYS:
        judge = fit_judge(x[train], y[train], JUDGE_LABELS, d)
        val_acc[d] = float(np.mean([p == JUDGE_LABELS[t] for p, t in zip(judge.predict(x[~train]), y[~train])]))
    best = max(val_acc, key=lambda d: val_acc[d])
    return fit_judge(x[train], y[train], JUDGE_LABELS, best), {"decay": best, "val_real_accuracy": val_acc[best]}


def convert(triples: Sequence[tuple[Clip, Clip, Clip]], pipeline: Pipeline, out: Path) -> list[Path]:
    from ainn_cli.audio import read_audio, write_wav

    files = []
    for src, ref, tgt in triples:
        file = out / f"{src.path.stem}__{tgt.label}__{ref.path.stem}.wav"
        if not file.exists():
            result = pipeline.convert(read_audio(src.path), read_audio(ref.path))
            write_wav(file, result.wave)
        files.append(file)
    return files


class Measures(NamedTuple):
    """What `measures` reads from one recording."""

    f0: float  # median F0 of the voiced frames, semitones re 100 Hz (WORLD Harvest)
    energy: float  # mean speech energy, dB
    voiced: float  # share of speech frames Harvest calls voiced (breathy or rough speech: fewer)
    energy_sd: float  # standard deviation of the speech frames' energy, dB (how much the loudness moves)


def measures(path: Path) -> Measures:
    """Prosody and voicing of a recording, over its speech frames (10 ms frames within 35 dB of the loudest)."""
    import pyworld
    import soundfile as sf

    wave, rate = sf.read(path, dtype="float64", always_2d=True)
    wave = wave.mean(axis=1)
    f0, _ = pyworld.harvest(wave, rate, frame_period=10.0)
    hop = rate // 100
    frames = np.square(wave[: len(wave) // hop * hop]).reshape(-1, hop).mean(axis=1)
    db = 10 * np.log10(frames + 1e-10)
    speech = db > db.max() - 35
    n = min(len(speech), len(f0))
    voiced = f0[f0 > 0]
    semitones = 12 * np.log2(np.median(voiced) / 100.0) if len(voiced) else float("nan")
    voiced_speech = int(np.sum(speech[:n] & (f0[:n] > 0))) / max(int(speech[:n].sum()), 1)
    return Measures(float(semitones), float(10 * np.log10(np.mean(10 ** (db[speech] / 10)))),
                    float(voiced_speech), float(np.std(db[speech])))


def judged(triples: Sequence[tuple[Clip, Clip, Clip]], files: Sequence[Path], judge: object,
           all_clips: Sequence[Clip]) -> np.ndarray:
    """The judge's label for each file, normalised with its triple's source speaker's neutral takes."""
    feats = cached_features(list(files), progress=False)
    neutral = [c for c in all_clips if c.label == "neutral"]
    nfeat = cached_features([c.path for c in neutral], progress=False)
    by_speaker = defaultdict(list)
    for c, f in zip(neutral, nfeat):
        by_speaker[c.speaker].append(f)
    offsets = np.stack([np.mean(by_speaker[src.speaker], axis=0) for src, _, _ in triples])
    predicted: np.ndarray = judge.predict(feats - offsets)  # type: ignore[attr-defined]
    return predicted


def score(triples: Sequence[tuple[Clip, Clip, Clip]], files: Sequence[Path], judge: object,
          all_clips: Sequence[Clip]) -> dict[str, object]:
    predicted = judged(triples, files, judge, all_clips)
    real_clips = [c for c in all_clips if c.speaker in {s.speaker for s, _, _ in triples}]
    real_x = normalised(real_clips)
    index = {c.path: i for i, c in enumerate(real_clips)}
    real_pred = judge.predict(real_x[[index[t.path] for _, _, t in triples]])  # type: ignore[attr-defined]
    hits, real_hits = _hits(predicted, triples), _hits(real_pred, triples)
    out: dict[str, object] = {"pairs": len(triples), "judge": float(hits.mean()), "judge_ci": bootstrap_ci(hits),
                              "judge_real_targets": float(real_hits.mean())}
    prosody = _prosody(triples, files)
    for e, rows in _rows(triples).items():
        out[e] = {"judge": float(hits[rows].mean()), "real": float(real_hits[rows].mean()),
                  "heard_as": {p: sum(1 for i in rows if predicted[i] == p) for p in JUDGE_LABELS},
                  **{k: v for k, v in prosody.items() if k.startswith(e)}}
    return out


def _hits(predicted: Sequence[str] | np.ndarray, triples: Sequence[tuple[Clip, Clip, Clip]]) -> np.ndarray:
    """1.0 where the judge's label is the triple's target emotion, else 0.0 `(pairs,)`."""
    return np.array([p == t.label for p, (_, _, t) in zip(predicted, triples)], dtype=float)


def _rows(triples: Sequence[tuple[Clip, Clip, Clip]]) -> dict[str, list[int]]:
    """The triples' indices per target emotion, emotions sorted."""
    return {e: [i for i, (_, _, t) in enumerate(triples) if t.label == e]
            for e in sorted({t.label for _, _, t in triples})}


def _prosody(triples: Sequence[tuple[Clip, Clip, Clip]], files: Sequence[Path]) -> dict[str, object]:
    """Per emotion: the share of pairs whose output moves median F0 and energy the way the real target does,
    the median changes (output, real) against the source, and the medians of voicing and loudness movement
    (source, output, real)."""
    rows: dict[str, list[tuple[Measures, Measures, Measures]]] = defaultdict(list)
    for (src, _, tgt), file in zip(triples, files):
        rows[tgt.label].append((measures(src.path), measures(file), measures(tgt.path)))
    out: dict[str, object] = {}
    for e, values in rows.items():
        s, o, t = (np.array(m) for m in zip(*values))  # (pairs, 4) each: source, output, real target
        out[f"{e}_f0_sign"] = float(np.mean(np.sign(o[:, 0] - s[:, 0]) == np.sign(t[:, 0] - s[:, 0])))
        out[f"{e}_energy_sign"] = float(np.mean(np.sign(o[:, 1] - s[:, 1]) == np.sign(t[:, 1] - s[:, 1])))
        out[f"{e}_f0_st_out_real"] = _medians(o[:, 0] - s[:, 0], t[:, 0] - s[:, 0])
        out[f"{e}_energy_db_out_real"] = _medians(o[:, 1] - s[:, 1], t[:, 1] - s[:, 1])
        out[f"{e}_voiced_src_out_real"] = _medians(s[:, 2], o[:, 2], t[:, 2])
        out[f"{e}_energy_sd_src_out_real"] = _medians(s[:, 3], o[:, 3], t[:, 3])
    return out


def _medians(*columns: np.ndarray) -> list[float]:
    return [round(float(np.median(c)), 2) for c in columns]


def copy_synthesis(triples: Sequence[tuple[Clip, Clip, Clip]], pipeline: Pipeline, out: Path) -> list[Path]:
    """The real targets through the model's vocoder alone (their log-mel, vocoded): what the judge hears when
    nothing but the vocoder stands between it and the real emotional take."""
    from ainn_cli.audio import read_audio, write_wav
    from ainn_cli.mel import log_mel

    out.mkdir(parents=True, exist_ok=True)
    files = []
    for _, _, tgt in triples:
        file = out / f"{tgt.path.stem}.wav"
        if not file.exists():
            write_wav(file, pipeline.vocode(log_mel(read_audio(tgt.path).samples)))
        files.append(file)
    return files


def copy_synthesis_report(triples: Sequence[tuple[Clip, Clip, Clip]], files: Sequence[Path], judge: object,
                          clips: Sequence[Clip]) -> dict[str, object]:
    """How often the judge hears the target in the copy-syntheses, overall and per emotion."""
    predicted = judged(triples, files, judge, clips)
    hits = _hits(predicted, triples)
    per = {e: float(hits[rows].mean()) for e, rows in _rows(triples).items()}
    return {"judge_copy_synthesis": float(hits.mean()), "judge_copy_synthesis_per_emotion": per}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--emodb", type=Path, required=True, help="folder of EmoDB's wavs")
    parser.add_argument("--ravdess", type=Path, required=True, help="RAVDESS in the training layout (judge)")
    parser.add_argument("--model", default="default")
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--corpus", choices=("emodb", "ravdess"), default="emodb",
                        help="whose pairs (RAVDESS: strong references, surprise too)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--copy-synthesis", action="store_true",
                        help="also judge the real targets vocoded from their own log-mel (the vocoder's ceiling)")
    args = parser.parse_args(argv)
    all_emodb, all_ravdess = emodb(args.emodb), ravdess(args.ravdess)
    judge, facts = fit(all_emodb, all_ravdess)
    emotions: tuple[str, ...] = EMOTIONS
    if args.corpus == "emodb":
        clips = all_emodb
    else:
        clips = [c for c in all_ravdess if c.intensity == "strong" or c.label == "neutral"]
        emotions = RAVDESS_EMOTIONS
    triples = pairs(clips, SPLITS[args.corpus][args.split], emotions)
    args.out.mkdir(parents=True, exist_ok=True)
    from ainn_cli.pipeline import load_pipeline

    pipeline = load_pipeline(args.model, "cpu")
    files = convert(triples, pipeline, args.out)
    report = {"model": args.model, "corpus": args.corpus, "split": args.split, **facts,
              **score(triples, files, judge, clips)}
    if args.copy_synthesis:
        copies = copy_synthesis(triples, pipeline, args.out / "copy_synthesis")
        report.update(copy_synthesis_report(triples, copies, judge, clips))
    (args.out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
