"""Every training hyperparameter in frozen dataclasses, read from TOML with `key=value` overrides."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ainn_cli.content import ContentEncoderConfig
from ainn_cli.emotion import EmotionEncoderConfig
from ainn_cli.errors import UsageError
from ainn_cli.generator import GeneratorConfig
from ainn_cli.recognizer import RecognizerConfig

VARIANTS = ("full", "no_cue", "baseline")  # the paper's three ablation rows


@dataclass(frozen=True)
class DataConfig:
    sources: tuple[str, ...] = ("ravdess:../shared/data/ravdess",)  # kind:path, kind in manifest|ravdess|esd
    val_speakers: tuple[str, ...] = ()  # empty: the last `n_val` speakers in sorted order
    test_speakers: tuple[str, ...] = ()
    n_val: int = 2
    n_test: int = 2
    segment_frames: int = 172  # ~2 s of mel frames
    batch_size: int = 16
    workers: int = 1
    cache_dir: str = ".cache/ainn-features"


@dataclass(frozen=True)
class ModelConfig:
    content_encoder: ContentEncoderConfig = field(default_factory=ContentEncoderConfig)
    emotion_encoder: EmotionEncoderConfig = field(default_factory=EmotionEncoderConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)


@dataclass(frozen=True)
class StageConfig:
    steps: int = 4000
    lr: float = 2e-4
    lambdas: dict[str, float] = field(default_factory=dict)


def _stage1() -> StageConfig:
    return StageConfig(steps=4000, lr=2e-4, lambdas={"rec": 1.0, "cls": 1.0, "str": 1.0, "dis": 0.1})


def _stage2() -> StageConfig:
    return StageConfig(steps=2000, lr=1e-4, lambdas={"rec": 1.0, "cc": 1.0, "ecc": 0.3, "esc": 1.0, "cycle": 0.0})


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stage1: StageConfig = field(default_factory=_stage1)
    stage2: StageConfig = field(default_factory=_stage2)
    variant: str = "full"
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N; torchrun ranks use their local GPU
    triplet_margin: float = 0.2
    grad_clip: float = 5.0
    seed: int = 1234
    log_every: int = 20
    val_every: int = 250
    val_batches: int = 4
    checkpoint_every: int = 250

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the TOML file, then `section.key=value` overrides (values parsed as TOML)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise UsageError(f"{path}: cannot read config ({err})") from None
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"override {item!r} is not key=value")
        _set(raw, key.strip().split("."), _parse(value.strip()))
    config: TrainConfig = _build(TrainConfig, raw, "")
    if config.variant not in VARIANTS:
        raise UsageError(f"variant must be one of {VARIANTS}, got {config.variant!r}")
    return config


def _parse(value: str) -> Any:
    """A TOML value (`0.5`, `"x"`, `[1, 2]`, `{ rec = 1.0 }`), else JSON, else the bare text as a string."""
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def _set(tree: dict[str, Any], keys: list[str], value: Any) -> None:
    for key in keys[:-1]:
        tree = tree.setdefault(key, {})
    tree[keys[-1]] = value


def _build(cls: type[Any], raw: dict[str, Any], where: str) -> Any:
    """Build a (nested) frozen dataclass from a dict, refusing unknown keys."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise UsageError(f"unknown config keys {sorted(where + k for k in unknown)}")
    defaults = cls()
    values = {}
    for name, value in raw.items():
        current = getattr(defaults, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            values[name] = _build(type(current), value, f"{where}{name}.")
        elif isinstance(current, dict) and isinstance(value, dict):
            values[name] = {k: _checked(f"{where}{name}.{k}", 0.0, v) for k, v in {**current, **value}.items()}
        else:
            values[name] = _checked(where + name, current, _tuples(value))
    return cls(**values)


def _checked(key: str, default: Any, value: Any) -> Any:
    """`value` if it has the type of `default` (an int for a float is fine), else a UsageError naming `key`."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    strings = isinstance(default, tuple) and all(isinstance(v, str) for v in default)
    if type(value) is not type(default) or (strings and not all(isinstance(v, str) for v in value)):
        raise UsageError(f"config key {key}: expected {_kind(default, strings)}, got {value!r}")
    return value


def _kind(default: Any, strings: bool) -> str:
    if isinstance(default, tuple):
        return "a list of strings" if strings else "a list"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(type(default), type(default).__name__)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
