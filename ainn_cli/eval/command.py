"""`ainn evaluate`: rows of converted speech -> per-utterance metrics -> per-emotion and overall aggregates.

    PAIRS.csv or --esd ROOT --> Pair (converted wav, or source + reference converted with --model)
      --> scored: MCD, F0, judged emotion and strength, WER, speaker similarity     ainn_cli.eval.scoring
    -> UtteranceResult per row -> Estimate with a bootstrap 95% CI per emotion and overall
    -> rich table, results.csv + summary.json (--out), PNG plots (--plots)

This module is the command: which rows, which outputs (checked before any model loads), the progress bar and
the report. The rows come from `ainn_cli.eval.pairs`; results, table, files and plots are `ainn_cli.eval.report`'s.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape

from ainn_cli.console import Ticker, err_console, say
from ainn_cli.display import pyplot
from ainn_cli.errors import AinnError, OutputError, UsageError
from ainn_cli.eval.pairs import EMOTIONS, Pair, esd_pairs, read_pairs
from ainn_cli.eval.report import (
    OUTPUT_FILES,
    PLOT_FILES,
    Evaluation,
    UtteranceResult,
    results_csv,
    summary_json,
    summary_table,
    write_plots,
)
from ainn_cli.eval.scoring import Scorers, aggregate, evaluate_pair, load_scorers, needs_model
from ainn_cli.files import check_writable, write_bytes

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline

WIDE = 1000  # columns a table may take in a pipe (it takes only what it needs)


@dataclass(frozen=True)
class EvaluateOptions:
    """`ainn evaluate`: rows from `pairs` (a CSV) or `esd` (an ESD root), scored, summarised and written."""

    pairs: Path | None = None
    esd: Path | None = None
    split: str = "test"  # with `esd`
    model: str | None = None  # converts rows without a `converted` wav
    judge: str | None = None  # the bundle whose recognizer reads emotion and strength
    device: str = "auto"
    out: Path | None = None
    plots: Path | None = None
    overwrite: bool = False
    as_json: bool = False


def evaluate(options: EvaluateOptions) -> bool:
    """The body of `ainn evaluate`; False when any row failed."""
    pairs = _pairs(options)
    _check_outputs(options, pairs)
    model = _converting_model(pairs, options)
    scorers = load_scorers(pairs, options.judge, options.model, options.device)
    results = _evaluate_all(pairs, model, scorers, quiet=options.as_json)
    summary, counts = aggregate(results)
    evaluation = _write_outputs(Evaluation(results, summary, counts, scorers.methods, scorers.notes), options,
                                labels=scorers.judge.labels if scorers.judge else EMOTIONS)
    _print(evaluation, options)
    return not any(r.error for r in results)


def _pairs(options: EvaluateOptions) -> list[Pair]:
    """The rows: of PAIRS.csv or of --esd ROOT, exactly one of them."""
    if options.pairs is not None and options.esd is None:
        return read_pairs(options.pairs)
    if options.esd is not None and options.pairs is None:
        return esd_pairs(options.esd, options.split)
    raise UsageError("give either PAIRS.csv or --esd ESD_ROOT")


def _check_outputs(options: EvaluateOptions, pairs: list[Pair]) -> None:
    """Refuse existing outputs without --overwrite, any output that is one of the inputs (even with --overwrite:
    the pairs CSV, a row's audio), and a missing matplotlib, before any model loads."""
    if options.plots is not None:
        pyplot("--plots")
    outputs = [options.out / name for name in OUTPUT_FILES] if options.out is not None else []
    outputs += [options.plots / name for name in PLOT_FILES] if options.plots is not None else []
    inputs = {os.path.realpath(path): path for path in _inputs(options, pairs)}
    for path in outputs:
        taken = inputs.get(os.path.realpath(path))
        if taken is not None:
            raise OutputError(f"{path}: is an input of this evaluation ({taken}); it is never written over, "
                              "--overwrite or not: choose another folder")
        check_writable(path, options.overwrite)


def _inputs(options: EvaluateOptions, pairs: list[Pair]) -> list[Path]:
    """The files an evaluation reads: the pairs CSV and every row's audio."""
    rows = [p for pair in pairs for p in (pair.converted, pair.source, pair.reference, pair.target) if p is not None]
    return [*([options.pairs] if options.pairs is not None else []), *rows]


def _converting_model(pairs: list[Pair], options: EvaluateOptions) -> Pipeline | None:
    """--model, when some row has no converted wav; else None."""
    if not needs_model(pairs):
        return None
    from ainn_cli.pipeline import load_pipeline

    return load_pipeline(options.model, options.device)


def _evaluate_all(pairs: list[Pair], model: Pipeline | None, scorers: Scorers, quiet: bool) -> tuple[
        UtteranceResult, ...]:
    """Every row in order; a failing row is reported on stderr and kept with its error."""
    results = []
    with Ticker("evaluating", len(pairs), disable=quiet, console=err_console) as ticker:
        for pair in pairs:
            ticker.naming(pair.id)
            try:
                results.append(evaluate_pair(pair, model, scorers))
            except AinnError as err:
                say(f"{pair.id}: {err}")
                results.append(UtteranceResult(pair.id, pair.target_emotion, error=str(err)))
            ticker.advance(name=pair.id, note="failed" if results[-1].error else "")
    return tuple(results)


def _write_outputs(evaluation: Evaluation, options: EvaluateOptions, labels: tuple[str, ...]) -> Evaluation:
    """The plots (their notes join the evaluation's), then results.csv and summary.json."""
    notes = list(evaluation.notes)
    if options.plots is not None:
        notes += write_plots(options.plots, evaluation.results, labels, options.overwrite)
    evaluation = dataclasses.replace(evaluation, notes=tuple(notes))
    if options.out is not None:
        write_bytes(options.out / "results.csv", results_csv(evaluation.results).encode(), options.overwrite)
        write_bytes(options.out / "summary.json", (json.dumps(summary_json(evaluation), indent=2) + "\n").encode(),
                    options.overwrite)
    return evaluation


def _print(evaluation: Evaluation, options: EvaluateOptions) -> None:
    """The summary as JSON on stdout; or the table and methods on stdout and the notes on stderr."""
    if options.as_json:
        print(json.dumps(summary_json(evaluation)))
        return
    console = Console()
    if not console.is_terminal:  # a pipe or a log: the table at its natural width, headers whole, never cut at 80
        console = Console(width=WIDE)
    console.print(summary_table(evaluation))
    for key, method in evaluation.methods.items():
        console.print(f"[dim]{key}: {escape(method)}[/]", highlight=False)
    for note in evaluation.notes:
        say(note, "note")
