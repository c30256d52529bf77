"""Give a bundle a prosody predictor fitted on RAVDESS's parallel takes (and, with --data, another corpus's); write
the result as a new bundle.

    python -m ainn_cli.train.fit_prosody --bundle checkpoints/paper --out checkpoints/prosody \\
        [--ravdess DATA_ROOT/ravdess] [--data emodb:emodb] [--steps 3000]

For every emotional take of the training actors (1-20; 21-22 validate), the target is the prosody
change from the neutral take of the same sentence and repetition (`prosody.measure_change`: mean
voiced ln f0, its spread, speech energy, speech duration); the input is the bundle's emotion
embedding of a *reference*: the same actor, emotion and intensity on the other sentence, and the
intensity level (0.5 normal, 1 strong). The bundle's own modules are not changed. With a predictor and
a generator without prosody inputs, the pipeline applies the change to the source's mel itself
(`prosody.reshape_mel`) before the model converts it. EmoDB's takes (`--data emodb:DIR`, speakers 09 10 11 14
train, 03 08 validate) teach the f0 changes only: its copy is cut to 2 s and peak-normalised clip by clip, so its
energy and duration changes are left out of the loss (`parallel.LEVEL_FREE`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.bundle import BundleInfo, load_bundle, save_bundle
from ainn_cli.corpora.sources import data_root
from ainn_cli.models.predictor import ProsodyPredictor, ProsodyPredictorConfig
from ainn_cli.prosody import CHANGES, measure_change
from ainn_cli.train.config import DataConfig, resolve_sources
from ainn_cli.train.data import Utterance, cached_mel, cached_pitch, load_source
from ainn_cli.train.emotional_corpora import split_of
from ainn_cli.train.parallel import DURATION, ENERGY, level_free, prosody_of

TRAIN_ACTORS = tuple(f"ravdess_{k:02d}" for k in range(1, 21))
VAL_ACTORS = ("ravdess_21", "ravdess_22")


@torch.no_grad()
def embed(bundle_modules: dict[str, torch.nn.Module], mel: np.ndarray, label: int) -> torch.Tensor:
    """Emotion embedding `(E,)` of a mel `(80, T)` with the cue of its true label (as export does)."""
    x = torch.from_numpy(mel).float().unsqueeze(0)
    rec = bundle_modules["recognizer"](x, torch.tensor([label]))
    out: torch.Tensor = bundle_modules["emotion_encoder"](x, rec.cue)[0]
    return out


def examples(utterances: list[Utterance], labels: tuple[str, ...], modules: dict[str, torch.nn.Module],
             cache: Path) -> tuple[torch.Tensor, ...]:
    """(embedding of the reference (N, E), level (N,), measured change (N, 4), which of the changes are known
    (N, 4): not the energy and duration of a cut, peak-normalised corpus, `parallel.LEVEL_FREE`) for every
    emotional take."""
    mels = [cached_mel(u.path, cache).astype(np.float32) for u in utterances]
    pitches = [cached_pitch(u.path, m.shape[1], cache) for u, m in zip(utterances, mels)]
    neutral = {(u.speaker, u.take): i for i, u in enumerate(utterances) if u.emotion == "neutral"}
    emb, level, change, known = [], [], [], []
    embedded: dict[int, torch.Tensor] = {}  # each reference serves several takes: embed it once
    for i, u in enumerate(utterances):
        source = neutral.get((u.speaker, u.take))
        if u.emotion == "neutral" or source is None:
            continue
        unknown = (ENERGY, DURATION) if level_free(u) else ()
        mask = torch.tensor([0.0 if k in unknown else 1.0 for k in range(len(CHANGES))])
        refs = [j for j, v in enumerate(utterances) if v.speaker == u.speaker and v.emotion == u.emotion
                and v.intensity == u.intensity and v.take.split("-")[0] != u.take.split("-")[0]]
        delta = measure_change(prosody_of(mels[source], pitches[source]), prosody_of(mels[i], pitches[i]))[0]
        for j in refs:
            if j not in embedded:
                embedded[j] = embed(modules, mels[j], labels.index(u.emotion))
            emb.append(embedded[j])
            level.append(u.intensity)
            change.append(delta)
            known.append(mask)
    return torch.stack(emb), torch.tensor(level), torch.stack(change), torch.stack(known)


def masked_loss(predicted: torch.Tensor, target: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Smooth-L1 `(N, 4)` over the changes known (`target` = change and, optionally, its known mask)."""
    known = target[1] if len(target) > 1 else torch.ones_like(target[0])
    loss = F.smooth_l1_loss(predicted, target[0], beta=0.1, reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


def fit(data: tuple[torch.Tensor, ...], val: tuple[torch.Tensor, ...], steps: int, seed: int) -> ProsodyPredictor:
    """Full-batch AdamW on smooth-L1; keeps the weights with the best validation loss."""
    torch.manual_seed(seed)
    predictor = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=data[0].shape[1]))
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=1e-3, weight_decay=1e-4)
    best, state = float("inf"), predictor.state_dict()
    for step in range(steps):
        loss = masked_loss(predictor(data[0], data[1]), data[2:])
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        with torch.no_grad():
            score = float(masked_loss(predictor(val[0], val[1]), val[2:]))
        if score < best:
            best, state = score, {k: v.clone() for k, v in predictor.state_dict().items()}
        if step % 500 == 0:
            print(f"step {step}: train {float(loss.detach()):.4f}, validation {score:.4f}", flush=True)
    predictor.load_state_dict(state)
    print(f"best validation smooth-L1 {best:.4f}")
    return predictor.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--ravdess", type=Path, default=data_root() / "ravdess", help="default: DATA_ROOT/ravdess")
    parser.add_argument("--data", action="append", default=[], metavar="KIND:PATH",
                        help="more parallel takes, as a config's data source (e.g. emodb:emodb, under the data root); "
                             "their speakers are split "
                             "by train/emotional_corpora.py (validation speakers validate, held-out ones are left out)")
    parser.add_argument("--cache", type=Path, default=Path(".cache/ainn-features"))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--name", default="ainn-ravdess-prosody")
    args = parser.parse_args()
    start = time.perf_counter()
    bundle = load_bundle(args.bundle)
    labels = bundle.info.labels
    more = resolve_sources(DataConfig(sources=tuple(args.data))) if args.data else ()  # relative: DATA_ROOT/...
    utterances = [u for spec in (f"ravdess:{args.ravdess}", *more) for u in load_source(spec) if u.emotion in labels]
    train, val = (examples([u for u in utterances if split_of(u.speaker) == part], labels, bundle.modules, args.cache)
                  for part in ("train", "val"))  # RAVDESS: actors 1-20 train, 21-22 validate
    print(f"{len(train[0])} training and {len(val[0])} validation examples", flush=True)
    predictor = fit(train, val, args.steps, seed=1234)
    base = {k: v for k, v in bundle.info.metadata.items() if k != "figures"}  # the base model's figures are not ours
    metadata = {**base, "prosody": {
        "fitted_by": "python -m ainn_cli.train.fit_prosody", "base_bundle": bundle.info.name, "changes": list(CHANGES),
        "train_actors": "RAVDESS 1-20", "validation_actors": "RAVDESS 21-22", "steps": args.steps,
        **({"more_parallel_takes": [spec.partition(":")[0] for spec in args.data]} if args.data else {})}}
    info = BundleInfo(name=args.name, labels=labels, calibration=bundle.info.calibration,
                      prototypes=bundle.info.prototypes, metadata=metadata)
    save_bundle(args.out, info, {**bundle.modules, "prosody": predictor})
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
