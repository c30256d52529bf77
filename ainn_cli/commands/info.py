"""`ainn info` and `ainn export`: what a bundle holds, and a Hub-ready copy of it."""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from ainn_cli import __version__
from ainn_cli.commands.common import console, load_model

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline


@dataclass(frozen=True)
class InfoOptions:
    """`ainn info`: versions, device and the bundle's components."""

    model: str | None = None
    device: str = "auto"
    as_json: bool = False


@dataclass(frozen=True)
class ExportOptions:
    """`ainn export`: a Hub-ready copy of `bundle` (folder, registry name or Hub id) in `out_dir`."""

    bundle: str
    out_dir: Path
    overwrite: bool = False


@dataclass(frozen=True)
class Info:
    """What `ainn info` prints, in its order."""

    ainn: str
    python: str
    torch: str
    auto_device: str
    device: str
    threads: int
    bundle: str
    path: str
    labels: list[str]
    parameters: dict[str, int]
    emotions_without_reference: list[str]


def run_info(options: InfoOptions) -> None:
    """Print versions, the device auto would choose, and the bundle's components (or all of it as JSON)."""
    info = _info(load_model(options.model, options.device))
    if options.as_json:
        print(json.dumps(dataclasses.asdict(info)))
        return
    for field in dataclasses.fields(info):
        if field.name == "parameters":
            for name, count in info.parameters.items():
                console.print(f"  {name:<16} {count / 1e6:7.2f} M parameters")
        else:
            console.print(f"{field.name:<12} {getattr(info, field.name)}", highlight=False)


def _info(pipe: Pipeline) -> Info:
    import torch

    from ainn_cli.device import resolve_device

    bundle = pipe.bundle
    return Info(
        ainn=__version__, python=platform.python_version(), torch=torch.__version__,
        auto_device=str(resolve_device("auto")), device=str(pipe.device), threads=torch.get_num_threads(),
        bundle=bundle.info.name, path=str(bundle.path), labels=list(bundle.info.labels),
        parameters=bundle.parameter_counts(), emotions_without_reference=sorted(bundle.info.prototypes),
    )


def run_export(options: ExportOptions) -> Path:
    """Write the Hub-ready copy (`card.export_for_hub`) and say how to upload it; returns the folder."""
    from ainn_cli.card import export_for_hub

    path = export_for_hub(options.bundle, options.out_dir, overwrite=options.overwrite)
    typer.echo(f"wrote {path} (upload with: hf upload OWNER/NAME {path} .)")
    return path
