"""Start a run from an exported bundle's weights (e.g. the paper model) instead of random ones.

Tensors whose shapes match are copied. A generator that gains input channels (the prosody variant
reads ln f0, voicing and energy next to the content) keeps its trained weights for the old channels
and starts the new ones at zero, so it first behaves exactly as the bundle's generator did.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from ainn_cli.bundle import WEIGHTS, read_manifest, verify_files
from ainn_cli.errors import UsageError


def warm_start(components: dict[str, nn.Module], bundle: Path) -> dict[str, int]:
    """Copy a bundle's weights into `components`; returns how many tensors each component took."""
    if not (Path(bundle) / "bundle.json").is_file():
        raise UsageError(f"init_bundle {bundle}: not a model bundle folder")
    manifest = read_manifest(Path(bundle))
    verify_files(Path(bundle), manifest)  # names inside the bundle, sizes and hashes, before any weight is read
    taken = {}
    for name, module in components.items():
        file = Path(bundle) / name / WEIGHTS
        if f"{name}/{WEIGHTS}" in manifest["files"]:
            taken[name] = _copy_matching(module, load_file(str(file)))
    return taken


@torch.no_grad()
def _copy_matching(module: nn.Module, state: dict[str, torch.Tensor]) -> int:
    copied = 0
    for key, target in module.state_dict().items():
        source = state.get(key)
        if source is None:
            continue
        if source.shape == target.shape:
            target.copy_(source.to(target.dtype))
        elif source.dim() == 3 and source.shape[0] == target.shape[0] and source.shape[1] < target.shape[1]:
            target.zero_()
            target[:, : source.shape[1]] = source.to(target.dtype)  # conv weight (out, in, k): new inputs at 0
        else:
            continue
        copied += 1
    return copied
