"""Limits on a component config read from a bundle or a training config: types, ranges, a parameter budget.

A bundle's `config.json` is untrusted data. `build_config` checks each value against the type of its
dataclass field (bool, int, float, str, `tuple[X, ...]`, `dict[str, X]`, `X | None`, `Literal[...]`, a nested
dataclass) and a range, so nothing is allocated from a wrong type or an absurd number. `build_on_meta`
then builds the module on the meta device (shapes, no memory), at most MAX_MODULES submodules, and
counts its parameters against MAX_PARAMETERS. Nothing here names today's fields: a new field is checked
by its type, and an int gets INT_RANGE unless INT_BOUNDS matches its name.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import types
import typing
import warnings
from typing import Any, Literal, TypeVar, Union

import torch
from torch import nn

from ainn_cli.audio import N_MELS
from ainn_cli.errors import AinnError, BundleError

INT_RANGE = (0, 1 << 16)  # a width, size, count or factor (0 may switch a part off; empty weights are refused)
INT_BOUNDS = (  # (pattern on the field name, inclusive range): the first match wins
    ("n_mels", (N_MELS, N_MELS)),  # the front end's, nothing else
    ("*layers", (0, 64)),
)
MAX_ITEMS = 16  # entries of a tuple of numbers (upsampling stages, kernels, dilations)
MAX_NAMES = 64  # entries of a tuple or table of names (labels)
MAX_STRING = 64  # characters of a string value or name
MAX_MODULES = 1000  # submodules of one component: the HiFi-GAN V1 vocoder, the largest, has about 130
MAX_PARAMETERS = 50_000_000  # per component: 200 MB in fp32; the default vocoder has 13.9 M

T = TypeVar("T")


class _Invalid(Exception):
    """A value that does not fit its field; turned into the caller's AinnError."""


class _TooManyModules(Exception):
    pass


def build_config(cls: type[T], raw: object, where: str, error: type[AinnError] = BundleError) -> T:
    """Dataclass `cls` from parsed JSON or TOML `raw`; a wrong or absurd value is `error("where: key: ...")`."""
    try:
        return _dataclass(cls, raw, "")
    except _Invalid as bad:
        raise error(f"{where}: {bad}") from None


def check_config(config: object, where: str, error: type[AinnError] = BundleError) -> None:
    """The same checks for a config that is already built (e.g. from a training config)."""
    build_config(type(config), dataclasses.asdict(config), where, error)  # type: ignore[call-overload]


def build_on_meta(module_cls: type[nn.Module], config: object, where: str,
                  error: type[AinnError] = BundleError) -> nn.Module:
    """The module built on the meta device (no memory), refused above MAX_MODULES or MAX_PARAMETERS."""
    count = 0

    def counted(parent: nn.Module, name: str, child: nn.Module | None) -> None:
        nonlocal count
        count += 1
        if count > MAX_MODULES:
            raise _TooManyModules

    hook = nn.modules.module.register_module_module_registration_hook(counted)
    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)  # refused below
            module = module_cls(config)
    except _TooManyModules:
        raise error(f"{where}: builds more than {MAX_MODULES} modules") from None
    except (RuntimeError, ValueError, TypeError, IndexError, ZeroDivisionError, OverflowError) as err:
        raise error(f"{where}: the config does not build a model ({type(err).__name__}: {_line(err)})") from None
    finally:
        hook.remove()
    empty = next((k for k, t in module.state_dict().items() if t.numel() == 0), None)
    if empty is not None:
        raise error(f"{where}: builds an empty weight {empty} (a size of 0?)")
    parameters = sum(t.numel() for t in module.state_dict().values())
    if parameters > MAX_PARAMETERS:
        raise error(f"{where}: {parameters:,} parameters, more than the limit of {MAX_PARAMETERS:,}")
    return module


def _dataclass(cls: type[T], raw: object, key: str) -> T:
    if not isinstance(raw, dict):
        raise _Invalid(f"{key or 'config'}: expected an object, got {_show(raw)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in set(raw) - names)
    if unknown:
        raise _Invalid(f"unknown fields {unknown} in {key or 'the config'} (made by a newer ainn?)")
    values = {name: _value(hints[name], raw[name], f"{key}{name}", name) for name in raw}
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:  # a __post_init__ check
        raise _Invalid(f"{key or 'config'}: {_line(err)}") from None


def _value(kind: Any, value: object, key: str, name: str) -> Any:
    """`value` checked against the annotation `kind` of field `name` (`key` is where it sits, for messages)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if kind is Any:
        return value
    if origin in (Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if value is None and len(options) < len(args):
            return None
        if len(options) == 1:
            return _value(options[0], value, key, name)
    elif origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _Invalid(f"{key}: expected one of {list(args)}, got {_show(value)}")
    elif kind in (bool, int, float, str):
        return _scalar(kind, value, key, name)
    elif dataclasses.is_dataclass(kind):
        return _dataclass(kind, value, f"{key}.")  # type: ignore[arg-type]
    elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return tuple(_items(args[0], value, key, name))
    elif origin is list and len(args) == 1:
        return _items(args[0], value, key, name)
    elif origin is dict and len(args) == 2 and args[0] is str:
        return _table(args[1], value, key, name)
    raise _Invalid(f"{key}: a value of type {kind} cannot be checked")


def _scalar(kind: type, value: object, key: str, name: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not kind:
        what = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
        raise _Invalid(f"{key}: expected {what}, got {_show(value)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Invalid(f"{key}: expected a finite number, got {value}")
    if isinstance(value, str) and not (0 < len(value) <= MAX_STRING and value.isprintable()):
        raise _Invalid(f"{key}: expected 1 to {MAX_STRING} printable characters, got {_show(value)}")
    if kind is int:
        low, high = next((r for pattern, r in INT_BOUNDS if fnmatch.fnmatchcase(name, pattern)), INT_RANGE)
        if not low <= value <= high:  # type: ignore[operator]
            raise _Invalid(f"{key}: {value} is outside {low}..{high}")
    return value


def _items(kind: Any, value: object, key: str, name: str) -> list[Any]:
    """A non-empty list of at most MAX_ITEMS numbers or MAX_NAMES distinct names."""
    if not isinstance(value, (list, tuple)):
        raise _Invalid(f"{key}: expected a list, got {_show(value)}")
    cap = MAX_NAMES if kind is str else MAX_ITEMS
    if not 0 < len(value) <= cap:
        raise _Invalid(f"{key}: expected 1 to {cap} entries, got {len(value)}")
    items = [_value(kind, v, f"{key}[{i}]", name) for i, v in enumerate(value)]
    if kind is str and len(set(items)) < len(items):
        raise _Invalid(f"{key}: names repeat in {items}")
    return items


def _table(kind: Any, value: object, key: str, name: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Invalid(f"{key}: expected an object, got {_show(value)}")
    if len(value) > MAX_NAMES:
        raise _Invalid(f"{key}: more than {MAX_NAMES} entries")
    return {_scalar(str, k, f"{key} key", name): _value(kind, v, f"{key}.{k}", name) for k, v in value.items()}


def _show(value: object) -> str:
    text = "null" if value is None else repr(value)
    return text if len(text) <= 40 else f"{text[:37]}..."


def _line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else type(err).__name__
