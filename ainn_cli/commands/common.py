"""What the command functions share: the stdout console for result lines, reading inputs with their warnings,
and loading the model (the one place a command imports torch)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from ainn_cli.audio import REFERENCE_MAX_SECONDS, Audio, read_audio
from ainn_cli.console import Printable, say
from ainn_cli.errors import UsageError

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline

# a result line is one line, also in a pipe or a log (no wrap, no padding); any file name prints (`Printable`)
console = Console(soft_wrap=True, file=Printable("stdout"))  # type: ignore[arg-type]


def read_reference(path: Path) -> Audio:
    return warned(read_audio(path, max_seconds=REFERENCE_MAX_SECONDS))


def warned(audio: Audio) -> Audio:
    """Print an input's warnings (clipping, NaN, loudness) once, when it is read."""
    for warning in audio.warnings:
        say(f"{audio.path}: {warning}", "warning")
    return audio


def load_model(model: str | None, device: str, half: bool = False) -> Pipeline:
    """The model (this imports torch)."""
    from ainn_cli.pipeline import load_pipeline

    return load_pipeline(model, device, half)


def check_emotion(emotion: str, model: str | None) -> None:
    """Refuse an emotion the model has no prototype for, reading its bundle.json only (no torch), when the model is
    a registry name or a local folder; a Hub model is checked once it is loaded."""
    from ainn_cli.bundle_files import MANIFEST, read_json
    from ainn_cli.hub import DEFAULT_MODEL, registry

    spec = model or DEFAULT_MODEL
    folder = registry().get(spec) or Path(spec).expanduser()
    if not (folder / MANIFEST).is_file():
        return
    manifest = read_json(folder / MANIFEST)
    prototypes = manifest.get("prototypes") if isinstance(manifest, dict) else None
    if isinstance(prototypes, dict) and emotion not in prototypes:
        raise UsageError(f"unknown emotion {emotion!r} (this model knows: {', '.join(prototypes) or 'none'})")
