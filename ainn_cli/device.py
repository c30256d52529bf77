"""Pick the torch device once, and say clearly when a requested one is missing."""

from __future__ import annotations

import re

import torch

from ainn_cli.errors import DeviceError, UsageError

_DEVICE = re.compile(r"^(auto|cpu|cuda(:[0-9]{1,4})?)$", re.ASCII)  # ASCII digits: int() reads others too


def resolve_device(spec: str = "auto") -> torch.device:
    """`auto` -> CUDA when present else CPU; `cpu`; `cuda` / `cuda:N` only when that GPU exists."""
    spec = spec.strip().lower()
    if not _DEVICE.match(spec):
        shown = ascii(spec[:40])[1:-1] + ("..." if len(spec) > 40 else "")  # one printable line, whatever was typed
        raise UsageError(f"unknown device '{shown}' (use auto, cpu, cuda or cuda:N)")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r} requested but CUDA is not available here (use --device cpu)")
        if (device.index or 0) >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r} requested but only {torch.cuda.device_count()} GPU(s) exist")
    return device
