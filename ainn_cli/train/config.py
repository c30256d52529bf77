"""Every training hyperparameter in frozen dataclasses, read from TOML with `key=value` overrides."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ainn_cli.corpora.sources import data_root
from ainn_cli.errors import UsageError
from ainn_cli.models.content import ContentEncoderConfig
from ainn_cli.models.emotion import EmotionEncoderConfig
from ainn_cli.models.generator import GeneratorConfig
from ainn_cli.models.predictor import ProsodyPredictorConfig
from ainn_cli.models.recognizer import RecognizerConfig

# Inclusive ranges of numeric keys by pattern (the first match wins); any other number must be >= 0.
RANGES: tuple[tuple[str, tuple[float, float]], ...] = (
    ("data.segment_frames", (8, 100_000)), ("data.batch_size", (1, 4096)), ("data.workers", (0, 256)),
    ("data.n_val", (0, 10_000)), ("data.n_test", (0, 10_000)), ("*.steps", (0, 100_000_000)),
    ("*.lr", (1e-12, 1.0)), ("grad_clip", (1e-9, 1e9)), ("seed", (0, 2**32 - 1)), ("*_every", (1, 100_000_000)),
    ("val_batches", (1, 1_000_000)), ("probe_width", (1, 65_536)),
    ("critic_lr_scale", (1e-6, 1e6)), ("data.repeat.*", (1, 1000)), ("*.weight_decay", (0.0, 1.0)),
)
# the paper's three ablation rows (full model, Stage I without the cue, rec + cls only), the explicit-prosody
# model (G renders a contour) and `reshape` (the paper model after the prosody predictor's DSP, G fine-tuned on
# RAVDESS's parallel takes: env, par); "full" is the paper model's old name and still accepted
VARIANTS = ("paper", "no_cue", "baseline", "prosody", "reshape")
VARIANT_ALIASES = {"full": "paper"}
NO_CUE_VARIANTS = ("no_cue", "baseline")  # their encoders default to use_cue = False


@dataclass(frozen=True)
class DataConfig:
    # kind:path, kind in ravdess|librispeech|esd|manifest; a relative path lies under the data root (`ainn data`)
    sources: tuple[str, ...] = ("ravdess:ravdess",)
    root: str = ""  # the data root; empty: $AINN_DATA, else ./data (--data-root sets it)
    val_speakers: tuple[str, ...] = ()  # empty: the last `n_val` speakers in sorted order
    test_speakers: tuple[str, ...] = ()
    n_val: int = 2
    n_test: int = 2
    segment_frames: int = 172  # ~2 s of mel frames
    batch_size: int = 16
    workers: int = 1
    cache_dir: str = ".cache/ainn-features"
    # training rows of CORPUS_EMOTION (the speaker name's prefix: emodb_sad) repeated so many times, whole numbers
    repeat: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelConfig:
    content_encoder: ContentEncoderConfig = field(default_factory=ContentEncoderConfig)
    emotion_encoder: EmotionEncoderConfig = field(default_factory=EmotionEncoderConfig)
    recognizer: RecognizerConfig = field(default_factory=RecognizerConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    prosody: ProsodyPredictorConfig = field(default_factory=ProsodyPredictorConfig)  # prosody variant only


@dataclass(frozen=True)
class StageConfig:
    steps: int = 4000
    lr: float = 2e-4
    lambdas: dict[str, float] = field(default_factory=dict)
    betas: tuple[float, float] = (0.8, 0.99)  # AdamW
    weight_decay: float = 0.0  # AdamW


def _stage1() -> StageConfig:
    return StageConfig(steps=4000, lr=2e-4, lambdas={"rec": 1.0, "cls": 1.0, "str": 1.0, "dis": 0.1})


def _stage2() -> StageConfig:
    return StageConfig(steps=2000, lr=1e-4, lambdas={"rec": 1.0, "cc": 1.0, "ecc": 0.3, "esc": 1.0, "cycle": 0.0})


def _recognizer() -> StageConfig:
    return StageConfig(steps=2000, lr=3e-4, lambdas={"cls": 1.0, "str": 1.0})


@dataclass(frozen=True)
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    stage1: StageConfig = field(default_factory=_stage1)
    stage2: StageConfig = field(default_factory=_stage2)
    recognizer: StageConfig = field(default_factory=_recognizer)  # --stage recognizer: R alone
    variant: str = "paper"
    init_bundle: str = ""  # start Stage I from this bundle's weights (matching tensors), not at random
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N; torchrun ranks use their local GPU
    triplet_margin: float = 0.2  # str: the triplet's cosine-distance margin
    triplet_closeness: float = 0.25  # str: positives are the same emotion at intensities at most this far apart
    keep_reference_strength: float = 0.5  # Stage II: P(convert at the reference's own strength), else uniform
    probe_width: int = 128  # hidden units of the `dis` emotion probe on pooled content
    critic_lr_scale: float = 1.0  # the `adv` critic's learning rate, as a multiple of its stage's (train/critic.py)
    # after --stage recognizer: refit Rc on whole training utterances with this L2 weight (train/refit.py); 0 = off
    refit_head: float = 0.0
    grad_clip: float = 5.0
    seed: int = 1234
    log_every: int = 20
    val_every: int = 250
    val_batches: int = 4
    checkpoint_every: int = 250

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def resolve_sources(data: DataConfig) -> tuple[str, ...]:
    """The sources with relative paths put under the data root (`data.root`, else $AINN_DATA, else ./data); a
    corpus folder that is not there is a UsageError saying how to get it."""
    root = data_root(data.root)
    resolved = []
    for spec in data.sources:
        kind, sep, where = spec.partition(":")
        path = Path(where).expanduser()
        if sep and not path.is_absolute():
            path = root / path
        if sep and kind in ("ravdess", "librispeech") and not path.exists():
            raise UsageError(f"data source {spec!r}: {path} does not exist; download it with `ainn data {kind} "
                             f"{path}`, or point --data-root (or AINN_DATA) at the folder that holds {where}")
        if sep and kind == "emodb" and not path.is_dir():
            raise UsageError(f"data source {spec!r}: {path} is not a folder; it holds EmoDB's wav files under their "
                             "original names (e.g. the wav/ folder of github.com/sylaschacko/voice-emotion-analysis)")
        resolved.append(f"{kind}:{path}" if sep else spec)
    return tuple(resolved)


def load_config(path: Path | None = None, overrides: list[str] | None = None, check: bool = True) -> TrainConfig:
    """Defaults, then the TOML file, then `section.key=value` overrides (values parsed as TOML); the types are
    always checked, the ranges (`validate`) unless `check` is False (for a caller that replaces values first)."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, ValueError) as err:  # TOMLDecodeError and UnicodeDecodeError are ValueErrors
            raise UsageError(f"{path}: cannot read config ({err})") from None
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"override {item!r} is not key=value")
        _set(raw, key.strip().split("."), _parse(value.strip()))
    if isinstance(raw.get("variant"), str):
        raw["variant"] = VARIANT_ALIASES.get(raw["variant"], raw["variant"])
        _default_cue(raw)
    config: TrainConfig = _build(TrainConfig, raw, "")
    if config.variant not in VARIANTS:
        raise UsageError(f"variant must be one of {VARIANTS}, got {config.variant!r}")
    return validate(config) if check else config


