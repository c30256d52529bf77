"""Model bundles: one folder, one sub-folder per component, each `config.json` + `model.safetensors`.

    bundle/
      bundle.json                 format, components, labels, audio settings, calibration,
                                  prototypes, and the sha256 of every other file
      content_encoder/{config.json, model.safetensors}
      emotion_encoder/...  recognizer/...  generator/...  vocoder/...

Loading verifies every hash and loads every state dict strictly; any mismatch is a BundleError
that names the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ainn_cli import audio
from ainn_cli.content import ContentEncoder, ContentEncoderConfig
from ainn_cli.emotion import EmotionEncoder, EmotionEncoderConfig
from ainn_cli.errors import BundleError
from ainn_cli.generator import Generator, GeneratorConfig
from ainn_cli.recognizer import Recognizer, RecognizerConfig
from ainn_cli.vocoder import HifiGan, VocoderConfig

FORMAT_VERSION = 1
MANIFEST = "bundle.json"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"

# component name -> (config dataclass, module class)
COMPONENTS: dict[str, tuple[type[Any], type[nn.Module]]] = {
    "content_encoder": (ContentEncoderConfig, ContentEncoder),
    "emotion_encoder": (EmotionEncoderConfig, EmotionEncoder),
    "recognizer": (RecognizerConfig, Recognizer),
    "generator": (GeneratorConfig, Generator),
    "vocoder": (VocoderConfig, HifiGan),
}


@dataclass(frozen=True)
class Calibration:
    """Per-emotion linear map of raw Rs output to [0, 1]: (raw - low) / (high - low), clipped."""

    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)

    def calibrate(self, label: str, raw: float) -> float:
        low, high = self.low.get(label, 0.0), self.high.get(label, 1.0)
        return min(1.0, max(0.0, (raw - low) / max(high - low, 1e-6)))

    def raw(self, label: str, strength: float) -> float:
        low, high = self.low.get(label, 0.0), self.high.get(label, 1.0)
        return low + strength * (high - low)


@dataclass(frozen=True)
class BundleInfo:
    """Everything in bundle.json besides the weights."""

    name: str
    labels: tuple[str, ...]
    calibration: Calibration = field(default_factory=Calibration)
    prototypes: dict[str, list[float]] = field(default_factory=dict)  # label -> mean emotion embedding
    metadata: dict[str, Any] = field(default_factory=dict)  # training data, figures, licences


@dataclass
class Bundle:
    """Loaded modules (on CPU, fp32, eval mode) and where they came from."""

    info: BundleInfo
    modules: dict[str, nn.Module]
    path: Path

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in m.parameters()) for name, m in self.modules.items()}


def audio_settings() -> dict[str, Any]:
    return {
        "sample_rate": audio.SAMPLE_RATE, "n_fft": audio.N_FFT, "hop_length": audio.HOP_LENGTH,
        "n_mels": audio.N_MELS, "f_min": audio.F_MIN, "f_max": audio.F_MAX, "log_clamp": audio.LOG_CLAMP,
    }


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_bundle(out_dir: Path, info: BundleInfo, modules: dict[str, nn.Module], half: bool = True) -> Path:
    """Write a bundle atomically (build in a temp folder, then rename); fp16 weights when `half`."""
    out_dir = Path(out_dir)
    missing = set(COMPONENTS) - set(modules)
    if missing:
        raise BundleError(f"cannot save bundle: missing components {sorted(missing)}")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        hashes = {}
        for name, module in modules.items():
            hashes.update(_save_component(tmp, name, module, half))
        manifest = {
            "format_version": FORMAT_VERSION, "name": info.name, "components": sorted(modules),
            "labels": list(info.labels), "audio": audio_settings(),
            "calibration": dataclasses.asdict(info.calibration), "prototypes": info.prototypes,
            "metadata": info.metadata, "files": hashes,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _save_component(root: Path, name: str, module: nn.Module, half: bool) -> dict[str, str]:
    folder = root / name
    folder.mkdir()
    config: Any = module.config  # every component keeps its frozen dataclass config
    (folder / CONFIG).write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    return {f"{name}/{f}": sha256(folder / f) for f in (CONFIG, WEIGHTS)}


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and check bundle.json; raise BundleError naming the problem."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST})")
    try:
        manifest: dict[str, Any] = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{file}: not valid JSON ({err})") from None
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(
            f"{file}: bundle format {version!r} is newer than this ainn understands ({FORMAT_VERSION}); upgrade ainn"
        )
    if manifest.get("audio") != audio_settings():
        raise BundleError(f"{file}: audio settings {manifest.get('audio')} differ from ours {audio_settings()}")
    return manifest


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Check that every file listed in bundle.json exists and has its recorded sha256."""
    for name, expected in manifest.get("files", {}).items():
        file = Path(path) / name
        if not file.is_file():
            raise BundleError(f"{file}: missing from the bundle (re-download or re-export it)")
        if sha256(file) != expected:
            raise BundleError(f"{file}: sha256 mismatch, the file is corrupted or was changed (re-download it)")


def load_bundle(path: Path) -> Bundle:
    """Verify and load a bundle folder into fp32 CPU modules in eval mode."""
    path = Path(path)
    manifest = read_manifest(path)
    verify_files(path, manifest)
    modules = {}
    for name in COMPONENTS:
        if f"{name}/{WEIGHTS}" not in manifest.get("files", {}):
            raise BundleError(f"{path / MANIFEST}: component {name!r} is not listed")
        modules[name] = load_component(path / name, name)
    return Bundle(info=_info(manifest), modules=modules, path=path)


def _info(manifest: dict[str, Any]) -> BundleInfo:
    cal = manifest.get("calibration", {})
    return BundleInfo(
        name=manifest.get("name", "unnamed"), labels=tuple(manifest["labels"]),
        calibration=Calibration(low=cal.get("low", {}), high=cal.get("high", {})),
        prototypes=manifest.get("prototypes", {}), metadata=manifest.get("metadata", {}),
    )


def load_component(folder: Path, name: str) -> nn.Module:
    """Rebuild one module from its config.json and load its weights strictly."""
    config_cls, module_cls = COMPONENTS[name]
    config = config_from_json(config_cls, folder / CONFIG)
    module = module_cls(config)
    try:
        state = load_file(str(folder / WEIGHTS))
    except (SafetensorError, OSError) as err:
        raise BundleError(f"{folder / WEIGHTS}: unreadable weights ({err})") from None
    load_strict(module, {k: v.float() for k, v in state.items()}, folder / WEIGHTS)
    return module.eval()


def config_from_json(config_cls: type[Any], file: Path) -> Any:
    try:
        raw = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise BundleError(f"{file}: unreadable config ({err})") from None
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(raw) - known
    if unknown:
        raise BundleError(f"{file}: unknown fields {sorted(unknown)} (bundle made by a newer ainn?)")
    return config_cls(**{k: _tuples(v) for k, v in raw.items()})


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """load_state_dict(strict=True) with a readable key and shape diff on failure."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                 f"shape {shapes[:3]}" if shapes else ""]
        raise BundleError(f"{source}: weights do not match config ({'; '.join(p for p in parts if p)})")
    module.load_state_dict(state, strict=True)
