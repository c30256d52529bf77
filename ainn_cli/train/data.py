"""Training data: corpora (manifest CSV, RAVDESS, ESD, LibriSpeech), a speaker split, cached mels and
pitch, parallel RAVDESS pairs and batches.

Each batch is drawn from `numpy.random.default_rng((seed, step))`, so the data order is a pure
function of the step: a resumed run sees exactly the batches it would have seen.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ainn_cli.audio import AUDIO_SUFFIXES
from ainn_cli.emotions import canonical
from ainn_cli.errors import UsageError
from ainn_cli.train.config import DataConfig
from ainn_cli.train.emotional_corpora import corpus_of, emodb
from ainn_cli.train.features import Features, interruptible
from ainn_cli.train.features import cache_key as cache_key  # the feature cache lives in features.py
from ainn_cli.train.features import cached_mel as cached_mel
from ainn_cli.train.features import cached_pitch as cached_pitch
from ainn_cli.train.parallel import Pair, build_pairs

MAX_MANIFEST_BYTES = 256 << 20  # a manifest of a million rows is about 100 MB
RAVDESS_CODES = {"01": "neutral", "03": "happy", "04": "sad", "05": "angry", "08": "surprise"}
INTENSITY = {"neutral": 0.0, "normal": 0.5, "strong": 1.0}
SOURCE_KINDS = ("manifest", "ravdess", "esd", "librispeech", "emodb")


@dataclass(frozen=True)
class Utterance:
    path: str
    speaker: str
    emotion: str  # one of the model's labels
    intensity: float  # 0 neutral, 0.5 normal, 1 strong; NaN when unknown
    text: str = ""
    take: str = ""  # "statement-repetition" for parallel corpora (RAVDESS), else empty


def load_source(spec: str) -> list[Utterance]:
    """`kind:path` with kind manifest (CSV), ravdess, esd, librispeech or emodb (folders)."""
    kind, sep, where = spec.partition(":")
    if not sep or kind not in SOURCE_KINDS:
        raise UsageError(f"data source {spec!r}: use manifest:FILE.csv, ravdess:DIR, esd:DIR, librispeech:DIR or "
                         "emodb:DIR")
    path = Path(where).expanduser()
    if not path.exists():
        raise UsageError(f"data source {spec!r}: {path} does not exist")
    if path.is_dir() != (kind != "manifest"):
        raise UsageError(f"data source {spec!r}: {path} is {'a folder' if path.is_dir() else 'a file'}")
    if kind == "manifest" and not path.is_file():
        raise UsageError(f"data source {spec!r}: {path} is not a regular file")
    if kind == "manifest" and path.stat().st_size > MAX_MANIFEST_BYTES:
        raise UsageError(f"data source {spec!r}: {path} is more than {MAX_MANIFEST_BYTES >> 20} MiB; is it a "
                         "manifest?")
    loader = {"manifest": _manifest, "ravdess": _ravdess, "esd": _esd, "librispeech": _librispeech,
              "emodb": _emodb}[kind]
    utterances = loader(path)
    if not utterances:
        raise UsageError(f"data source {spec!r}: no usable utterances found")
    return utterances


def _manifest(file: Path) -> list[Utterance]:
    """CSV with columns path, speaker, emotion and optional intensity, text, take (paths relative to it).

    `take` names a sentence and repetition ("s1-r1"): a neutral and an emotional row of the same
    speaker and take are a parallel pair (used by the prosody variant)."""
    out = []
    for row in _manifest_rows(file):
        emotion = canonical(row.get("emotion", ""))
        if emotion is None:
            continue
        level = row.get("intensity", "") or ""
        intensity = INTENSITY.get(level, float(level) if _is_float(level) else float("nan"))
        out.append(Utterance(str(file.parent / row["path"]), row["speaker"], emotion,
                             0.0 if emotion == "neutral" else intensity, row.get("text", ""),
                             (row.get("take") or "").strip()))
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
        out.append(Utterance(str(file), f"ravdess_{parts[6]}", emotion, intensity, take=f"{parts[4]}-{parts[5]}"))
    return out


def _esd(root: Path) -> list[Utterance]:
    """ESD: `<speaker>/<Emotion>/<speaker>_<id>.wav` (English speakers 0011-0020)."""
    out = []
    for file in sorted(root.glob("*/*/*.wav")):
        emotion = canonical(file.parent.name)
        if emotion is not None:
            out.append(Utterance(str(file), f"esd_{file.parent.parent.name}", emotion,
                                 0.0 if emotion == "neutral" else float("nan")))
    return out


def _librispeech(root: Path) -> list[Utterance]:
    """Read speech, all neutral: the folder's manifest.csv (path, speaker), else `<speaker>/*.flac`."""
    listing = root / "manifest.csv"
    if listing.is_file():
        with open(listing, newline="") as handle:
            rows = [(r.get("path", ""), r.get("speaker", "")) for r in csv.DictReader(handle)]
    else:
        rows = [(str(f.relative_to(root)), f.parent.name) for f in sorted(root.glob("*/*.flac"))]
    return [Utterance(str(root / path), f"libri_{speaker}", "neutral", 0.0) for path, speaker in rows
            if path and speaker]


