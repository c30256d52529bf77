"""Synthetic neutral read speech from espeak-ng, for content coverage beyond RAVDESS's two sentences.

    python -m benchmarks.espeak_corpus OUT_DIR [--train 400] [--ravdess DATA_ROOT/ravdess]

RAVDESS has two sentences; a content encoder that only hears them garbles other words (see
the project's data notes). espeak-ng (Debian package `espeak-ng`, GPL-3 program; its output is
ours to use) speaks any text, so it gives neutral speech with wide phonetic coverage. It is robotic,
so it is clearly labelled synthetic (speaker names `espeak_*`) and kept a minority of the picks.

Writes
  OUT_DIR/train/*.wav + OUT_DIR/train.csv   generated sentences, training voices (a `manifest:` source)
  OUT_DIR/test/*.wav  + OUT_DIR/test.csv    the hand-written TEST_SENTENCES, voices never used in training
  OUT_DIR/content.csv                       with --ravdess: test clips converted towards held-out RAVDESS
                                            references, rows for `ainn evaluate` (WER, speaker similarity)
  OUT_DIR/content_sources.csv               the unconverted test clips (Whisper's WER on espeak itself)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
from itertools import product
from pathlib import Path

import numpy as np

from benchmarks.ravdess_pairs import EMOTIONS, ravdess_file, write_csv
from benchmarks.ravdess_pairs import FIELDS as PAIR_FIELDS

TRAIN_VOICES = [f"{lang}+{variant}" for lang, variant in product(
    ("en-us", "en-gb"), ("m1", "m2", "m3", "m4", "m5", "f1", "f2", "f3", "klatt", "klatt3"))]
TEST_VOICES = ["en-us+m7", "en-gb+f4", "en-us+f5", "en-gb+m6"]
TEST_SENTENCES = [
    "She will fetch the thin violin from the shop.",
    "My friend Phil moved to a farm with five white horses.",
    "Please throw the heavy box over the wall.",
    "We should wash the muddy shoes before lunch.",
    "The fisherman found a small whale near the shore.",
    "Have you heard the news about the village fair?",
    "Mother made warm milk with honey for the children.",
    "Thank you for the lovely flowers and the note.",
    "He finally fixed the leaking pipe in the bathroom.",
    "Lemon juice will help the fish taste fresh.",
    "The movie was over long before midnight.",
    "Will you feed the puppy while we are away?",
    "A thousand people voted for the new mayor.",
    "The wind pushed the sailboat far from the harbor.",
    "Fresh bread smells wonderful in the morning.",
    "Both of them laughed when the phone fell in the pool.",
    "I think we missed the last bus home.",
    "Who left the yellow umbrella in the hallway?",
    "Seven men worked through the night to finish the bridge.",
    "Her voice was soft, but everyone heard what she said.",
]
SUBJECTS = ["the farmer", "my mother", "a small boy", "the old fisherman", "her brother", "the nurse",
            "our neighbour", "the young woman", "his father", "the wealthy merchant", "a thoughtful teacher",
            "the shy musician", "every visitor", "the lawyer", "my uncle", "the baker", "a weary soldier",
            "the judge", "their cousin", "the pilot"]
VERBS = ["found", "washed", "moved", "pushed", "measured", "fetched", "loved", "painted", "thanked",
         "followed", "wrapped", "shared", "polished", "weighed", "mended", "hummed", "chose", "watched",
         "enjoyed", "borrowed", "threw", "hid", "joined", "fixed"]
OBJECTS = ["the heavy chair", "a leather wallet", "the wooden fence", "seven silver coins", "the thick rope",
           "a yellow jumper", "the broken vase", "both of the puppies", "a bowl of warm soup", "the map",
           "the golden ring", "a huge pile of laundry", "the noisy van", "three ripe plums",
           "the village choir", "an ugly mushroom", "the vivid photograph", "the thin needle",
           "a jar of honey", "the shaggy sheep"]
ENDINGS = ["near the river", "in the morning", "after the football match", "behind the warehouse",
           "with great enthusiasm", "on a foggy Thursday", "before the show began", "without saying a word",
           "during the long journey", "at the edge of the harbour", "for the whole family", "in June",
           "while the kettle boiled", "beneath the azure sky", "as the judge had asked", "at midnight"]
FIELDS = ["path", "speaker", "emotion", "intensity", "text"]


def train_sentences(count: int, seed: int = 0) -> list[str]:
    """`count` distinct subject-verb-object-ending sentences, a fifth of them `Who ...?` questions."""
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    while len(seen) < count:
        subject, verb, obj, ending = (str(rng.choice(words)) for words in (SUBJECTS, VERBS, OBJECTS, ENDINGS))
        statement = f"{subject[0].upper()}{subject[1:]} {verb} {obj} {ending}."
        seen.add(f"Who {verb} {obj} {ending}?" if rng.random() < 0.2 else statement)
    return sorted(seen)


def speak(text: str, voice: str, out: Path, speed: int, pitch: int) -> None:
    """espeak-ng writes a 22050 Hz mono WAV."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(out), text],
                   check=True, capture_output=True)


