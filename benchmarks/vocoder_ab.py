"""Our vocoder against the reference, timed in turns: `python -m benchmarks.vocoder_ab [--seconds 1 5 30]`.

Run it on one core (`OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE`) to compare with a busy machine. For each
clip it alternates, on the same log-mel and weights:
  reference  benchmarks.reference_hifigan (weight norm removed, torch.no_grad, fp32, whole mel)
  plain      ainn's `HifiGan.forward`
  inference  `HifiGan.prepare_for_inference()` (channels-last, tiled, in place)
and prints the medians, their ratios to the reference, and how far `inference` is from `plain`: the max
abs waveform difference and the L1 distance of the two waveforms' log-mels. It also prints the cold
start of the inference path: building it plus its first call on a 1 s mel.
"""

from __future__ import annotations

import argparse
import time

import torch

from ainn_cli.hub import registry
from ainn_cli.mel import log_mel
from ainn_cli.models.vocoder import HifiGan
from benchmarks.reference_hifigan import ReferenceGenerator, remove_all_weight_norm
from benchmarks.speed import clip, interleaved_seconds


def load_vocoders() -> tuple[HifiGan, torch.nn.Module]:
    """The embedded bundle's vocoder and the reference generator with the same weights."""
    from ainn_cli.bundle import load_component

    ours: HifiGan = load_component(registry()["default"] / "vocoder", "vocoder")  # type: ignore[assignment]
    reference = remove_all_weight_norm(ReferenceGenerator(ours.config))
    reference.load_state_dict(ours.state_dict())
    return ours, reference.eval()


def cold_start(model: HifiGan) -> float:
    """Seconds to build the inference vocoder and run it once on a 1 s mel."""
    mel = log_mel(clip(1.0))
    start = time.perf_counter()
    with torch.inference_mode():
        model.prepare_for_inference()(mel)
    return time.perf_counter() - start


def compare(model: HifiGan, reference: torch.nn.Module, seconds: float, runs: int) -> str:
    """One markdown row: medians, ratios to the reference, and the inference path's difference to plain."""
    mel, fast = log_mel(clip(seconds)), model.prepare_for_inference()
    with torch.inference_mode():
        plain_wave, fast_wave = model(mel), fast(mel)
        medians = interleaved_seconds(
            {"reference": lambda: reference(mel), "plain": lambda: model(mel), "inference": lambda: fast(mel)}, runs
        )
    max_diff = float((fast_wave - plain_wave).abs().max())
    mel_l1 = float((log_mel(fast_wave[0]) - log_mel(plain_wave[0])).abs().mean())
    ref = medians["reference"]
    return (f"| {seconds:.0f} s | {ref:.2f} | {medians['plain'] / ref:.3f} | {medians['inference'] / ref:.3f} "
            f"| {max_diff:.1e} | {mel_l1:.1e} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[1.0, 5.0, 30.0], help="clip lengths")
    parser.add_argument("--runs", type=int, default=5, help="timed turns per clip")
    args = parser.parse_args()
    model, reference = load_vocoders()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"cold start of the inference path: {cold_start(model):.2f} s")
    print("| clip | reference s | plain / ref | inference / ref | max abs diff | mel L1 |")
    print("|---|---|---|---|---|---|")
    for seconds in args.seconds:
        print(compare(model, reference, seconds, args.runs), flush=True)


if __name__ == "__main__":
    main()