def _emodb(root: Path) -> list[Utterance]:
    """EmoDB's original file names (`03a01Wa.wav`: speaker 03, text a01, W anger, version a); anger, happiness,
    sadness and neutral (`emotional_corpora.EMODB_LABELS`), every emotional take full-blown (intensity 1); the
    text is the take, so an emotional take and the neutral take of its text are a parallel pair."""
    return [Utterance(str(c.path), f"emodb_{c.speaker}", c.label, 0.0 if c.label == "neutral" else 1.0,
                      take=f"{c.text}-1") for c in emodb(root)]


def repeated(utterances: list[Utterance], repeat: dict[str, float]) -> list[Utterance]:
    """Each utterance `repeat["CORPUS_EMOTION"]` times in a row (CORPUS: its speaker's prefix, e.g. `emodb_sad`),
    so that a small corpus weighs more in the emotion-balanced batches; once where no key names it."""
    out = []
    for u in utterances:
        out.extend([u] * int(repeat.get(f"{corpus_of(u.speaker)}_{u.emotion}", 1)))
    return out


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _manifest_rows(file: Path) -> list[dict[str, str]]:
    """The rows of a manifest CSV, each with a path and a speaker; a file that is not one is a UsageError."""
    try:
        with open(file, newline="") as handle:
            reader = csv.DictReader(handle, restval="")
            missing = sorted({"path", "speaker", "emotion"} - set(reader.fieldnames or []))
            if missing:
                raise UsageError(f"{file}: a manifest needs the columns path, speaker and emotion (missing {missing})")
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"{file}: not a readable CSV manifest ({err})") from None
    for number, row in enumerate(rows, start=1):
        if not (row["path"] or "").strip() or not (row["speaker"] or "").strip():
            raise UsageError(f"{file}: row {number} has no path or no speaker")
        if not (row["path"].isprintable() and row["speaker"].isprintable()):
            raise UsageError(f"{file}: row {number} has control characters in its path or speaker (a binary file?)")
    return rows


def split_speakers(utterances: list[Utterance], config: DataConfig) -> dict[str, list[str]]:
    """Disjoint train/val/test speaker lists."""
    speakers = sorted({u.speaker for u in utterances})
    test = list(config.test_speakers) or speakers[max(0, len(speakers) - config.n_test):]
    rest = [s for s in speakers if s not in test]
    val = list(config.val_speakers) or rest[max(0, len(rest) - config.n_val):]  # n_val = 0: no validation
    train = [s for s in speakers if s not in test and s not in val]
    if not train:
        raise UsageError(f"no training speakers left after the split ({len(speakers)} speakers in all)")
    return {"train": train, "val": val, "test": test}


@dataclass
class Corpus:
    """Mels `(80, T)` and pitch `(2, T)` in memory with their utterance records and label indices."""

    utterances: list[Utterance]
    mels: list[np.ndarray]
    labels: tuple[str, ...]
    pitches: list[np.ndarray] = dataclasses.field(default_factory=list)
    pairs: list[Pair] = dataclasses.field(default_factory=list)

    @property
    def label_ids(self) -> np.ndarray:
        return np.array([self.labels.index(u.emotion) for u in self.utterances])

    def acting(self) -> np.ndarray:
        """`(N,)` bool: the utterance's speaker acts at least one emotion (RAVDESS), not only neutral (LibriSpeech)."""
        speakers = {u.speaker for u in self.utterances if u.emotion != self.labels[0]}
        return np.array([u.speaker in speakers for u in self.utterances], dtype=bool)

    def neutral_of(self) -> dict[str, list[int]]:
        """Indices of neutral utterances by speaker."""
        out: dict[str, list[int]] = {}
        for i, u in enumerate(self.utterances):
            if u.emotion == "neutral":
                out.setdefault(u.speaker, []).append(i)
        return out


def build_corpus(utterances: list[Utterance], labels: tuple[str, ...], cache_dir: Path,
                 prosody: bool = False) -> Corpus:
    """Load (and cache) the features; with `prosody`, also pitch and the parallel pairs."""
    keep = [u for u in utterances if u.emotion in labels]
    features = Features(cache_dir)  # rows naming one file share its arrays
    with interruptible():
        mels = [features.mel(u.path) for u in keep]
        if not prosody:
            return Corpus(keep, mels, labels)
        pitches = [features.pitch(u.path, m.shape[1]) for u, m in zip(keep, mels)]
    return Corpus(keep, mels, labels, pitches, build_pairs(keep, mels, pitches))


