"""Long inputs: chunked conversion has no seam, and a 20-minute file converts in bounded memory."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from ainn_cli.mel import log_mel
from ainn_cli.pipeline import load_pipeline
from tests.conftest import tone

PEAK_RSS_LIMIT_MB = 1500  # the 20-minute file alone is 106 MB as float32 at 22050 Hz


def test_vocoder_chunks_are_exact_with_its_receptive_radius(tiny_bundle: Path) -> None:
    """Vocoding in 64-frame chunks with 15 frames of context gives the one-pass waveform; no context does not."""
    pipe = load_pipeline(str(tiny_bundle), "cpu")
    mel = torch.randn(1, 80, 300, generator=torch.Generator().manual_seed(0)) - 4
    whole = pipe.vocode(mel, chunk=10_000)
    exact = np.abs(pipe.vocode(mel, chunk=64) - whole).max()
    pipe.vocoder_context = 0
    blind = np.abs(pipe.vocode(mel, chunk=64) - whole).max()
    assert exact < 1e-6 and blind > 1e-4, (exact, blind)  # the waveform peaks at about 0.1


def test_chunks_join_without_a_seam() -> None:
    """Default model, 12 s input: 256-frame chunks stay close to one pass, with no jump at the boundaries."""
    pipe = load_pipeline(device="cpu")
    source, reference = tone(12.0, f0=120, seed=1), tone(3.0, f0=230, seed=2)
    whole = pipe.convert(source, reference).wave
    pipe.chunk_frames = 256
    chunked = pipe.convert(source, reference).wave
    gap = float((log_mel(whole) - log_mel(chunked)).abs().mean())
    change = float((log_mel(whole) - log_mel(source)).abs().mean())
    assert whole.shape == chunked.shape == source.shape
    assert gap < 0.15 * change, f"chunked vs whole mel L1 {gap:.3f}, conversion changes {change:.3f}"
    mel = log_mel(chunked)[0].numpy()
    jumps = np.abs(np.diff(mel, axis=1)).mean(axis=0)  # frame-to-frame change
    seams = [jumps[k * 256 - 1] for k in range(1, mel.shape[1] // 256)]
    assert max(seams) < 2 * float(np.median(jumps)), "a chunk boundary is audible as a jump"


def test_twenty_minute_file_in_bounded_memory(tiny_bundle: Path, tmp_path: Path) -> None:
    src, ref, out = tmp_path / "long.wav", tmp_path / "ref.wav", tmp_path / "out.wav"
    block = (tone(60.0, seed=3) * 32767).astype(np.int16)
    with sf.SoundFile(src, "w", 22050, 1, subtype="PCM_16") as handle:
        for _ in range(20):
            handle.write(block)
    sf.write(ref, tone(2.0, f0=220), 22050)
    command = [sys.executable, "-m", "ainn_cli", "convert", str(src), str(ref), "-o", str(out),
               "--model", str(tiny_bundle), "--device", "cpu", "--quiet"]
    subprocess.run(command, check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    info = sf.info(out)
    assert info.frames == 20 * 60 * 22050 and info.samplerate == 22050
    assert peak_mb < PEAK_RSS_LIMIT_MB, f"peak RSS {peak_mb:.0f} MB"
