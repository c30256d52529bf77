"""Speed of ainn on this machine: `python -m benchmarks.speed [--quick] [--out results.json]`.

For 1 s, 5 s and 30 s clips built from samples/ it measures, in one process and on the same clips:
  (a) a full ainn conversion: features + AINN + vocoder (`Pipeline.convert`);
  (b) our vocoder alone on the source mel (`Pipeline.vocode`);
  (c) copy-synthesis with a reference-style HiFi-GAN V1 (weight norm removed, torch.no_grad, fp32,
      the whole mel at once), loaded with the same weights;
  (d) (a) and (c) again on pause-free speech: the sample with its leading and trailing silence cut, tiled.
      The pipeline does not vocode frames 60 dB under the loudest (`Pipeline.vocode`), which the sample's
      pauses are, so (d) is the ratio when there is nothing to skip.
Real-time factor = compute seconds / audio seconds, the median of several runs after a warm-up; the
three are run in turns (a, b, c, a, b, c, ...) so that a busy machine slows them alike.
It also reports peak RSS, the cold start of a first conversion in a fresh process, and the
throughput of `ainn convert` on a folder of 100 one-second files.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ainn_cli.audio import HOP_LENGTH, SAMPLE_RATE, read_audio
from ainn_cli.mel import log_mel
from ainn_cli.pipeline import Pipeline, load_pipeline
from ainn_cli.pitch import energy
from ainn_cli.prosody import speech_span
from benchmarks.reference_hifigan import ReferenceGenerator, remove_all_weight_norm

ROOT = Path(__file__).resolve().parent.parent
SOURCE, REFERENCE = ROOT / "samples" / "neutral_actor23.flac", ROOT / "samples" / "angry_actor24.flac"


def clip(seconds: float, pause_free: bool = False) -> np.ndarray:
    """The neutral sample tiled to `seconds` (with `pause_free`, its speech alone: silences cut)."""
    wave = read_audio(SOURCE).samples
    if pause_free:
        wave = speech_only(wave)
    return np.tile(wave, int(np.ceil(seconds * SAMPLE_RATE / len(wave))))[: int(seconds * SAMPLE_RATE)]


def speech_only(wave: np.ndarray) -> np.ndarray:
    """`wave` from its first to its last frame within 40 dB of its loudest (the leading and trailing silence cut)."""
    first, last = (int(x[0]) for x in speech_span(energy(log_mel(wave))))
    return wave[first * HOP_LENGTH : last * HOP_LENGTH]


def interleaved_seconds(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median wall seconds of each function, after one warm-up each, timed in turns: A, B, ..., A, B, ..."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def reference_vocoder(pipe: Pipeline) -> torch.nn.Module:
    """The reference generator carrying exactly our vocoder's weights (from the bundle's `HifiGan`)."""
    vocoder = pipe.bundle.modules["vocoder"]
    model = remove_all_weight_norm(ReferenceGenerator(vocoder.config))  # type: ignore[arg-type]
    model.load_state_dict(vocoder.state_dict())
    return model.eval()


def measure_clip(pipe: Pipeline, reference: torch.nn.Module, seconds: float, runs: int) -> dict[str, float]:
    source, ref = clip(seconds), read_audio(REFERENCE).samples
    mel = log_mel(source).to(pipe.device)
    speech = clip(seconds, pause_free=True)
    speech_mel = log_mel(speech).to(pipe.device)

    def plain() -> None:
        with torch.no_grad():
            reference(mel)
        _sync(pipe.device)

    def plain_speech() -> None:
        with torch.no_grad():
            reference(speech_mel)
        _sync(pipe.device)

    def vocode() -> None:
        with torch.inference_mode():
            pipe.vocode(mel)  # returns on the host, so CUDA work is complete

    def convert(wave: np.ndarray) -> None:
        pipe.reference_rates.clear()  # one conversion of one file: it reads its reference's speaking rate too
        pipe.convert(wave, ref)

    medians = interleaved_seconds(
        {"full": lambda: convert(source), "vocoder": vocode, "reference": plain,
         "full_speech": lambda: convert(speech), "reference_speech": plain_speech}, runs
    )
    full, vocoder, baseline = medians["full"], medians["vocoder"], medians["reference"]
    return {"seconds": seconds, "rtf_full": full / seconds, "rtf_vocoder": vocoder / seconds,
            "rtf_reference": baseline / seconds, "ratio_full_to_reference": full / baseline,
            "ratio_pause_free": medians["full_speech"] / medians["reference_speech"]}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cold_start(device: str, model: str) -> float:
    """Wall time of `ainn convert` on a 5 s clip in a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.wav"
        sf.write(src, clip(5.0), SAMPLE_RATE)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ainn_cli", "convert", str(src), str(REFERENCE), "-o",
                        str(Path(tmp) / "out.wav"), "--model", model, "--device", device, "--quiet"], check=True)
        return time.perf_counter() - start


def batch_throughput(files: int, device: str, model: str) -> float:
    """Files per second of `ainn convert DIR REF` on `files` one-second clips (one process)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for i in range(files):
            sf.write(folder / f"f{i:03d}.wav", clip(1.0), SAMPLE_RATE)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ainn_cli", "convert", str(folder), str(REFERENCE), "-o",
                        str(Path(tmp) / "out"), "--model", model, "--device", device, "--quiet"], check=True)
        return files / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 s and 5 s clips, 3 runs, 20-file batch")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    parser.add_argument("--model", default="default", help="bundle to time (default: the embedded default)")
    args = parser.parse_args()
    pipe = load_pipeline(args.model, device=args.device)
    reference = reference_vocoder(pipe).to(pipe.device)
    lengths, runs = ((1.0, 5.0), 3) if args.quick else ((1.0, 5.0, 30.0), 5)
    rows = [measure_clip(pipe, reference, s, runs) for s in lengths]
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads",
        "torch": torch.__version__, "clips": rows, "device": str(pipe.device), "model": args.model,
        "cold_start_s": cold_start(args.device, args.model),
        "batch_files_per_s": batch_throughput(20 if args.quick else 100, args.device, args.model),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    print("| clip | (a) full RTF | (b) vocoder RTF | (c) reference RTF | (a)/(c) | (d) pause-free (a)/(c) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['seconds']:.0f} s | {r['rtf_full']:.3f} | {r['rtf_vocoder']:.3f} | {r['rtf_reference']:.3f} "
              f"| {r['ratio_full_to_reference']:.2f} | {r['ratio_pause_free']:.2f} |")
    print(json.dumps({k: v for k, v in results.items() if k != "clips"}, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
