"""The evaluation helpers in benchmarks/: pairs from a RAVDESS-like tree and the strength curve."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from benchmarks.ravdess_pairs import rows
from benchmarks.strength_curve import curve, ranks, spearman


def test_ranks_and_spearman_by_hand() -> None:
    np.testing.assert_array_equal(ranks(np.array([3.0, 1.0, 1.0, 2.0])), [4.0, 1.5, 1.5, 3.0])
    assert spearman(np.arange(5.0), np.arange(5.0) ** 3) == pytest.approx(1.0)
    assert spearman(np.arange(5.0), -np.arange(5.0)) == pytest.approx(-1.0)
    # d = rank differences (0, 0, 1, -1, 0): rho = 1 - 6 * 2 / (5 * 24) = 0.9
    assert spearman(np.array([1.0, 2, 3, 4, 5]), np.array([1.0, 2, 4, 3, 5])) == pytest.approx(0.9)


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
    from ainn_cli.eval_pairs import read_pairs
    from benchmarks.ravdess_pairs import FIELDS

    path = tmp_path / "p.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerow({"id": "x", "converted": "x.wav", "target_emotion": "angry"})
    (pair,) = read_pairs(path)
    assert pair.target_emotion == "angry" and pair.converted == tmp_path / "x.wav"
