"""The emotional corpora the project validates on, and who is trained on, validates and is held out.

    RAVDESS      (English, acted, 24 actors, 2 sentences)  manifest.csv of the training layout
    LibriSpeech  (English read audiobooks, neutral)        manifest.csv of the training layout
    EmoDB        (German, acted, 10 actors, 10 texts)      a folder of the 535 original-named wavs
    URDU         (Urdu, unacted TV talk shows, 38 speakers) its four emotion folders

EmoDB (Burkhardt et al., Interspeech 2005) and URDU (Latif et al., 2018) are for research use; their
audio is never copied into this repository. EmoDB's labels come from the 6th letter of the file name
(W anger, F happiness, T sadness, N neutral; A fear, E disgust, L boredom are not ours), the speaker
from the first two digits and the text from the next three. URDU's speaker is the first part of the
file name (SM1, SF9, ...), its label the folder.

The split is by speaker, fixed here once: the reader is fitted on the `train` speakers, settings are
chosen on `val`, and `test` is measured once for the README.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

EMODB_LABELS = {"W": "angry", "F": "happy", "T": "sad", "N": "neutral"}
URDU_LABELS = {"Angry": "angry", "Happy": "happy", "Sad": "sad", "Neutral": "neutral"}
RAVDESS_LABELS = {"neutral": "neutral", "angry": "angry", "happy": "happy", "sad": "sad", "surprised": "surprise"}

LICENCES = {
    "ravdess": "CC BY-NC-SA 4.0 (Livingstone & Russo, 2018)",
    "libri": "CC BY 4.0 (Panayotov et al., 2015)",
    "emodb": "research use (Burkhardt et al., Interspeech 2005)",
    "urdu": "research use only (Latif et al., 2018)",
}

SPLITS: dict[str, dict[str, tuple[str, ...]]] = {
    "ravdess": {"val": ("21", "22"), "test": ("23", "24")},  # actors 1-20 train
    "emodb": {"val": ("03", "08"), "test": ("12", "13", "15", "16")},  # 09 10 11 14 train
    # URDU's speakers mostly speak one emotion each; every split has all four
    "urdu": {"val": ("SM20", "SM2", "SM24", "SF6", "SF7", "SM23"),
             "test": ("SM5", "SM4", "SM25", "SM7", "SF1", "SF11")},
    "libri": {"val": ("83", "460", "3080", "4397", "6078", "7517"),  # configs/prosody.toml's readers
              "test": ("40", "196", "289", "405", "625", "1069", "1363", "1743", "2033", "2436", "2911", "3259",
                       "3807", "4137", "4481", "5104", "5652", "6064", "6454", "7067", "7367", "8014", "8324",
                       "8797")},
}


@dataclass(frozen=True)
class Clip:
    path: Path
    corpus: str
    speaker: str
    label: str
    text: str = ""  # parallel corpora: which sentence
    intensity: str = ""  # RAVDESS: normal or strong

    @property
    def split(self) -> str:
        """train, val or test, by speaker."""
        return split_of(f"{self.corpus}_{self.speaker}")


def corpus_of(speaker: str) -> str:
    """The corpus of a training record's speaker name: its prefix ("emodb" of "emodb_03")."""
    return speaker.partition("_")[0]


def split_of(speaker: str) -> str:
    """train, val or test of a training record's speaker ("emodb_03", "ravdess_21", "libri_83")."""
    corpus, name = corpus_of(speaker), speaker.partition("_")[2]
    for split, speakers in SPLITS.get(corpus, {}).items():
        if name in speakers:
            return split
    return "train"


def ravdess(root: Path) -> list[Clip]:
    """RAVDESS clips of our five labels (calm, fearful and disgust left out)."""
    with open(root / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return [Clip(root / r["path"], "ravdess", r["actor"], RAVDESS_LABELS[r["emotion"]], r["statement"], r["intensity"])
            for r in rows if r["emotion"] in RAVDESS_LABELS]


def librispeech(root: Path) -> list[Clip]:
    with open(root / "manifest.csv", newline="") as f:
        return [Clip(root / r["path"], "libri", r["speaker"], "neutral", r["utt_id"]) for r in csv.DictReader(f)]


def emodb(folder: Path) -> list[Clip]:
    """EmoDB's anger, happiness, sadness and neutral takes from a folder of its original file names."""
    clips = []
    for path in sorted(folder.glob("*.wav")):
        label = EMODB_LABELS.get(path.stem[5:6])
        if label is not None and len(path.stem) >= 6:
            clips.append(Clip(path, "emodb", path.stem[:2], label, path.stem[2:5]))
    return clips


def urdu(root: Path) -> list[Clip]:
    return [Clip(path, "urdu", path.stem.split("_")[0], label)
            for name, label in URDU_LABELS.items() for path in sorted((root / name).glob("*.wav"))]


def load(ravdess_root: Path | None, libri_root: Path | None, emodb_dir: Path | None,
         urdu_root: Path | None) -> list[Clip]:
    """Every clip of the corpora given (None: left out)."""
    clips: list[Clip] = []
    for root, reader in ((ravdess_root, ravdess), (libri_root, librispeech), (emodb_dir, emodb), (urdu_root, urdu)):
        if root is not None:
            clips.extend(reader(root))
    return clips
