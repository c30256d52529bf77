"""The commands through Typer's CliRunner, on a tiny random-weight bundle."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner, Result

from ainn_cli.cli import app

runner = CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help_need_no_torch() -> None:
    code = "import sys; from ainn_cli.cli import app; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and "ainn 0.1.0" in result.output


def test_convert_single_file(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, ref = wav("src.wav", 1.0, f0=120), wav("ref.flac", 1.5, f0=220)
    out = tmp_path / "out" / "x.wav"
    result = invoke("convert", src, ref, "-o", out, "--model", tiny_bundle, "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["output"] == str(out) and summary["seconds"] == 1.0 and summary["rtf"] > 0
    data, rate = sf.read(out)
    assert rate == 22050 and data.shape == (22050,) and np.isfinite(data).all()
    assert sf.info(out).subtype == "PCM_16"


def test_convert_prints_summary_and_resamples(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = wav("src.wav", 1.0)
    out = tmp_path / "y.wav"
    result = invoke("convert", src, src, "-o", out, "--model", tiny_bundle, "--device", "cpu",
                    "--sample-rate", "16000", "--strength", "0.3")
    assert result.exit_code == 0, result.output
    assert "real-time factor" in result.stdout and str(out) in result.stdout
    assert sf.info(out).samplerate == 16000 and sf.info(out).frames == 16000


def test_convert_with_prototype_emotion(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "sad.wav"
    result = invoke("convert", wav("s.wav"), "--emotion", "sad", "-o", out, "--model", tiny_bundle,
                    "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["emotion"] == "sad" and out.is_file()


def test_folder_mirrors_tree_resumes_and_reports_bad_file(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ["in/a.wav", "in/sub/b.flac", "in/sub/deeper/c.wav"]:
        wav(name, 0.6)
    (tmp_path / "in" / "sub" / "bad.wav").write_text("not audio")
    ref, out = wav("ref.wav", 1.0, f0=250), tmp_path / "out"
    args = ("convert", tmp_path / "in", ref, "-o", out, "--model", tiny_bundle, "--device", "cpu", "--json")
    first = invoke(*args)
    assert first.exit_code == 1
    report = json.loads(first.stdout)
    assert sorted(Path(c["output"]).relative_to(out).as_posix() for c in report["converted"]) == [
        "a.wav", "sub/b.wav", "sub/deeper/c.wav"]
    assert len(report["failed"]) == 1 and "bad.wav" in report["failed"][0]["reason"]
    (out / "sub" / "b.wav").unlink()
    second = invoke(*args)
    again = json.loads(second.stdout)
    assert [Path(c["output"]).name for c in again["converted"]] == ["b.wav"]
    assert len(again["skipped"]) == 2 and second.exit_code == 1


def test_folder_reference_pairings(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav("src/one.wav", 0.5), wav("src/two.wav", 0.5)
    wav("refs/one.wav", 0.5, f0=200), wav("refs/other.wav", 0.5, f0=260)
    base = ("convert", tmp_path / "src", tmp_path / "refs", "--model", tiny_bundle, "--device", "cpu", "--json")
    same = json.loads(invoke(*base, "-o", tmp_path / "same").stdout)
    assert [Path(c["output"]).name for c in same["converted"]] == ["one.wav"]
    every = json.loads(invoke(*base, "-o", tmp_path / "all", "--pairing", "all").stdout)
    names = sorted(Path(c["output"]).name for c in every["converted"])
    assert names == ["one__ref-one.wav", "one__ref-other.wav", "two__ref-one.wav", "two__ref-other.wav"]


def test_shards_cover_every_file_once(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for i in range(7):
        wav(f"in/f{i}.wav", 0.3)
    ref, seen = wav("ref.wav", 0.5), []
    for k in range(1, 4):
        result = invoke("convert", tmp_path / "in", ref, "-o", tmp_path / "out", "--shard", f"{k}/3",
                        "--model", tiny_bundle, "--device", "cpu", "--json")
        seen += [c["source"] for c in json.loads(result.stdout)["converted"]]
    assert sorted(seen) == sorted(str(p) for p in (tmp_path / "in").glob("*.wav"))


def test_strength_json_and_plot(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = wav("r.wav", 1.0)
    result = invoke("strength", clip, "--model", tiny_bundle, "--device", "cpu", "--json",
                    "--plot", tmp_path / "r.png")
    assert result.exit_code == 0, result.output
    reading = json.loads(result.stdout)
    assert reading["label"] in reading["probabilities"] and "emotion" not in reading  # the API's name
    assert abs(sum(reading["probabilities"].values()) - 1) < 1e-3 and 0 <= reading["strength"] <= 1
    assert len(reading["cue"]) == 22050 // 256 and max(reading["cue"]) <= 1
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_strength_terminal_view(tiny_bundle: Path, wav) -> None:  # type: ignore[no-untyped-def]
    result = invoke("strength", wav("r.wav", 1.0), "--model", tiny_bundle, "--device", "cpu")
    assert result.exit_code == 0 and "cue M" in result.stdout and "strength" in result.stdout


def test_info_lists_components(tiny_bundle: Path) -> None:
    result = invoke("info", "--model", tiny_bundle, "--device", "cpu", "--json")
    data = json.loads(result.stdout)
    assert set(data["parameters"]) == {"content_encoder", "emotion_encoder", "recognizer", "generator", "vocoder"}
    assert data["device"] == "cpu" and data["path"] == str(tiny_bundle)


def test_export_writes_model_card(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    assert invoke("export", tiny_bundle, out).exit_code == 0
    assert "## Licences" in (out / "README.md").read_text()
    assert (out / "bundle.json").is_file() and (out / "vocoder" / "model.safetensors").is_file()
    assert invoke("export", tiny_bundle, out).exit_code == 1  # not silently replaced
