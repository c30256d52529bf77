"""Bundles from strangers: a closed world, checked configs, finite weights, one line and under a second to fail.

Each case starts from a copy of the tiny bundle, changes one thing (and rehashes, as an attacker
would), and expects a BundleError that names the problem, or from the CLI exit 1 with one stderr line.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from ainn_cli.bundle import BundleInfo, load_bundle, save_bundle, sha256
from ainn_cli.cli import app
from ainn_cli.emotions import LABELS
from ainn_cli.errors import BundleError
from ainn_cli.models.generator import Generator, GeneratorConfig
from ainn_cli.pipeline import load_pipeline
from tests.conftest import make_tiny_bundle, tiny_modules


@pytest.fixture()
def bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bundle, tmp_path / "bundle"))


def manifest_of(bundle: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((bundle / "bundle.json").read_text())
    return data


def write_manifest(bundle: Path, manifest: dict[str, Any], rehash: bool = True) -> None:
    if rehash:
        manifest["files"] = {f: sha256(bundle / f) for f in manifest["files"]}
    (bundle / "bundle.json").write_text(json.dumps(manifest))


def edit_config(bundle: Path, component: str, change: Callable[[dict[str, Any]], Any]) -> None:
    file = bundle / component / "config.json"
    config = json.loads(file.read_text())
    new = change(config)
    file.write_text(new if isinstance(new, str) else json.dumps(config if new is None else new))
    write_manifest(bundle, manifest_of(bundle))


def fails_fast(bundle: Path, pattern: str) -> str:
    """load_bundle raises a one-line BundleError matching `pattern` in under a second."""
    start = time.perf_counter()
    with pytest.raises(BundleError, match=pattern) as caught:
        load_bundle(bundle)
    assert time.perf_counter() - start < 1.0
    message = str(caught.value)
    assert "\n" not in message
    return message


# ------------------------------------------------------------------------------------------ closed world


@pytest.mark.parametrize("name", ["../outside.txt", "generator/../../outside.txt", "/ABS/outside.txt",
                                  "generator//config.json", ".hidden/x.json", "a\\..\\b", "bundle.json"])
def test_names_that_leave_the_bundle_are_refused_before_reading(bundle: Path, tmp_path: Path, name: str) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("a file the bundle must not reach\n")
    manifest = manifest_of(bundle)
    name = name.replace("/ABS/outside.txt", str(outside))
    manifest["files"][name] = sha256(outside)  # the right hash: only the name can stop it
    write_manifest(bundle, manifest, rehash=False)
    before = outside.stat().st_atime_ns
    fails_fast(bundle, "is not a file name inside the bundle")
    assert outside.stat().st_atime_ns == before


def test_a_symbolic_link_out_of_the_bundle_is_refused(bundle: Path, tmp_path: Path) -> None:
    config = bundle / "generator" / "config.json"
    outside = tmp_path / "elsewhere.json"
    outside.write_bytes(config.read_bytes())  # same bytes, same hash: only where it lies is wrong
    config.unlink()
    config.symlink_to(outside)
    fails_fast(bundle, r"generator/config.json: leads outside the bundle folder")


def test_a_symbolic_link_inside_the_bundle_is_fine(bundle: Path) -> None:
    config = bundle / "generator" / "config.json"
    shutil.move(config, bundle / "generator" / "real.json")
    config.symlink_to("real.json")
    assert load_bundle(bundle).info.name == "tiny"


def test_missing_and_changed_files_get_the_same_message(bundle: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["files"]["extra/probe.bin"] = "0" * 64
    write_manifest(bundle, manifest, rehash=False)
    missing = fails_fast(bundle, "missing or changed")
    (bundle / "extra").mkdir()
    (bundle / "extra" / "probe.bin").write_bytes(b"exists now")
    changed = fails_fast(bundle, "missing or changed")
    assert missing == changed


@pytest.mark.parametrize(("files", "needle"), [
    ([], "must list 1 to"), ({"generator/config.json": "abc"}, "is not a sha256"),
    ({"generator/config.json": 5}, "is not a sha256"),
])
def test_a_malformed_file_list_is_refused(bundle: Path, files: object, needle: str) -> None:
    manifest = manifest_of(bundle)
    manifest["files"] = files
    write_manifest(bundle, manifest, rehash=False)
    fails_fast(bundle, needle)


def test_export_of_a_hostile_bundle_writes_nothing_outside(bundle: Path, tmp_path: Path) -> None:
    manifest = manifest_of(bundle)
    payload = bundle / "content_encoder" / "payload.sh"
    payload.write_text("echo pwned\n")
    manifest["files"]["content_encoder/../../evil/payload.sh"] = sha256(payload)
    write_manifest(bundle, manifest, rehash=False)
    result = CliRunner().invoke(app, ["export", str(bundle), str(tmp_path / "out" / "hub")])
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "evil").exists() and not (tmp_path / "out" / "evil").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_export_follows_a_link_only_inside_the_bundle(bundle: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    manifest = manifest_of(bundle)
    (bundle / "notes.txt").symlink_to(secret)
    manifest["files"]["notes.txt"] = sha256(secret)
    write_manifest(bundle, manifest, rehash=False)
    result = CliRunner().invoke(app, ["export", str(bundle), str(tmp_path / "hub")])
    assert result.exit_code == 1 and "leads outside the bundle" in result.stderr
    assert not (tmp_path / "hub").exists()


# ------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(("component", "change", "needle"), [
    ("content_encoder", lambda c: c.update(layers=10**7), r"layers: 10000000 is outside 0\.\.64"),
    ("recognizer", lambda c: c.update(channels=30000), r"parameters, more than the limit"),
    ("recognizer", lambda c: c.update(channels=10**9), r"channels: 1000000000 is outside"),
    ("generator", lambda c: c.update(channels="16"), r"channels: expected an integer, got '16'"),
    ("generator", lambda c: c.update(channels=None), r"channels: expected an integer, got null"),
    ("generator", lambda c: c.update(channels=16.5), r"channels: expected an integer"),
    ("emotion_encoder", lambda c: c.update(use_cue="yes"), r"use_cue: expected true or false"),
    ("generator", lambda c: c.update(dilations=[[[[1]]]]), r"dilations\[0\]: expected an integer"),
    ("generator", lambda c: c.update(dilations={"a": 1}), r"dilations: expected a list"),
    ("generator", lambda c: c.update(dilations=[]), r"dilations: expected 1 to"),
    ("generator", lambda c: c.update(dilations=list(range(1, 10**5))), r"dilations: expected 1 to"),
    ("vocoder", lambda c: c.update(resblock_dilation_sizes=[1, 3, 5]), r"dilation_sizes\[0\]: expected a list"),
    ("vocoder", lambda c: c.update(upsample_rates=[2] * 16, upsample_kernel_sizes=[4] * 16),
     r"empty weight|does not build"),
    ("recognizer", lambda c: c.update(labels=[]), r"labels: expected 1 to"),
    ("recognizer", lambda c: c.update(labels=["neutral", "neutral"]), r"labels: names repeat"),
    ("recognizer", lambda c: c.update(labels=["", "angry"]), r"labels\[0\]: expected 1 to 64 printable"),
    ("recognizer", lambda c: c.update(n_mels=81), r"n_mels: 81 is outside 80\.\.80"),
    ("recognizer", lambda c: c.update(channels=0), r"empty weight"),
    ("recognizer", lambda c: c.update(kernel=0), r"does not build a model|empty weight"),
    ("recognizer", lambda c: c.update(fancy=1), r"unknown fields \['fancy'\]"),
    ("recognizer", lambda c: [1, 2], r"expected an object, got \[1, 2\]"),
    ("recognizer", lambda c: "[" * 100_000 + "]" * 100_000, r"not valid JSON"),
    ("recognizer", lambda c: '{"channels": 1' + "0" * 5000 + "}", r"not valid JSON"),
    ("recognizer", lambda c: '{"channels": NaN}', r"channels: expected an integer"),
])
def test_hostile_config_fails_fast_in_one_line(bundle: Path, component: str, change: Callable[[dict[str, Any]], Any],
                                                needle: str) -> None:
    edit_config(bundle, component, change)
    fails_fast(bundle, needle)


def test_weights_are_compared_with_the_config_before_allocation(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A config within the budget but larger than its weights fails on the header, before any tensor is read."""
    edit_config(bundle, "vocoder", lambda c: c.update(upsample_initial_channel=1024))

    def no_vocoder_reading(file: str) -> dict[str, torch.Tensor]:
        assert "vocoder" not in file, "weights read before the header was compared"
        return load_file(file)

    monkeypatch.setattr("ainn_cli.bundle.load_file", no_vocoder_reading)
    fails_fast(bundle, r"vocoder/model.safetensors: weights do not match config \(shape")


