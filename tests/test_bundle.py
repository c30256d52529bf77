"""Bundle save/load round trip, hash verification and strict loading with readable diffs."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from ainn_cli.bundle import FORMAT_VERSION, load_bundle, sha256
from ainn_cli.device import resolve_device
from ainn_cli.errors import BundleError, DeviceError, UsageError
from ainn_cli.hub import registry, resolve_bundle
from tests.conftest import make_tiny_bundle, tiny_modules


@pytest.fixture()
def bundle_copy(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "copy"))


def test_round_trip_restores_every_weight(tmp_path: Path) -> None:
    path = make_tiny_bundle(tmp_path / "b", seed=7)
    loaded = load_bundle(path)
    for name, module in tiny_modules(seed=7).items():
        for key, value in module.state_dict().items():
            torch.testing.assert_close(loaded.modules[name].state_dict()[key], value.half().float())
    manifest = json.loads((path / "bundle.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION
    assert all(sha256(path / f) == h for f, h in manifest["files"].items())
    assert loaded.info.labels[0] == "neutral" and set(loaded.info.prototypes) == set(loaded.info.labels)


def test_a_saved_bundle_can_be_read_by_others(tmp_path: Path) -> None:
    """Every file gets the usual permissions (0666 less the umask), though safetensors writes private files."""
    old = os.umask(0o022)
    try:
        path = make_tiny_bundle(tmp_path / "b", seed=1)
    finally:
        os.umask(old)
    modes = {f.relative_to(path).as_posix(): f.stat().st_mode & 0o777 for f in path.rglob("*") if f.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes


def test_corrupted_weights_fail_with_file_name(bundle_copy: Path) -> None:
    weights = bundle_copy / "generator" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"generator/model.safetensors: missing or changed \(does not match"):
        load_bundle(bundle_copy)


def test_missing_file_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "vocoder" / "config.json").unlink()
    with pytest.raises(BundleError, match=r"vocoder/config.json: missing or changed \(does not match its sha256"):
        load_bundle(bundle_copy)


def _rehash(bundle: Path) -> None:
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["files"] = {f: sha256(bundle / f) for f in manifest["files"]}
    (bundle / "bundle.json").write_text(json.dumps(manifest))


def test_config_that_does_not_match_weights_shows_key_diff(bundle_copy: Path) -> None:
    config = bundle_copy / "recognizer" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "channels": 24}))
    _rehash(bundle_copy)
    with pytest.raises(BundleError, match=r"weights do not match config \(shape"):
        load_bundle(bundle_copy)


def test_missing_and_unexpected_keys_are_listed(bundle_copy: Path) -> None:
    weights = bundle_copy / "generator" / "model.safetensors"
    state = load_file(str(weights))
    state["extra.weight"] = state.pop("out.bias")
    save_file(state, str(weights))
    _rehash(bundle_copy)
    with pytest.raises(BundleError, match=r"missing \['out.bias'\]; unexpected \['extra.weight'\]"):
        load_bundle(bundle_copy)


def test_newer_format_and_unknown_config_field(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "bundle.json").read_text())
    (bundle_copy / "bundle.json").write_text(json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(BundleError, match="newer than this ainn understands"):
        load_bundle(bundle_copy)
    (bundle_copy / "bundle.json").write_text(json.dumps(manifest))
    config = bundle_copy / "emotion_encoder" / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "fancy": 1}))
    _rehash(bundle_copy)
    with pytest.raises(BundleError, match=r"unknown fields \['fancy'\]"):
        load_bundle(bundle_copy)


def test_resolve_names_folders_and_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    assert resolve_bundle(str(tiny_bundle)) == tiny_bundle
    assert "default" in registry() and resolve_bundle(None) == registry()["default"]
    with pytest.raises(BundleError, match="not a model bundle"):
        resolve_bundle(str(tmp_path))
    with pytest.raises(BundleError, match="no such bundle"):
        resolve_bundle("no-such-model")


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda"}
    with pytest.raises(UsageError, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="CUDA is not available"):
            resolve_device("cuda:0")
