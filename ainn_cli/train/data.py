"""Training data: corpora (manifest CSV, RAVDESS, ESD), a speaker split, cached mels and batches.

Each batch is drawn from `numpy.random.default_rng((seed, step))`, so the data order is a pure
function of the step: a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ainn_cli.audio import AUDIO_SUFFIXES, read_audio
from ainn_cli.bundle import audio_settings
from ainn_cli.errors import UsageError
from ainn_cli.mel import log_mel
from ainn_cli.train.config import DataConfig

EMOTION_ALIASES = {"neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad",
                   "surprise": "surprise", "surprised": "surprise"}
RAVDESS_CODES = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry", "08": "surprise"}
INTENSITY = {"neutral": 0.0, "normal": 0.5, "strong": 1.0}


@dataclass(frozen=True)
class Utterance:
    path: str
    speaker: str
    emotion: str  # one of the model's labels
    intensity: float  # 0 neutral, 0.5 normal, 1 strong; NaN when unknown
    text: str = ""


def load_source(spec: str) -> list[Utterance]:
    """`kind:path` with kind manifest (CSV), ravdess (folder) or esd (folder)."""
    kind, sep, where = spec.partition(":")
    if not sep or kind not in {"manifest", "ravdess", "esd"}:
        raise UsageError(f"data source {spec!r}: use manifest:FILE.csv, ravdess:DIR or esd:DIR")
    path = Path(where).expanduser()
    if not path.exists():
        raise UsageError(f"data source {spec!r}: {path} does not exist")
    loader = {"manifest": _manifest, "ravdess": _ravdess, "esd": _esd}[kind]
    utterances = loader(path)
    if not utterances:
        raise UsageError(f"data source {spec!r}: no usable utterances found")
    return utterances


def _manifest(file: Path) -> list[Utterance]:
    """CSV with columns path, speaker, emotion and optional intensity, text (paths relative to it)."""
    out = []
    with open(file, newline="") as handle:
        for row in csv.DictReader(handle):
            emotion = EMOTION_ALIASES.get(row.get("emotion", "").strip().lower())
            if emotion is None:
                continue
            level = row.get("intensity", "") or ""
            intensity = INTENSITY.get(level, float(level) if _is_float(level) else float("nan"))
            out.append(Utterance(str(file.parent / row["path"]), row["speaker"], emotion,
                                 0.0 if emotion == "neutral" else intensity, row.get("text", "")))
    return out


def _ravdess(root: Path) -> list[Utterance]:
    """Files named modality-vocal-emotion-intensity-statement-repetition-actor, in Actor_XX folders."""
    out = []
    for file in sorted(root.rglob("*")):
        parts = file.stem.split("-")
        if file.suffix.lower() not in AUDIO_SUFFIXES or len(parts) != 7 or parts[2] not in RAVDESS_CODES:
            continue
        emotion = RAVDESS_CODES[parts[2]]
        intensity = 0.0 if emotion == "neutral" else (0.5 if parts[3] == "01" else 1.0)
        out.append(Utterance(str(file), f"ravdess_{parts[6]}", emotion, intensity))
    return out


def _esd(root: Path) -> list[Utterance]:
    """ESD: `<speaker>/<Emotion>/<speaker>_<id>.wav` (English speakers 0011-0020)."""
    out = []
    for file in sorted(root.glob("*/*/*.wav")):
        emotion = EMOTION_ALIASES.get(file.parent.name.lower())
        if emotion is not None:
            out.append(Utterance(str(file), f"esd_{file.parent.parent.name}", emotion,
                                 0.0 if emotion == "neutral" else float("nan")))
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def split_speakers(utterances: list[Utterance], config: DataConfig) -> dict[str, list[str]]:
    """Disjoint train/val/test speaker lists."""
    speakers = sorted({u.speaker for u in utterances})
    test = list(config.test_speakers) or speakers[len(speakers) - config.n_test:]
    val = list(config.val_speakers) or [s for s in speakers if s not in test][-config.n_val:]
    train = [s for s in speakers if s not in test and s not in val]
    if not train:
        raise UsageError(f"no training speakers left after the split ({len(speakers)} speakers in all)")
    return {"train": train, "val": val, "test": test}


def cache_key(path: str) -> str:
    digest = hashlib.sha256(json.dumps(audio_settings(), sort_keys=True).encode())
    digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:32]


def cached_mel(path: str, cache_dir: Path) -> np.ndarray:
    """Log-mel `(80, T)` of a file, computed once and stored under its content + settings hash."""
    file = cache_dir / f"{cache_key(path)}.npy"
    if file.is_file():
        cached: np.ndarray = np.load(file)
        return cached
    mel = log_mel(read_audio(path).samples)[0].numpy().astype(np.float16)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(f".{np.random.randint(1 << 30)}.tmp.npy")
    np.save(tmp, mel)
    tmp.replace(file)
    return mel


@dataclass
class Corpus:
    """Mels `(80, T)` in memory with their utterance records and label indices."""

    utterances: list[Utterance]
    mels: list[np.ndarray]
    labels: tuple[str, ...]

    @property
    def label_ids(self) -> np.ndarray:
        return np.array([self.labels.index(u.emotion) for u in self.utterances])

    def neutral_of(self) -> dict[str, list[int]]:
        """Indices of neutral utterances by speaker."""
        out: dict[str, list[int]] = {}
        for i, u in enumerate(self.utterances):
            if u.emotion == "neutral":
                out.setdefault(u.speaker, []).append(i)
        return out


def build_corpus(utterances: list[Utterance], labels: tuple[str, ...], cache_dir: Path) -> Corpus:
    keep = [u for u in utterances if u.emotion in labels]
    mels = [cached_mel(u.path, cache_dir).astype(np.float32) for u in keep]
    return Corpus(keep, mels, labels)


def crop(mel: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random `(80, frames)` window; short mels are tiled."""
    if mel.shape[1] < frames:
        mel = np.tile(mel, (1, frames // mel.shape[1] + 1))
    start = int(rng.integers(0, mel.shape[1] - frames + 1))
    return mel[:, start : start + frames]


@dataclass(frozen=True)
class Batch:
    mel: torch.Tensor  # (B, 80, T)
    label: torch.Tensor  # (B,) emotion index
    intensity: torch.Tensor  # (B,) 0 / 0.5 / 1, NaN unknown
    neutral: torch.Tensor  # (B, 80, T) a neutral utterance of the same speaker (the source for `str`)
    ref: torch.Tensor  # (B, 80, T) another utterance (a reference for Stage II)
    ref_label: torch.Tensor  # (B,)

    def to(self, device: torch.device) -> Batch:
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


def make_batch(corpus: Corpus, frames: int, size: int, seed: int, step: int) -> Batch:
    """The batch of `step`: emotion-balanced picks, each with a same-speaker neutral and a reference."""
    rng = np.random.default_rng((seed, step))
    ids, neutral_of = corpus.label_ids, corpus.neutral_of()
    picks = [_pick_label(rng, ids, int(rng.integers(len(corpus.labels)))) for _ in range(size)]
    refs = [_pick_label(rng, ids, int(rng.integers(len(corpus.labels)))) for _ in range(size)]
    neutrals = [_neutral(rng, neutral_of, corpus.utterances[i].speaker, i) for i in picks]

    def stack(idx: list[int]) -> torch.Tensor:
        return torch.from_numpy(np.stack([crop(corpus.mels[i], frames, rng) for i in idx]))

    return Batch(
        mel=stack(picks), label=torch.from_numpy(ids[picks]),
        intensity=torch.tensor([corpus.utterances[i].intensity for i in picks], dtype=torch.float32),
        neutral=stack(neutrals), ref=stack(refs), ref_label=torch.from_numpy(ids[refs]),
    )


def _pick_label(rng: np.random.Generator, ids: np.ndarray, label: int) -> int:
    pool = np.flatnonzero(ids == label)
    return int(rng.choice(pool if len(pool) else np.arange(len(ids))))


def _neutral(rng: np.random.Generator, neutral_of: dict[str, list[int]], speaker: str, fallback: int) -> int:
    pool = neutral_of.get(speaker)
    return int(rng.choice(pool)) if pool else fallback


class BatchStream(torch.utils.data.IterableDataset[Batch]):
    """Batches for steps `start, start + 1, ...`, built in worker processes, in step order."""

    def __init__(self, corpus: Corpus, config: DataConfig, seed: int, start: int, stop: int) -> None:
        self.corpus, self.config, self.seed, self.start, self.stop = corpus, config, seed, start, stop

    def __iter__(self) -> Iterator[Batch]:
        info = torch.utils.data.get_worker_info()
        first, every = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start + first, self.stop, every):
            yield make_batch(self.corpus, self.config.segment_frames, self.config.batch_size, self.seed, step)


def batches(corpus: Corpus, config: DataConfig, seed: int, start: int, stop: int) -> Iterator[Batch]:
    stream = BatchStream(corpus, config, seed, start, stop)
    loader = torch.utils.data.DataLoader(
        stream, batch_size=None, num_workers=config.workers, persistent_workers=False,
        multiprocessing_context="fork" if config.workers else None,
    )
    return iter(loader)
