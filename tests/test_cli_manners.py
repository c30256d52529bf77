"""What a new user meets first: help text, plain output in pipes, messages that say what to do, quick refusals,
the model card `ainn export` writes, the folder summary and the `--plot` figure. CliRunner's stdout is not a TTY.
"""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from ainn_cli.cli import DEFAULT_EMOTIONS, app
from ainn_cli.commands import convert as convert_command
from tests.conftest import REPO

runner = CliRunner()
HELP_SNAPSHOT = Path(__file__).parent / "snapshots" / "help.txt"


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def test_help_matches_its_snapshot_and_cuts_nothing() -> None:
    """`ainn --help` at 80 columns: every command summary whole (wrapped, never cut at '...')."""
    result = runner.invoke(app, ["--help"], terminal_width=80, prog_name="ainn")
    assert result.exit_code == 0
    assert result.output == HELP_SNAPSHOT.read_text(), (
        "ainn --help changed; if that is intended, write its new text (terminal_width=80) to tests/snapshots/help.txt")
    summaries = result.output.split("Commands:")[1]
    assert "..." not in summaries and summaries.count("convert   Convert SOURCE to the emotion of REFERENCE") == 1


@pytest.mark.parametrize(("command", "usage"), [
    ("convert", "ainn convert [OPTIONS] [SOURCE] [REFERENCE]"),  # SOURCE is optional with --pairs
    ("strength", "ainn strength [OPTIONS] FILES..."),
    ("export", "ainn export [OPTIONS] BUNDLE_DIR OUT_DIR"),
    ("evaluate", "ainn evaluate [OPTIONS] [PAIRS]"),
])
def test_usage_lines_read_like_a_man_page(command: str, usage: str) -> None:
    result = runner.invoke(app, [command, "--help"], prog_name="ainn")
    assert result.output.splitlines()[0] == f"Usage: {usage}"


def test_emotion_help_lists_the_default_models_choices() -> None:
    manifest = json.loads((REPO / "checkpoints" / "default" / "bundle.json").read_text())
    assert sorted(DEFAULT_EMOTIONS) == sorted(manifest["prototypes"])
    text = " ".join(runner.invoke(app, ["convert", "--help"], terminal_width=200).output.split())
    assert f"--emotion <str> Target emotion without a reference (the model's prototype of it): " \
           f"{', '.join(DEFAULT_EMOTIONS)} for the default model" in text