@pytest.mark.parametrize(("key", "value", "needle"), [
    ("labels", [], "labels must be 1 to"), ("labels", ["a", "a"], "labels must be 1 to"),
    ("labels", "neutral", "labels must be 1 to"), ("labels", [None], "labels must be 1 to"),
    ("name", {"x": 1}, "name must be"), ("calibration", [1, 2], "calibration must be an object"),
    ("calibration", {"low": {"angry": "x"}}, "calibration.low must map labels"),
    ("calibration", {"low": {"angry": 10**400}}, "calibration.low must map labels"),
    ("prototypes", {"angry": [float("nan")] * 8}, "prototype 'angry' must be a list of finite numbers"),
    ("prototypes", {"angry": [0.1] * 8, "sad": [0.1] * 7}, "prototypes differ in length"),
    ("prototypes", {"bogus": [0.1] * 8}, "prototypes must be an object of vectors named by labels"),
    ("metadata", [1], "metadata must be an object"), ("format_version", True, "is not a bundle format"),
    ("format_version", "1", "is not a bundle format"),
])
def test_hostile_manifest_values_fail_fast(bundle: Path, key: str, value: object, needle: str) -> None:
    manifest = manifest_of(bundle)
    manifest[key] = value
    write_manifest(bundle, manifest)
    fails_fast(bundle, needle)


