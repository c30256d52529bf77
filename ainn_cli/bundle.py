"""Model bundles: one folder, one sub-folder per component, each `config.json` + `model.safetensors`.

    bundle/
      bundle.json                 format, components, labels, audio settings, calibration,
                                  prototypes, and the sha256 of every other file
      content_encoder/{config.json, model.safetensors}
      emotion_encoder/...  recognizer/...  generator/...  vocoder/...

A bundle is untrusted data and a closed world. Every name in bundle.json is a plain relative path
(`component/file`, no `..`, nothing absolute) that must resolve inside the folder (a symbolic link may
point only into the folder, or into the `blobs/` of the Hugging Face cache repo holding the snapshot);
all of that is checked before any listed file is read. Then every sha256 is verified, every config is
type-, range- and size-checked (ainn_cli/limits.py), every state dict is loaded strictly and must be
finite. Any problem is one BundleError that names the file and what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from ainn_cli import audio, limits
from ainn_cli.bundle_files import MANIFEST as MANIFEST  # re-exported: the name other modules import from here
from ainn_cli.bundle_files import (
    MAX_JSON_BYTES,
    bundle_file,
    check_destination,
    listed_files,
    read_json,
    swap_in,
    temp_beside,
)
from ainn_cli.bundle_files import sha256 as sha256
from ainn_cli.bundle_files import verify_files as _verify_files
from ainn_cli.emotions import strength_of
from ainn_cli.errors import BundleError
from ainn_cli.files import replace_file, usual_permissions
from ainn_cli.models.content import ContentEncoder, ContentEncoderConfig
from ainn_cli.models.emotion import EmotionEncoder, EmotionEncoderConfig
from ainn_cli.models.generator import Generator, GeneratorConfig
from ainn_cli.models.predictor import ProsodyPredictor, ProsodyPredictorConfig
from ainn_cli.models.reader import Reader, ReaderConfig
from ainn_cli.models.recognizer import Recognizer, RecognizerConfig
from ainn_cli.models.vocoder import HifiGan, VocoderConfig

FORMAT_VERSION = 1
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
MAX_BYTES = {".json": MAX_JSON_BYTES, ".safetensors": limits.MAX_PARAMETERS * 4 + (16 << 20)}  # fp32 at the budget
WEIGHT_DTYPES = ("F16", "BF16", "F32")

# component name -> (config dataclass, module class)
COMPONENTS: dict[str, tuple[type[Any], type[nn.Module]]] = {
    "content_encoder": (ContentEncoderConfig, ContentEncoder),
    "emotion_encoder": (EmotionEncoderConfig, EmotionEncoder),
    "recognizer": (RecognizerConfig, Recognizer),
    "generator": (GeneratorConfig, Generator),
    "vocoder": (VocoderConfig, HifiGan),
    "prosody": (ProsodyPredictorConfig, ProsodyPredictor),
    "reader": (ReaderConfig, Reader),
}
# only bundles of the prosody variant have a prosody predictor; a reader (emotion read from Whisper's encoder
# states, models/reader.py) replaces R's reading where a bundle has one
OPTIONAL_COMPONENTS = frozenset({"prosody", "reader"})


@dataclass(frozen=True)
class Calibration:
    """Per-emotion linear map of raw Rs output to [0, 1]: (raw - low) / (high - low), clipped."""

    low: dict[str, float] = field(default_factory=dict)
    high: dict[str, float] = field(default_factory=dict)

    def calibrate(self, label: str, raw: float) -> float:
        """Raw Rs -> strength in [0, 1]; 0 for neutral."""
        low, high = self.low.get(label, 0.0), self.high.get(label, 1.0)
        return strength_of(label, min(1.0, max(0.0, (raw - low) / max(high - low, 1e-6))))

    def raw(self, label: str, strength: float) -> float:
        """Strength in [0, 1] -> the raw Rs value G is given; 0 for neutral."""
        low, high = self.low.get(label, 0.0), self.high.get(label, 1.0)
        return strength_of(label, low + strength * (high - low))


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
    """Modules as loaded (on the CPU, fp32, eval mode; the pipeline then moves them to its device and dtype in
    place) and where they came from."""

    info: BundleInfo
    modules: dict[str, nn.Module]
    path: Path

    def parameter_counts(self) -> dict[str, int]:
        return {name: sum(p.numel() for p in m.parameters()) for name, m in self.modules.items()}


def save_bundle(out_dir: Path, info: BundleInfo, modules: dict[str, nn.Module], half: bool = True,
                protect: Iterable[Path] = ()) -> Path:
    """Write a bundle beside `out_dir`, then swap it in (see `check_destination`); fp16 weights when `half`."""
    out_dir = Path(out_dir)
    missing = set(COMPONENTS) - OPTIONAL_COMPONENTS - set(modules)
    if missing:
        raise BundleError(f"cannot save bundle: missing components {sorted(missing)}")
    check_destination(out_dir, overwrite=True, protect=protect)
    tmp = temp_beside(out_dir)
    try:
        hashes = {}
        for name, module in modules.items():
            hashes.update(_save_component(tmp, name, module, half))
        manifest = {
            "format_version": FORMAT_VERSION, "name": info.name, "components": sorted(modules),
            "labels": list(info.labels), "audio": audio.settings(),
            "calibration": dataclasses.asdict(info.calibration), "prototypes": info.prototypes,
            "metadata": info.metadata, "files": hashes,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        swap_in(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # our own temp folder, gone already unless something failed
    return out_dir


def add_component(path: Path, name: str, module: nn.Module, facts: dict[str, Any], half: bool = True) -> Path:
    """Write (or replace) one optional component of an existing bundle and list it in bundle.json, with `facts`
    under metadata[name]; the bundle's other files stay as they are."""
    if name not in OPTIONAL_COMPONENTS:
        raise BundleError(f"{name!r} is not an optional component ({', '.join(sorted(OPTIONAL_COMPONENTS))})")
    path = Path(path)
    manifest = read_manifest(path)
    tmp = temp_beside(path / name)
    try:
        hashes = _save_component(tmp, name, module, half)
        shutil.rmtree(path / name, ignore_errors=True)
        (tmp / name).rename(path / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    manifest["files"].update(hashes)
    manifest["components"] = sorted({*manifest["components"], name})
    manifest["metadata"] = {**manifest.get("metadata", {}), name: facts}
    text = json.dumps(manifest, indent=2) + "\n"
    replace_file(path / MANIFEST, lambda tmp: Path(tmp).write_text(text))
    return path


def _save_component(root: Path, name: str, module: nn.Module, half: bool) -> dict[str, str]:
    folder = root / name
    folder.mkdir()
    config: Any = module.config  # every component keeps its frozen dataclass config
    (folder / CONFIG).write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    dtype = torch.float16 if half else torch.float32
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    usual_permissions(folder / WEIGHTS)  # safetensors writes it private; a bundle is made to be shared
    return {f"{name}/{f}": sha256(folder / f) for f in (CONFIG, WEIGHTS)}


def read_manifest(path: Path) -> dict[str, Any]:
    """Parse and check bundle.json (format, audio settings, names listed); raise BundleError naming the problem."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise BundleError(f"{path}: not a model bundle (no {MANIFEST})")
    manifest = read_json(bundle_file(path, MANIFEST))
    if not isinstance(manifest, dict):
        raise BundleError(f"{file}: expected a JSON object")
    version = manifest.get("format_version")
    if type(version) is not int or version < 1:
        raise BundleError(f"{file}: format_version {version!r} is not a bundle format")
    if version > FORMAT_VERSION:
        raise BundleError(
            f"{file}: bundle format {version!r} is newer than this ainn understands ({FORMAT_VERSION}); upgrade ainn"
        )
    if manifest.get("audio") != audio.settings():
        raise BundleError(f"{file}: audio settings {manifest.get('audio')} differ from ours {audio.settings()}")
    listed_files(manifest, file)
    return manifest


def verify_files(path: Path, manifest: dict[str, Any]) -> None:
    """Check that every file listed in bundle.json lies inside the bundle, then its size and sha256."""
    _verify_files(Path(path), listed_files(manifest, Path(path) / MANIFEST), MAX_BYTES)


def load_bundle(path: Path) -> Bundle:
    """Verify and load a bundle folder into fp32 CPU modules in eval mode."""
    path = Path(path)
    manifest = read_manifest(path)
    names = [name for name in COMPONENTS
             if name not in OPTIONAL_COMPONENTS or f"{name}/{WEIGHTS}" in manifest["files"]]
    for name in names:
        if not {f"{name}/{CONFIG}", f"{name}/{WEIGHTS}"} <= set(manifest["files"]):
            raise BundleError(f"{path / MANIFEST}: component {name!r} is not listed")
    info = _info(manifest, path / MANIFEST)
    verify_files(path, manifest)
    modules = {name: load_component(path / name, name) for name in names}
    return Bundle(info=info, modules=modules, path=path)


def _info(manifest: dict[str, Any], file: Path) -> BundleInfo:
    """Everything in bundle.json but the files, each value checked: names, distinct labels, finite numbers."""
    name, labels = manifest.get("name", "unnamed"), manifest.get("labels")
    if not _is_name(name, 255):
        raise BundleError(f"{file}: name must be 1 to 255 printable characters")
    if not (isinstance(labels, list) and 0 < len(labels) <= limits.MAX_NAMES and all(map(_is_name, labels))
            and len(set(labels)) == len(labels)):
        raise BundleError(f"{file}: labels must be 1 to {limits.MAX_NAMES} distinct names, got {str(labels)[:80]}")
    cal, prototypes, metadata = (manifest.get(k, {}) for k in ("calibration", "prototypes", "metadata"))
    if not isinstance(cal, dict) or set(cal) - {"low", "high"}:
        raise BundleError(f"{file}: calibration must be an object with low and high")
    low, high = (_by_label(cal.get(k, {}), labels, f"calibration.{k}", file) for k in ("low", "high"))
    if not isinstance(prototypes, dict) or set(prototypes) - set(labels):
        raise BundleError(f"{file}: prototypes must be an object of vectors named by labels")
    for label, vector in prototypes.items():
        if not (isinstance(vector, list) and 0 < len(vector) <= limits.INT_RANGE[1] and all(map(_is_number, vector))):
            raise BundleError(f"{file}: prototype {label!r} must be a list of finite numbers")
    if len({len(v) for v in prototypes.values()}) > 1:
        raise BundleError(f"{file}: prototypes differ in length")
    if not isinstance(metadata, dict):
        raise BundleError(f"{file}: metadata must be an object")
    return BundleInfo(
        name=name, labels=tuple(labels), calibration=Calibration(low=low, high=high),
        prototypes={k: [float(x) for x in v] for k, v in prototypes.items()}, metadata=metadata,
    )


def _by_label(table: object, labels: list[str], key: str, file: Path) -> dict[str, float]:
    if not isinstance(table, dict) or set(table) - set(labels) or not all(map(_is_number, table.values())):
        raise BundleError(f"{file}: {key} must map labels to finite numbers")
    return {k: float(v) for k, v in table.items()}


def _is_name(value: object, length: int = limits.MAX_STRING) -> bool:
    return isinstance(value, str) and 0 < len(value) <= length and value.isprintable()


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond float range
        return False


def load_component(folder: Path, name: str) -> nn.Module:
    """Rebuild one module from its config.json and load its weights strictly.

    The config is type- and range-checked and the module built on the meta device (a parameter budget),
    and the safetensors header's names, shapes and dtypes are compared with it, all before anything is
    allocated. Weights that are NaN or infinite are refused.
    """
    config_cls, module_cls = COMPONENTS[name]
    config = config_from_json(config_cls, folder / CONFIG)
    weights = folder / WEIGHTS
    _check_header(limits.build_on_meta(module_cls, config, str(folder / CONFIG)), weights)
    module = module_cls(config)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise BundleError(f"{weights}: unreadable weights ({err})") from None
    bad = sorted(k for k, v in state.items() if not bool(torch.isfinite(v).all()))
    if bad:
        raise BundleError(f"{weights}: NaN or infinite weights in {bad[:3]}")
    load_strict(module, {k: v.float() for k, v in state.items()}, weights)
    return module.eval()


def config_from_json(config_cls: type[Any], file: Path) -> Any:
    """The component config in `file`, every value checked against its field (ainn_cli/limits.py)."""
    return limits.build_config(config_cls, read_json(file), str(file))


def _check_header(expected: nn.Module, weights: Path) -> None:
    """Compare the safetensors header (names, shapes, dtypes; no tensor read) with a (meta) module."""
    try:
        with safe_open(str(weights), framework="pt") as handle:
            names = handle.keys()
            slices = {key: handle.get_slice(key) for key in names}
            shapes = {key: tuple(s.get_shape()) for key, s in slices.items()}
            dtypes = {s.get_dtype() for s in slices.values()}
    except (SafetensorError, OSError) as err:
        raise BundleError(f"{weights}: unreadable weights ({err})") from None
    if dtypes - set(WEIGHT_DTYPES):
        raise BundleError(f"{weights}: weights of type {sorted(dtypes - set(WEIGHT_DTYPES))}, not {WEIGHT_DTYPES}")
    _mismatch({k: tuple(v.shape) for k, v in expected.state_dict().items()}, shapes, weights)


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], source: Path | str) -> None:
    """load_state_dict(strict=True) with a readable key and shape diff on failure."""
    _mismatch({k: tuple(v.shape) for k, v in module.state_dict().items()},
              {k: tuple(v.shape) for k, v in state.items()}, source)
    module.load_state_dict(state, strict=True)


def _mismatch(expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]], source: Path | str) -> None:
    """A BundleError listing missing, unexpected and wrongly shaped tensors, if any."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    shapes = [f"{k}: {got[k]} != {v}" for k, v in expected.items() if k in got and got[k] != v]
    if missing or unexpected or shapes:
        parts = [f"missing {missing[:5]}" if missing else "", f"unexpected {unexpected[:5]}" if unexpected else "",
                 f"shape {shapes[:3]}" if shapes else ""]
        raise BundleError(f"{source}: weights do not match config ({'; '.join(p for p in parts if p)})")