def crop(mel: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """A random `(80, frames)` window; short mels are tiled."""
    return crop_together([mel], frames, rng)[0]


def crop_together(arrays: list[np.ndarray], frames: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The same random window of `frames` from each `(C, T)` array (same T); short ones are tiled."""
    length = arrays[0].shape[1]
    if length < frames:
        arrays = [np.tile(a, (1, frames // length + 1)) for a in arrays]
    start = int(rng.integers(0, arrays[0].shape[1] - frames + 1))
    return [a[:, start : start + frames] for a in arrays]


@dataclass(frozen=True)
class ParallelBatch:
    """Neutral takes, the emotional takes of the same sentences aligned to them, and references."""

    source: torch.Tensor  # (B, 80, T) neutral take
    source_pitch: torch.Tensor  # (B, 2, T) its ln f0 and voicing
    target: torch.Tensor  # (B, 80, T) emotional take of the same sentence, DTW-aligned to `source`
    target_pitch: torch.Tensor  # (B, 2, T) aligned likewise
    ref: torch.Tensor  # (B, 80, T) same actor, emotion and intensity, the other sentence
    label: torch.Tensor  # (B,) the emotion index
    level: torch.Tensor  # (B,) intensity 0.5 / 1
    change: torch.Tensor  # (B, 4) measured prosody change of the whole takes

    def to(self, device: torch.device) -> ParallelBatch:
        return ParallelBatch(**{f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)})


def parallel_batch(corpus: Corpus, frames: int, size: int, rng: np.random.Generator) -> ParallelBatch:
    """`size` random pairs of `corpus.pairs`, each cropped to the same `frames` window."""
    picks = [corpus.pairs[int(k)] for k in rng.integers(len(corpus.pairs), size=size)]
    rows = []
    for pair in picks:
        ref = pair.refs[int(rng.integers(len(pair.refs)))]
        aligned = [corpus.mels[pair.target][:, pair.warp] + pair.gain, corpus.pitches[pair.target][:, pair.warp]]
        window = crop_together([corpus.mels[pair.source], corpus.pitches[pair.source], *aligned], frames, rng)
        rows.append([*window, crop(corpus.mels[ref], frames, rng)])
    stacked = [torch.from_numpy(np.stack([r[k] for r in rows])).float() for k in range(5)]
    return ParallelBatch(
        source=stacked[0], source_pitch=stacked[1], target=stacked[2], target_pitch=stacked[3], ref=stacked[4],
        label=torch.from_numpy(corpus.label_ids[[p.target for p in picks]]),
        level=torch.tensor([corpus.utterances[p.target].intensity for p in picks], dtype=torch.float32),
        change=torch.from_numpy(np.stack([p.change for p in picks])).float(),
    )


@dataclass(frozen=True)
class Batch:
    mel: torch.Tensor  # (B, 80, T)
    label: torch.Tensor  # (B,) emotion index
    intensity: torch.Tensor  # (B,) 0 / 0.5 / 1, NaN unknown
    neutral: torch.Tensor  # (B, 80, T) a neutral utterance of the same speaker (the source for `str`)
    ref: torch.Tensor  # (B, 80, T) another utterance (a reference for Stage II)
    ref_label: torch.Tensor  # (B,)
    ref_intensity: torch.Tensor | None = None  # (B,) the reference's 0 / 0.5 / 1, NaN unknown
    pitch: torch.Tensor | None = None  # (B, 2, T) ln f0 and voicing of `mel`, when the corpus has pitch
    parallel: ParallelBatch | None = None  # when the corpus has parallel pairs

    def to(self, device: torch.device) -> Batch:
        moved: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return Batch(**{k: None if v is None else v.to(device) for k, v in moved.items()})  # type: ignore[arg-type]


def make_batch(corpus: Corpus, frames: int, size: int, seed: int, step: int) -> Batch:
    """The batch of `step`: emotion-balanced picks, each with a same-speaker neutral and a reference;
    with pitch and parallel pairs when the corpus has them (half as many pairs as picks)."""
    rng = np.random.default_rng((seed, step))
    ids, neutral_of = corpus.label_ids, corpus.neutral_of()
    picks = [_pick_label(rng, ids, int(rng.integers(len(corpus.labels)))) for _ in range(size)]
    refs = [_pick_label(rng, ids, int(rng.integers(len(corpus.labels)))) for _ in range(size)]
    neutrals = [_neutral(rng, neutral_of, corpus.utterances[i].speaker, i) for i in picks]

    def stack(idx: list[int]) -> torch.Tensor:
        return torch.from_numpy(np.stack([crop(corpus.mels[i], frames, rng) for i in idx]))

    if corpus.pitches:
        windows = [crop_together([corpus.mels[i], corpus.pitches[i]], frames, rng) for i in picks]
        mel, pitch = (torch.from_numpy(np.stack([w[k] for w in windows])).float() for k in range(2))
    else:
        mel, pitch = stack(picks), None
    return Batch(
        mel=mel, label=torch.from_numpy(ids[picks]),
        intensity=torch.tensor([corpus.utterances[i].intensity for i in picks], dtype=torch.float32),
        neutral=stack(neutrals), ref=stack(refs), ref_label=torch.from_numpy(ids[refs]), pitch=pitch,
        ref_intensity=torch.tensor([corpus.utterances[i].intensity for i in refs], dtype=torch.float32),
        parallel=parallel_batch(corpus, frames, max(1, size // 2), rng) if corpus.pairs else None,
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
