from pathlib import Path

from ainn_cli.pipeline import load_pipeline
from tests.conftest import tone


def test_tiny_pipeline_converts(tiny_bundle: Path) -> None:
    pipe = load_pipeline(str(tiny_bundle), "cpu")
    result = pipe.convert(tone(1.0), tone(1.2, f0=200))
    assert result.wave.shape == (22050,)
