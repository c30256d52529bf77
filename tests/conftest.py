"""Shared fixtures: synthetic speech-like audio and tiny random-weight bundles (never the network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import Result

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.bundle import BundleInfo, Calibration, save_bundle
from ainn_cli.emotions import LABELS
from ainn_cli.models.content import ContentEncoder, ContentEncoderConfig
from ainn_cli.models.emotion import EmotionEncoder, EmotionEncoderConfig
from ainn_cli.models.generator import Generator, GeneratorConfig
from ainn_cli.models.recognizer import Recognizer, RecognizerConfig
from ainn_cli.models.vocoder import HifiGan, VocoderConfig

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"

TINY_VOCODER = VocoderConfig(upsample_initial_channel=32, resblock_kernel_sizes=(3,), resblock_dilation_sizes=((1,),))


def tone(seconds: float = 1.0, rate: int = SAMPLE_RATE, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """Voiced-speech-like test signal `(N,)`: harmonics of a wobbling f0 under a syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    pitch = f0 * (1 + 0.1 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.2 * wave * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def tiny_modules(seed: int = 0) -> dict[str, torch.nn.Module]:
    torch.manual_seed(seed)
    return {
        "content_encoder": ContentEncoder(ContentEncoderConfig(channels=16, layers=1, content_dim=8, timbre_dim=8)),
        "emotion_encoder": EmotionEncoder(EmotionEncoderConfig(channels=16, layers=1, embed_dim=8)),
        "recognizer": Recognizer(RecognizerConfig(channels=16, layers=1)),
        "generator": Generator(GeneratorConfig(content_dim=8, emotion_dim=8, timbre_dim=8, channels=16, layers=2)),
        "vocoder": HifiGan(TINY_VOCODER),
    }


def make_tiny_bundle(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    protos = {label: list(map(float, rng.standard_normal(8) / np.sqrt(8))) for label in LABELS}
    info = BundleInfo(
        name="tiny", labels=LABELS,
        calibration=Calibration(low={k: 0.2 for k in LABELS[1:]}, high={k: 0.8 for k in LABELS[1:]}),
        prototypes=protos, metadata={"sources": ["synthetic"]},
    )
    return save_bundle(path, info, tiny_modules(seed))


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete random-weight bundle; treat it as read-only (copy it to corrupt it)."""
    return make_tiny_bundle(tmp_path_factory.mktemp("bundles") / "tiny")


@pytest.fixture()
def wav(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Factory: write a test signal to tmp_path and return its path."""

    def write(name: str = "a.wav", seconds: float = 1.0, rate: int = SAMPLE_RATE, f0: float = 140.0,
              data: np.ndarray | None = None, subtype: str | None = None) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(seconds, rate, f0) if data is None else data, rate, subtype=subtype)
        return path

    return write


def one_line(result: Result, code: int, *needles: str) -> str:
    """A CliRunner result that failed cleanly: exit `code`, no traceback, one stderr line holding `needles`."""
    assert "Traceback" not in result.output and "Aborted" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