def test_result_line_is_one_plain_line_in_a_pipe(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """rich wrapped it at 80 columns with a trailing space, which broke grep and log parsing."""
    out = tmp_path / ("a-long-output-name-" * 4 + ".wav")
    result = invoke("convert", wav("s.wav"), wav("r.wav", f0=220), "-o", out, "--model", tiny_bundle,
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.stdout.split("\n")
    assert len(lines) == 2 and lines[1] == "" and len(lines[0]) > 120  # one line, longer than any terminal default
    line = lines[0]
    assert line.startswith(f"{out}: ") and line == line.rstrip()  # no trailing space
    assert "real-time factor" in line


def test_pairing_by_name_without_a_match_says_why_and_what_to_do(wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav("small/a.wav"), wav("small/b.wav"), wav("refs/angry.wav", f0=220)
    result = invoke("convert", tmp_path / "small", tmp_path / "refs", "--device", "cpu")
    assert result.exit_code == 2
    message = result.stderr.strip()
    assert "\n" not in message and "none of its 2 audio files has a reference of the same name" in message
    assert "--pairing all" in message and "no audio files to convert" not in message


def test_refusals_that_need_no_model_come_before_torch(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An existing output or an unreadable input is refused without importing torch (3 s and 750 MB before)."""
    src, ref = wav("s.wav"), wav("r.wav", f0=220)
    existing = tmp_path / "out.wav"
    existing.write_bytes(b"keep me")
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    code = ("import sys; from typer.testing import CliRunner; from ainn_cli.cli import app; "
            "r = CliRunner().invoke(app, sys.argv[1:]); print(r.exit_code, 'torch' in sys.modules); print(r.output)")
    for args, why in [((src, ref, "-o", existing), "exists already"),
                      ((bad, ref, "-o", tmp_path / "new.wav"), "not a readable audio file"),
                      ((src, bad, "-o", tmp_path / "new.wav"), "not a readable audio file")]:
        done = subprocess.run([sys.executable, "-c", code, "convert", *map(str, args), "--model", str(tiny_bundle)],
                              capture_output=True, text=True, check=True)
        first, output = done.stdout.split("\n", 1)
        assert first == "1 False" and why in output, done.stdout
    assert existing.read_bytes() == b"keep me" and not (tmp_path / "new.wav").exists()


def test_export_card_and_upload_hint(tiny_bundle: Path, tmp_path: Path) -> None:
    """The card: install from a checkout, no local data paths, fenced JSON figures, the caveats; `hf upload`."""
    bundle = tmp_path / "ravdess_bundle"
    bundle.mkdir()
    for path in tiny_bundle.rglob("*"):
        if path.is_file():
            (bundle / path.relative_to(tiny_bundle)).parent.mkdir(parents=True, exist_ok=True)
            (bundle / path.relative_to(tiny_bundle)).write_bytes(path.read_bytes())
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["metadata"] = {"sources": ["ravdess:../shared/data/ravdess"],
                            "figures": {"wer_whisper_tiny_en": {"converted": 0.0}, "mcd_db": 3.99}}
    (bundle / "bundle.json").write_text(json.dumps(manifest))

    result = invoke("export", bundle, tmp_path / "hub")
    assert result.exit_code == 0, result.output
    assert f"hf upload OWNER/NAME {tmp_path / 'hub'} ." in result.stdout and "huggingface-cli" not in result.stdout
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "pip install ainn" not in card and "pypi.org" not in card and "`pip install .` in the checkout" in card
    assert "../shared" not in card and "- RAVDESS (Livingstone & Russo, 2018)" in card
    assert "the same two sentences" in card and "no WER on other sentences is recorded" in card
    figures = card.split("## Measured figures\n")[1]
    assert figures.startswith("```json\n") and json.loads(figures.split("```json\n")[1].split("```")[0]) == \
        manifest["metadata"]["figures"]

    manifest["metadata"]["figures"]["wer_out_of_corpus"] = 0.153
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    assert invoke("export", bundle, tmp_path / "hub2").exit_code == 0
    assert "WER on sentences outside the training data: 0.153" in (tmp_path / "hub2" / "README.md").read_text()
    manifest["metadata"]["figures"]["wer_out_of_corpus"] = {"value": 0.091, "what": "96 held-out readers' utterances"}
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    assert invoke("export", bundle, tmp_path / "hub3").exit_code == 0
    card = (tmp_path / "hub3" / "README.md").read_text()
    assert "outside the training data: 0.091 (96 held-out readers' utterances)" in card


def test_folder_summary_names_the_reading_the_shard_and_the_current_file(  # type: ignore[no-untyped-def]
        tiny_bundle: Path, wav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["a.wav", "b.wav", "c.wav", "d.wav"]:
        wav(f"in/{name}", 0.5)
    ref = wav("ref.wav", 1.0, f0=230)
    terminal = io.StringIO()
    monkeypatch.setattr(convert_command, "err_console", Console(file=terminal, force_terminal=True, width=120))
    result = invoke("convert", tmp_path / "in", ref, "-o", tmp_path / "out", "--shard", "1/2", "--model",
                    tiny_bundle, "--device", "cpu")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "shard 1/2: 2 of 4 conversions"
    assert lines[1].startswith(f"reference {ref}: read as ") and " at strength " in lines[1]
    assert "a.wav" in terminal.getvalue() and "c.wav" in terminal.getvalue()  # the progress line's current file
    as_json = json.loads(invoke("convert", tmp_path / "in", ref, "-o", tmp_path / "out2", "--shard", "1/2",
                                "--model", tiny_bundle, "--device", "cpu", "--json").stdout)
    first = as_json["converted"][0]
    assert as_json["shard"] == "1/2" and first["reference_label"] in lines[1]
    assert lines[1] == f"reference {ref}: read as {first['reference_label']} at strength {first['reference_strength']}"


def test_an_empty_shard_is_a_note_not_an_error(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav("in/a.wav", 0.5)
    result = invoke("convert", tmp_path / "in", wav("ref.wav"), "--shard", "2/3", "--model", tiny_bundle)
    assert result.exit_code == 0 and "shard 2/3: 0 of 1 conversions, nothing to do" in result.stderr


def test_plot_is_a_1100_by_450_png(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke("strength", wav("clip.wav", 1.5), "--model", tiny_bundle, "--device", "cpu",
                    "--plot", tmp_path / "clip.png")
    assert result.exit_code == 0, result.output
    data = (tmp_path / "clip.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    assert struct.unpack(">II", data[16:24]) == (1100, 450)


def test_plot_names_the_file_and_gives_the_cue_its_own_axis(tmp_path: Path) -> None:
    import matplotlib

    from ainn_cli.display import plot_reading
    from ainn_cli.pipeline import StrengthReading

    cue = tuple(float(v) for v in np.linspace(0, 1, 100))
    reading = StrengthReading(label="sad", probabilities={"neutral": 0.2, "sad": 0.8}, strength=0.6,
                              cue=cue, seconds=100 / 86.1328125)
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text stays text in the SVG
        plot_reading(tmp_path / "x.svg", np.full((80, 100), -5.0), reading, name="/data/take [2].wav")
    svg = (tmp_path / "x.svg").read_text()
    assert "take [2].wav: sad, strength 0.60" in svg and "/data/" not in svg  # the file name in the title
    assert ">cue M<" in svg and ">log-mel (ln)<" in svg  # its own axis, and the colour bar's label