def synthesise(out_dir: Path, part: str, items: list[tuple[str, str]], seed: int) -> list[dict[str, str]]:
    """Speak each (text, voice) with a random speed and pitch; return manifest rows."""
    rng = np.random.default_rng(seed)
    (out_dir / part).mkdir(parents=True, exist_ok=True)
    rows = []
    for index, (text, voice) in enumerate(items):
        path = Path(part) / f"{part}_{index:04d}.wav"
        speak(text, voice, out_dir / path, speed=int(rng.integers(140, 191)), pitch=int(rng.integers(35, 66)))
        rows.append({"path": str(path), "speaker": f"espeak_{voice}", "emotion": "neutral",
                     "intensity": "0", "text": text})
    return rows


def content_pairs(out_dir: Path, test_rows: list[dict[str, str]], ravdess: Path) -> list[dict[str, str]]:
    """Each test sentence converted towards two emotions, references from held-out actors 23 and 24."""
    emotions = list(EMOTIONS.items())
    rows = []
    for index, row in enumerate(test_rows):
        for k in range(2):
            emotion, code = emotions[(2 * index + k) % len(emotions)]
            reference = ravdess_file(ravdess, ("23", "24")[(index + k) % 2], code, "02", "01", "01")
            rows.append({"id": f"espeak_{index:02d}_{emotion}", "converted": "",
                         "source": str((out_dir / row["path"]).resolve()), "reference": str(reference.resolve()),
                         "target": "", "target_emotion": emotion, "target_strength": "", "text": row["text"]})
    return rows


def unconverted(pairs: list[dict[str, str]]) -> list[dict[str, str]]:
    """One row per test sentence scoring the espeak source itself (the WER floor of Whisper on espeak)."""
    first = {row["source"]: row for row in reversed(pairs)}
    return [{**row, "id": row["id"].rsplit("_", 1)[0] + "_src", "converted": row["source"], "reference": ""}
            for row in sorted(first.values(), key=lambda r: r["id"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--train", type=int, default=400, help="number of training utterances")
    parser.add_argument("--ravdess", type=Path, help="RAVDESS folder: also write content.csv")
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng)")
    sentences = train_sentences(args.train)
    train = synthesise(args.out_dir, "train", [(s, TRAIN_VOICES[i % len(TRAIN_VOICES)])
                                               for i, s in enumerate(sentences)], seed=1)
    test = synthesise(args.out_dir, "test", [(s, TEST_VOICES[i % len(TEST_VOICES)])
                                             for i, s in enumerate(TEST_SENTENCES)], seed=2)
    write_csv(args.out_dir / "train.csv", train, FIELDS)
    write_csv(args.out_dir / "test.csv", test, FIELDS)
    if args.ravdess is not None:
        pairs = content_pairs(args.out_dir, test, args.ravdess)
        write_csv(args.out_dir / "content.csv", pairs, PAIR_FIELDS)
        write_csv(args.out_dir / "content_sources.csv", unconverted(pairs), PAIR_FIELDS)
    print(f"{len(train)} training and {len(test)} test utterances in {args.out_dir}")


if __name__ == "__main__":
    main()