def _default_cue(raw: dict[str, Any]) -> None:
    """The no-cue ablations switch the cue off in both encoders' saved configs (so Stage II and inference
    read it as Stage I did); a `use_cue` given explicitly wins."""
    if raw["variant"] not in NO_CUE_VARIANTS:
        return
    for encoder in ("content_encoder", "emotion_encoder"):
        section = _section(raw, ["model", encoder])
        if section is not None:
            section.setdefault("use_cue", False)


def _section(tree: dict[str, Any], keys: list[str]) -> dict[str, Any] | None:
    """The nested table at `keys`, created when missing; None when a value in the way is not a table."""
    for key in keys:
        tree = tree.setdefault(key, {})
        if not isinstance(tree, dict):
            return None
    return tree


def validate(config: TrainConfig) -> TrainConfig:
    """Ranges, after `_build` checked the types: every number finite and within RANGES (else >= 0), labels
    that start with neutral, and each model component's config within the bundle limits (ainn_cli/limits.py)."""
    from ainn_cli import limits
    from ainn_cli.bundle import COMPONENTS

    for key, value in _numbers(config, ""):
        low, high = next((r for pattern, r in RANGES if fnmatch.fnmatchcase(key, pattern)), (0, math.inf))
        if not (math.isfinite(value) and low <= value <= high):
            raise UsageError(f"config key {key}: {value} is outside {_number(low)}..{_number(high)}")
    for name in ("stage1", "stage2", "recognizer"):
        betas = getattr(config, name).betas
        if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in betas):
            raise UsageError(f"config key {name}.betas: two numbers in 0..1 (excluded), got {list(betas)}")
    for key in ("triplet_closeness", "keep_reference_strength"):
        if getattr(config, key) > 1:
            raise UsageError(f"config key {key}: {getattr(config, key)} is outside 0..1")
    _check_adv(config)
    labels = config.model.recognizer.labels
    if len(labels) < 2 or labels[0] != "neutral":
        raise UsageError(f"config key model.recognizer.labels: must be neutral then emotions, got {list(labels)}")
    if not config.data.sources:
        raise UsageError("config key data.sources: no data sources")
    for key, times in config.data.repeat.items():
        if times != int(times) or "_" not in key:
            raise UsageError(f"config key data.repeat.{key}: a whole number of times for a CORPUS_EMOTION key "
                             f"(e.g. emodb_sad = 6), got {times}")
    modules = {config_cls: module_cls for config_cls, module_cls in COMPONENTS.values()}
    for part in dataclasses.fields(config.model):
        component, where = getattr(config.model, part.name), f"config key model.{part.name}"
        limits.check_config(component, where, UsageError)
        if type(component) in modules:
            limits.build_on_meta(modules[type(component)], component, where, UsageError)
    return config


