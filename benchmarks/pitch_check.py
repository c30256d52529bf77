"""Our YIN against WORLD (pyworld DIO + StoneMask): `python -m benchmarks.pitch_check [--ravdess D] [--librispeech D]`.

Every 12th clip of RAVDESS actors 23-24 and four LibriSpeech clips: per clip, the share of frames voiced
in both whose f0 differs by more than one semitone (gross error), voicing agreement, and the time
each tracker takes (f0 on the mel frames: pyworld with the mel hop as its frame period). Needs the
`eval` extra (pyworld).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from ainn_cli.audio import HOP_LENGTH, SAMPLE_RATE, read_audio
from ainn_cli.corpora.sources import data_root
from ainn_cli.pitch import F0_MAX, F0_MIN, yin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ravdess", type=Path, default=data_root() / "ravdess")
    parser.add_argument("--librispeech", type=Path, default=data_root() / "librispeech")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pyworld
    files = sorted(args.ravdess.glob("Actor_2[34]/*.flac"))[::12] + sorted(args.librispeech.glob("1*/*.flac"))[:4]
    gross, agree, seconds, t_yin, t_world = [], [], 0.0, 0.0, 0.0
    for file in files:
        x = read_audio(file).samples.astype(np.float64)
        seconds += len(x) / SAMPLE_RATE
        start = time.perf_counter()
        ours = yin(x)
        t_yin += time.perf_counter() - start
        start = time.perf_counter()
        period = 1000 * HOP_LENGTH / SAMPLE_RATE  # ms
        f0, t = pyworld.dio(x, SAMPLE_RATE, f0_floor=F0_MIN, f0_ceil=F0_MAX, frame_period=period)
        world = pyworld.stonemask(x, f0, t, SAMPLE_RATE)
        t_world += time.perf_counter() - start
        n = min(len(ours.f0), len(world))
        a, b = ours.f0[:n], world[:n]
        both = (a > 0) & (b > 0)
        agree.append(float(((a > 0) == (b > 0)).mean()))
        if both.any():
            gross.append(float((np.abs(12 * np.log2(a[both] / b[both])) > 1).mean()))
    print(f"{len(files)} clips, {seconds:.1f} s of audio; YIN {t_yin:.2f} s, pyworld DIO+StoneMask {t_world:.2f} s")
    print(f"gross f0 errors (> 1 semitone, frames voiced in both): median {np.median(gross):.1%}, "
          f"mean {np.mean(gross):.1%}; voicing agreement {np.mean(agree):.1%}")


if __name__ == "__main__":
    main()
