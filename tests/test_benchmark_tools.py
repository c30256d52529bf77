"""The evaluation helpers in benchmarks/: RAVDESS pairs, the strength curve and the espeak-ng content set."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from ainn_cli.audio import SAMPLE_RATE, read_audio
from ainn_cli.train.data import load_source
from benchmarks.espeak_corpus import (
    FIELDS,
    TEST_SENTENCES,
    TEST_VOICES,
    TRAIN_VOICES,
    content_pairs,
    synthesise,
    train_sentences,
    unconverted,
)
from benchmarks.prosody_eval import kept_pitch
from benchmarks.ravdess_pairs import rows, write_csv
from benchmarks.strength_curve import curve, ranks, spearman


def test_ranks_and_spearman_by_hand() -> None:
    np.testing.assert_array_equal(ranks(np.array([3.0, 1.0, 1.0, 2.0])), [4.0, 1.5, 1.5, 3.0])
    assert spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)
    # d = rank differences (0, 0, 1, -1, 0): rho = 1 - 6 * 2 / (5 * 24) = 0.9
    assert spearman(np.array([1.0, 2, 3, 4, 5]), np.array([1.0, 2, 4, 3, 5])) == pytest.approx(0.9)


def _voiced_tone(f0: float, seconds: float = 1.5) -> np.ndarray:
    """A 10-harmonic tone at `f0` Hz between 0.25 s of silence on each side."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    tone = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 11))
    pad = np.zeros(SAMPLE_RATE // 4)
    return np.concatenate([pad, 0.2 * tone, pad]).astype(np.float32)


@pytest.mark.parametrize("tracker", ["yin", "harvest"])
def test_kept_pitch_reads_a_one_semitone_shift(tracker: str) -> None:
    if tracker == "harvest":
        pytest.importorskip("pyworld")
    same = kept_pitch(_voiced_tone(150.0), _voiced_tone(150.0), tracker)
    up = kept_pitch(_voiced_tone(150.0), _voiced_tone(150.0 * 2 ** (1 / 12)), tracker)
    assert abs(same["median_st"]) < 0.05 and abs(same["framewise_st"]) < 0.05
    assert up["median_st"] == pytest.approx(1.0, abs=0.1) and up["framewise_st"] == pytest.approx(1.0, abs=0.1)
    noise = np.random.default_rng(0).normal(0.0, 0.05, SAMPLE_RATE).astype(np.float32)
    unvoiced = kept_pitch(_voiced_tone(150.0), noise, tracker)
    assert np.isnan(unvoiced["median_st"]) and np.isnan(unvoiced["framewise_st"])


def test_curve_reports_monotonic_means() -> None:
    table = [{"id": f"u{u}_at{level}", "requested_strength": str(level), "measured_strength": str(level * 0.8 + u / 10)}
             for u in range(3) for level in (0.0, 0.5, 1.0)]
    result = curve(table)
    assert result["monotonic"] is True and result["levels"] == [0.0, 0.5, 1.0]
    assert result["spearman_per_utterance_mean"] == pytest.approx(1.0) and result["n"] == 9


def test_pairs_never_reuse_the_source_sentence_as_reference(tmp_path: Path) -> None:
    table = rows(tmp_path, ["23"])
    assert len(table["converted"]) == 16 and len(table["sweep"]) == 80
    for row in table["converted"]:
        source, reference, target = (Path(row[k]).name.split("-") for k in ("source", "reference", "target"))
        assert source[4] == target[4] != reference[4]  # same sentence for source and target only
        assert source[2] == "01" and target[2] == reference[2] != "01"


def test_csv_header_is_what_evaluate_reads(tmp_path: Path) -> None:
    from ainn_cli.eval.pairs import read_pairs
    from benchmarks.ravdess_pairs import FIELDS

    path = tmp_path / "p.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerow({"id": "x", "converted": "x.wav", "target_emotion": "angry"})
    (pair,) = read_pairs(path)
    assert pair.target_emotion == "angry" and pair.converted == tmp_path / "x.wav"


def test_espeak_corpus_keeps_test_sentences_and_voices_out_of_training(tmp_path: Path) -> None:
    sentences = train_sentences(120)
    assert len(set(sentences)) == 120 and not set(sentences) & set(TEST_SENTENCES)
    assert all(s[0].isupper() and s[-1] in ".?" for s in sentences)
    assert not set(TRAIN_VOICES) & set(TEST_VOICES)
    test_rows = [{"path": f"test/test_{i:04d}.wav", "text": t} for i, t in enumerate(TEST_SENTENCES[:3])]
    pairs = content_pairs(tmp_path, test_rows, tmp_path / "ravdess")
    assert len(pairs) == 6 and len({p["target_emotion"] for p in pairs}) == 4
    for pair in pairs:  # references: strong emotional clips of held-out actors 23 and 24 only
        parts = Path(pair["reference"]).name.split("-")
        assert parts[6].split(".")[0] in {"23", "24"} and parts[2] != "01" and parts[3] == "02"
    sources = unconverted(pairs)
    assert [s["converted"] for s in sources] == sorted({p["source"] for p in pairs})
    assert all(s["reference"] == "" for s in sources)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_espeak_corpus_writes_a_manifest_that_training_reads(tmp_path: Path) -> None:
    items = [("Five thin violins.", TRAIN_VOICES[0]), ("Who fixed it?", TRAIN_VOICES[5])]
    rows = synthesise(tmp_path, "train", items, seed=0)
    write_csv(tmp_path / "train.csv", rows, FIELDS)
    utterances = load_source(f"manifest:{tmp_path / 'train.csv'}")
    assert [u.speaker for u in utterances] == ["espeak_en-us+m1", "espeak_en-us+f1"]
    assert {u.emotion for u in utterances} == {"neutral"} and utterances[1].text == "Who fixed it?"
    audio = read_audio(Path(utterances[0].path))
    assert audio.source_rate == SAMPLE_RATE and 0.3 < audio.seconds < 4


def test_whisper_strength_regression_ranks_intensity_and_shares_one_scale() -> None:
    """On synthetic speaker-normalised features where one direction carries the intensity: the chosen ridge
    ranks the held-out rows' intensity, and the calibration maps neutral to 0 and strong to 1 on average."""
    from benchmarks.judges.whisper_strength import fit_emotion

    rng = np.random.default_rng(0)
    actors = np.repeat(np.arange(1, 25), 12)
    y = np.tile([0.0] * 4 + [0.5] * 4 + [1.0] * 4, 24)
    x = rng.normal(size=(len(y), 16))
    x[:, 3] += 6.0 * y  # the emotion's direction, with unit noise around it
    regression, report = fit_emotion(x, y, actors)
    assert cast(float, report["test_spearman"]) > 0.8 and report["ridge"] in (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    train = actors <= 22
    judged = regression(x[train])
    assert judged[y[train] == 0].mean() == pytest.approx(0.0, abs=1e-6)
    assert judged[y[train] == 1].mean() == pytest.approx(1.0, abs=1e-6)
    means = report["test_mean_by_intensity"]
    assert isinstance(means, dict) and means["0.0"] < means["0.5"] < means["1.0"]


def test_measures_tell_a_voiced_tone_from_noise_and_a_steady_level_from_a_moving_one(tmp_path: Path) -> None:
    pytest.importorskip("pyworld")
    import soundfile as sf

    from benchmarks.cross_corpus import measures

    tone = _voiced_tone(150.0, seconds=1.5)
    t = np.arange(len(tone)) / SAMPLE_RATE
    pulsing = (tone * (0.55 + 0.45 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)  # loudness moving 3 times a s
    noise = np.random.default_rng(0).normal(0.0, 0.05, len(tone)).astype(np.float32)
    for name, wave in (("tone", tone), ("pulsing", pulsing), ("noise", noise)):
        sf.write(tmp_path / f"{name}.wav", wave, SAMPLE_RATE)
    steady, moving, hiss = (measures(tmp_path / f"{n}.wav") for n in ("tone", "pulsing", "noise"))
    assert steady.voiced > 0.9 and hiss.voiced < 0.2
    assert steady.f0 == pytest.approx(12 * np.log2(1.5), abs=0.1)  # 150 Hz is 7.02 semitones re 100 Hz
    assert moving.energy_sd > steady.energy_sd + 3.0
    assert steady.energy == pytest.approx(10 * np.log10(np.mean(np.square(tone[tone != 0]))), abs=1.0)