def test_deeply_nested_manifest_is_one_line(bundle: Path) -> None:
    (bundle / "bundle.json").write_text('{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}")
    fails_fast(bundle, "not valid JSON")


def test_nan_weights_are_refused(bundle: Path) -> None:
    weights = bundle / "generator" / "model.safetensors"
    state = load_file(str(weights))
    state["out.bias"][0] = float("nan")
    save_file(state, str(weights))
    write_manifest(bundle, manifest_of(bundle))
    fails_fast(bundle, r"generator/model.safetensors: NaN or infinite weights in \['out.bias'\]")


def test_wrong_size_prototypes_fail_when_the_bundle_loads(bundle: Path) -> None:
    manifest = manifest_of(bundle)
    manifest["prototypes"] = {k: [0.1] * 5 for k in manifest["prototypes"]}
    write_manifest(bundle, manifest)
    with pytest.raises(BundleError, match="prototypes do not have the emotion embedding's 8 values"):
        load_pipeline(str(bundle), "cpu")


def test_components_that_do_not_fit_together_fail_when_the_bundle_loads(tmp_path: Path) -> None:
    modules = tiny_modules()
    modules["generator"] = Generator(GeneratorConfig(content_dim=12, emotion_dim=8, timbre_dim=8, channels=16))
    save_bundle(tmp_path / "odd", BundleInfo(name="odd", labels=LABELS), modules)
    load_bundle(tmp_path / "odd")  # each part is consistent with its own config ...
    with pytest.raises(BundleError, match=r"odd: its components do not fit together \(RuntimeError"):
        load_pipeline(str(tmp_path / "odd"), "cpu")  # ... but the content encoder gives 8 channels, not 12


def test_model_that_makes_nan_is_an_error_not_silence(bundle: Path, tmp_path: Path) -> None:
    """Finite fp16 weights of +-6e4 overflow float32 inside the generator: refused at load, not an all-zero wav."""
    weights = bundle / "generator" / "model.safetensors"
    signs = torch.Generator().manual_seed(0)
    state = {k: (torch.randn(v.shape, generator=signs).sign() * 6e4).half() for k, v in load_file(str(weights)).items()}
    save_file(state, str(weights))
    write_manifest(bundle, manifest_of(bundle))
    load_bundle(bundle)  # every weight is finite ...
    with pytest.raises(BundleError, match="turns a test signal into NaN or infinite samples"):
        load_pipeline(str(bundle), "cpu")  # ... but what the model makes is not


def test_cli_prints_one_line_for_a_hostile_bundle(bundle: Path, tmp_path: Path) -> None:
    edit_config(bundle, "recognizer", lambda c: c.update(channels=None))
    result = CliRunner().invoke(app, ["info", "--model", str(bundle), "--device", "cpu"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "channels: expected an integer, got null" in lines[0]


def test_a_bundle_folder_reached_through_a_link_still_loads(tiny_bundle: Path, tmp_path: Path) -> None:
    os.symlink(tiny_bundle, tmp_path / "alias")
    assert load_bundle(tmp_path / "alias").info.name == "tiny"


def test_round_trip_still_works_for_a_fresh_bundle(tmp_path: Path) -> None:
    assert load_pipeline(str(make_tiny_bundle(tmp_path / "b")), "cpu").labels[0] == "neutral"
