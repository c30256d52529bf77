"""Refresh samples/converted: `python -m benchmarks.sample_figures [--model M] [--out samples/converted]`.

Converts samples/neutral_actor23.flac towards actor 24's angry, happy, sad and surprise clips at
strength 0.5 and 1, writes the wavs, and one PNG per example: log-mel and YIN f0 of the source, the
reference and both outputs, on one time axis, so a reader sees what moved (pitch, loudness, timing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ainn_cli.audio import FRAME_RATE, read_audio, write_wav
from ainn_cli.mel import log_mel
from ainn_cli.pipeline import load_pipeline
from ainn_cli.pitch import yin

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
SOURCE = "neutral_actor23"
TARGETS = ("angry", "happy", "sad", "surprise")
LEVELS = (0.5, 1.0)


def panel(ax: object, wave: np.ndarray, title: str, seconds: float) -> None:
    """Log-mel image with the f0 track (Hz, right axis) of `(N,)`."""
    mel = log_mel(wave)[0].numpy()
    pitch = yin(wave)
    t = np.arange(mel.shape[1]) / FRAME_RATE
    ax.imshow(mel, origin="lower", aspect="auto", extent=(0, t[-1] if len(t) else 0, 0, 80), vmin=-11, vmax=2)  # type: ignore[attr-defined]
    ax.set_xlim(0, seconds)  # type: ignore[attr-defined]
    ax.set_ylabel("mel band")  # type: ignore[attr-defined]
    ax.set_title(title, fontsize=9, loc="left")  # type: ignore[attr-defined]
    twin = ax.twinx()  # type: ignore[attr-defined]
    f0 = np.where(pitch.voiced, pitch.f0, np.nan)
    twin.plot(t[: len(f0)], f0[: len(t)], color="white", lw=1.2)
    twin.set_ylim(50, 500)
    twin.set_ylabel("f0 (Hz)")


def figure(path: Path, rows: list[tuple[str, np.ndarray]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = max(len(w) for _, w in rows) / 22050
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 2.1 * len(rows)), sharex=True)
    for ax, (title, wave) in zip(axes, rows):
        panel(ax, wave, title, seconds)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", type=Path, default=SAMPLES / "converted")
    args = parser.parse_args()
    pipe = load_pipeline(args.model, device="cpu")
    source = read_audio(SAMPLES / f"{SOURCE}.flac").samples
    args.out.mkdir(parents=True, exist_ok=True)
    for emotion in TARGETS:
        reference = read_audio(SAMPLES / f"{emotion}_actor24.flac").samples
        rows = [(f"source: {SOURCE}.flac (neutral, male)", source),
                (f"reference: {emotion}_actor24.flac (strong {emotion}, female)", reference)]
        for level in LEVELS:
            result = pipe.convert(source, reference, strength=level)
            name = f"{SOURCE}-to-{emotion}-s{level}.wav"
            write_wav(args.out / name, result.wave, overwrite=True)
            change = result.prosody
            ending = "" if change is None or not change.pitch_end_semitones else (
                f" ending {change.pitch_end_semitones:+.1f} st")
            said = "" if change is None else (f": pitch {change.pitch_semitones:+.1f} st{ending}, "
                                              f"{change.energy_db:+.1f} dB, duration x{change.duration:.2f}")
            rows.append((f"output at --strength {level}{said}", result.wave))
        figure(args.out / f"{SOURCE}-to-{emotion}.png", rows)
        print(emotion, "done", flush=True)


if __name__ == "__main__":
    main()