def _check_adv(config: TrainConfig) -> None:
    """`adv` (the critic, train/critic.py) is a Stage II loss of the reshape variant; nothing else reads it."""
    for name in ("stage1", "stage2", "recognizer"):
        weight = getattr(config, name).lambdas.get("adv", 0.0)
        if weight > 0 and (name != "stage2" or config.variant != "reshape"):
            raise UsageError(f"config key {name}.lambdas.adv: the critic trains only in stage2 of variant "
                             f"\"reshape\" (this is {name} of variant {config.variant!r})")


def _number(value: float) -> str:
    return str(int(value)) if math.isfinite(value) and value == int(value) else f"{value:g}"


def _numbers(tree: Any, where: str) -> Iterator[tuple[str, float]]:
    """(dotted key, value) of every number in a config, its tables included, the model section excepted."""
    fields = dataclasses.fields(tree) if dataclasses.is_dataclass(tree) else ()
    items = tree.items() if isinstance(tree, dict) else ((f.name, getattr(tree, f.name)) for f in fields)
    for name, value in items:
        if dataclasses.is_dataclass(value) or isinstance(value, dict):
            if f"{where}{name}" != "model":
                yield from _numbers(value, f"{where}{name}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            yield f"{where}{name}", value


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
        if not isinstance(tree, dict):
            raise UsageError(f"config key {'.'.join(keys)}: {key} is not a table")
    tree[keys[-1]] = value


def _build(cls: type[Any], raw: dict[str, Any], where: str, base: Any = None) -> Any:
    """Build a (nested) frozen dataclass from a dict over `base` (default: `cls()`), refusing unknown keys;
    a section given in part keeps the rest of its defaults (e.g. a stage's lambdas)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields)
    if unknown:
        raise UsageError(f"unknown config keys {sorted(where + k for k in unknown)}")
    defaults = cls() if base is None else base
    values = {}
    for name, value in raw.items():
        current = getattr(defaults, name)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            values[name] = _build(type(current), value, f"{where}{name}.", current)
        elif isinstance(current, dict) and isinstance(value, dict):
            values[name] = {k: _checked(f"{where}{name}.{k}", 0.0, v) for k, v in value.items()}  # a table replaces
        else:
            values[name] = _checked(where + name, current, _tuples(value))
    return dataclasses.replace(defaults, **values)


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
    if dataclasses.is_dataclass(default):
        return "a table"
    return {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            dict: "a table"}.get(type(default), type(default).__name__)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value
