"""Output limiting, CUDA out-of-memory fallback, and reading only the start of a long reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ainn_cli.audio import LIMIT, read_audio, write_wav
from ainn_cli.errors import DeviceError
from ainn_cli.pipeline import Pipeline, load_pipeline
from tests.conftest import tone


def test_limiter_scales_down_and_reports(tmp_path: Path) -> None:
    seen: list[float] = []
    loud = np.array([0.0, 1.7, -0.5, np.nan] * 2000, dtype=np.float32)
    write_wav(tmp_path / "x.wav", loud, on_limit=seen.append)
    data, _ = sf.read(tmp_path / "x.wav")
    assert seen == [pytest.approx(1.7)]
    assert np.all(np.isfinite(data)) and np.max(np.abs(data)) <= LIMIT + 1e-4
    assert data[1] == pytest.approx(LIMIT, abs=1e-4) and data[2] == pytest.approx(-0.5 * LIMIT / 1.7, abs=1e-4)


def test_quiet_output_is_not_limited(tmp_path: Path) -> None:
    seen: list[float] = []
    write_wav(tmp_path / "y.wav", tone(0.5), on_limit=seen.append)
    assert seen == []


class OutOfMemoryAbove(torch.nn.Module):
    """A vocoder stand-in that 'runs out of memory' on chunks longer than `frames`."""

    def __init__(self, inner: torch.nn.Module, frames: int | None) -> None:
        super().__init__()
        self.inner, self.frames = inner, frames

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        if self.frames is None or mel.shape[-1] > self.frames:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        out: torch.Tensor = self.inner(mel)
        return out


def _pipe(tiny_bundle: Path, frames: int | None) -> Pipeline:
    pipe = load_pipeline(str(tiny_bundle), "cpu")
    pipe.vocoder = OutOfMemoryAbove(pipe.vocoder, frames)
    return pipe


def test_out_of_memory_retries_with_smaller_chunks(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    pipe = _pipe(tiny_bundle, frames=700)
    result = pipe.convert(tone(8.0), tone(1.0, f0=220))  # 689 frames: 2048 and 1024 fail, 512 + context fits
    assert result.wave.shape == (8 * 22050,) and np.isfinite(result.wave).all()


def test_out_of_memory_at_every_size_says_what_to_do(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    with pytest.raises(DeviceError, match="out of memory .* use --device cpu"):
        _pipe(tiny_bundle, frames=None).convert(tone(1.0), tone(1.0))


def test_long_reference_reads_only_its_start(tmp_path: Path) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, np.tile(tone(10.0), 12), 22050)  # two minutes
    assert read_audio(path, max_seconds=30.0).seconds == pytest.approx(30.0)


def test_outputs_get_the_usual_permissions(tmp_path: Path) -> None:
    import os
    import stat

    mask = os.umask(0o022)
    try:
        path = write_wav(tmp_path / "p.wav", tone(0.5))
    finally:
        os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
