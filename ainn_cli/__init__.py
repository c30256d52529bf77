"""ainn: emotional voice conversion with AINN (Chen et al., Interspeech 2023), offline on a CPU.

    from ainn_cli import load_pipeline
    pipe = load_pipeline()                      # the embedded default bundle
    result = pipe.convert(source, reference)    # Audio or (N,) float arrays at 22050 Hz
    reading = pipe.strength(reference)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline, load_pipeline

__all__ = ["Pipeline", "__version__", "load_pipeline"]


def __getattr__(name: str) -> Any:
    """Import torch only when the Python API is used, so `ainn --help` stays instant."""
    if name in {"load_pipeline", "Pipeline"}:
        from ainn_cli import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'ainn_cli' has no attribute {name!r}")
