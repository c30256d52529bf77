"""The `ainn` command: each Typer command builds its options and calls its function in `ainn_cli.commands`
(imported when the command runs, so `ainn --help` imports no torch)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from typer.core import TyperCommand, TyperGroup

from ainn_cli import __version__
from ainn_cli.emotions import LABELS
from ainn_cli.errors import AinnError

app = typer.Typer(
    help="Emotional voice conversion (AINN): say a source's words, in its voice, with a reference's emotion.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None,
)
F = TypeVar("F", bound=Callable[..., Any])

# Options shared by several commands, defined once.
ModelOpt = Annotated[str | None, typer.Option("--model", "-m", help="Bundle: registry name (default), folder, or Hub id owner/name or owner/name@revision.")]
DeviceOpt = Annotated[str, typer.Option("--device", "-d", help="auto (CUDA when present), cpu, cuda or cuda:N.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
DEFAULT_EMOTIONS = LABELS  # the default bundle's prototypes (tested)


class AinnCommand(TyperCommand):
    """A command whose summary in `ainn --help` is never cut and whose usage line reads like a man page."""

    def get_short_help_str(self, limit: int = 45) -> str:
        """The docstring's first paragraph, whole: `ainn --help` wraps it instead of cutting it at `limit`."""
        return " ".join((self.help or "").split("\n\n")[0].split())

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """`[OPTIONS] SOURCE [REFERENCE]`, not typer 0.29's `[OPTIONS] {source} [reference]`."""
        return [piece.replace("{", "").replace("}", "").upper() for piece in super().collect_usage_pieces(ctx)]


class AinnGroup(TyperGroup):
    """A command group (`ainn data`) whose summary in `ainn --help` is never cut either."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return " ".join((self.help or "").split("\n\n")[0].split())


def command() -> Callable[[F], F]:
    """`app.command()` for an `AinnCommand`."""
    return app.command(cls=AinnCommand)


def friendly(command: F) -> F:
    """Turn an AinnError into one line on stderr and its exit code; Ctrl-C into exit 130."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AinnError as err:
            from ainn_cli.console import say

            say(str(err))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as stop:
            from ainn_cli.console import err_console

            hint = str(stop) or RESUME_HINTS.get(command.__name__)  # where it stopped, when the raiser knows
            err_console.print(f"interrupted{'; ' + hint if hint else ''}", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None

    return cast(F, wrapper)


AGAIN = "run the same command again to continue"
RESUME_HINTS = {  # what an interrupted command says about going on, by its function's name
    "convert": f"{AGAIN}: outputs already written are kept and skipped",
    "train": "the last step is saved in OUT/STAGE/latest.pt; run the same command with --resume to continue",
    "data_ravdess": f"{AGAIN}: the download resumes where it stopped and converted files are kept",
    "data_librispeech": f"{AGAIN}: the download resumes where it stopped and converted files are kept",
    "evaluate": f"{AGAIN} (with --overwrite to replace the result files it wrote)",
}


def _succeed(ok: bool) -> None:
    """Exit 1 when a command reports a failure (some files failed; each was reported already)."""
    if not ok:
        raise typer.Exit(1)


def _version(value: bool) -> None:
    """--version: print it and stop."""
    if value:
        typer.echo(f"ainn {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")] = False,
) -> None:
    """Convert the emotion of speech, read emotion and strength, train and export AINN models."""


@command()
@friendly
def convert(
    source: Annotated[Path | None, typer.Argument(help="Source speech: an audio file or a folder (converted recursively). Not with --pairs.", show_default=False)] = None,
    reference: Annotated[Path | None, typer.Argument(help="Reference speech whose emotion and strength to take: a file or a folder.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file, .wav, .flac or .ogg (the extension sets the format), or folder for folder input (wav). Default: SRC-REF.wav / SRC-ainn/.")] = None,
    strength: Annotated[float | None, typer.Option(help="Emotional strength of the output, 0 (neutral) to 1 (full). Default: the reference's.")] = None,
    emotion: Annotated[str | None, typer.Option(help=f"Target emotion without a reference (the model's prototype of it): {', '.join(DEFAULT_EMOTIONS)} for the default model; `ainn info` lists another model's.")] = None,
    tempo: Annotated[bool | None, typer.Option("--tempo/--no-tempo", show_default=False, help="Also follow the reference's speaking rate relative to the source's (a slower reference makes a longer output). Default: as the model says; the default model does not (it cost emotion heard on held-out speakers, see the README).")] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    half: Annotated[bool, typer.Option(help="fp16 on CUDA (the vocoder stays fp32).")] = False,
    sample_rate: Annotated[int | None, typer.Option("--sample-rate", help="Output sample rate in Hz (default: the model's own).")] = None,
    pairing: Annotated[str, typer.Option(help="With a reference folder: same-name (the reference with the source's file name, extension aside) or all (every source with every reference).")] = "same-name",
    shard: Annotated[str | None, typer.Option(help="Convert only part K of N of a folder, e.g. 2/8, for parallel jobs.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs (otherwise they are kept, and skipped in folders).")] = False,
    keep_length: Annotated[bool, typer.Option("--keep-length", help="Make the output exactly as long as the source, to the sample (for dubbing); the speaking rate stays the source's.")] = False,
    pitch: Annotated[str | None, typer.Option(metavar="ST", help="Pitch by hand: N semitones from the source's median (e.g. 3 or -2), or auto+N / auto-N to offset the model's change. Default: auto, the model's.", show_default=False)] = None,
    level: Annotated[str | None, typer.Option(metavar="DB", help="Loudness by hand: N dB from the source's speech level, or auto+N / auto-N. Default: auto.", show_default=False)] = None,
    rate: Annotated[str | None, typer.Option(metavar="X", help="Speaking rate by hand: X times the source's (1.2 faster, 0.8 slower; 0.61..1.64), or auto*X. Default: auto.", show_default=False)] = None,
    pairs: Annotated[Path | None, typer.Option(help="CSV of conversions, one per row: source, reference or emotion, optional strength and output (sources relative to the CSV; outputs in -o, default LIST-ainn/). Resumable like a folder.", show_default=False)] = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert SOURCE to the emotion of REFERENCE (or --emotion), keeping its words and voice.

    Examples:

      ainn convert neutral.wav angry.wav -o out.wav

      ainn convert neutral.wav --emotion sad --strength 0.5 -o sad.wav

      ainn convert neutral.wav sad.wav --tempo -o sad.wav     (also take the reference's speaking rate)

      ainn convert in_dir/ angry.wav -o out_dir/     (resumes: existing outputs are skipped)

      ainn convert neutral.wav angry.wav --keep-length -o dub.wav     (exactly the source's length)

      ainn convert neutral.wav --emotion happy --pitch auto+2 --level 0 -o out.wav

      ainn convert --pairs list.csv -o out_dir/     (rows: source,reference,emotion,strength,output)

    In a pipe or a log, a folder or list prints one line per file with the time left. Ctrl-C stops; the same
    command again continues where it stopped.
    """
    from ainn_cli.commands.convert import ConvertOptions, run_convert

    _succeed(run_convert(ConvertOptions(
        source=source, reference=reference, output=output, strength=strength, emotion=emotion, tempo=tempo, model=model,
        device=device, half=half, sample_rate=sample_rate, pairing=pairing, shard=shard, overwrite=overwrite,
        as_json=json_out, quiet=quiet, keep_length=keep_length, pitch=pitch, level=level, rate=rate, pairs=pairs,
    )))


@command()
@friendly
def strength(
    files: Annotated[list[Path], typer.Argument(help="Audio files or folders to read.")],
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    plot: Annotated[Path | None, typer.Option(help="Save a figure (mel, cue M, probabilities): a .png/.pdf/.svg file, or a folder (one PNG per input, tree mirrored).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing plot files.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Read the emotion, its strength (0 neutral to 1 full-blown) and where in time it sits (cue M).

    The default reads with Whisper tiny.en's frozen encoder and a classifier fitted on four corpora
    (acted English and German, Urdu talk shows, read audiobooks). On speakers it never heard it names
    the category of 5 clips in 10 (Urdu talk shows) to 8 in 10 (German acting) and reads held-out
    audiobook narration as neutral; strength is 1 - P(neutral).

    Examples:

      ainn strength clip.wav --plot clip.png

      ainn strength clips/ --json > readings.json
    """
    from ainn_cli.files import refuse_a_missing_input

    refuse_a_missing_input(files)  # at once: nothing heavy is imported for a typo
    from ainn_cli.commands.strength import StrengthOptions, run_strength

    _succeed(run_strength(StrengthOptions(files=tuple(files), model=model, device=device, plot=plot,
                                          overwrite=overwrite, as_json=json_out)))


@command()
@friendly
def info(model: ModelOpt = None, device: DeviceOpt = "auto", json_out: JsonOpt = False) -> None:
    """Versions, the device auto would choose, and the bundle's components and parameter counts.

    Example: ainn info --model checkpoints/paper --json
    """
    from ainn_cli.commands.info import InfoOptions, run_info

    run_info(InfoOptions(model=model, device=device, as_json=json_out))


@command()
@friendly
def export(
    bundle_dir: Annotated[Path, typer.Argument(help="A bundle folder (or registry name).")],
    out_dir: Annotated[Path, typer.Argument(help="Where to write the Hub-ready folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace the ainn bundle in OUT_DIR (a folder holding anything else is never replaced).")] = False,
) -> None:
    """Write a Hub-ready copy of a bundle with a model card (README.md).

    The card's facts (training data and speakers, steps, figures, caveats) come from the bundle's own
    bundle.json. Example: ainn export runs/mine-bundle hub_ready/ && hf upload OWNER/NAME hub_ready .
    """
    from ainn_cli.commands.info import ExportOptions, run_export

    run_export(ExportOptions(bundle=str(bundle_dir), out_dir=out_dir, overwrite=overwrite))


@command()
@friendly
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints, logs, resolved config, split).")],
    config: Annotated[Path | None, typer.Option(help="TOML file with hyperparameters (see configs/default.toml).")] = None,
    stage: Annotated[str, typer.Option(help="stage1, stage2, both, or recognizer (R alone, with augmentation).")] = "both",
    data: Annotated[list[str] | None, typer.Option(help="Data source KIND:PATH, repeatable, replacing the config's (a relative PATH is from the current folder): ravdess:DIR (official names, as `ainn data ravdess` writes), librispeech:DIR (its manifest.csv, or READER/*.flac; all neutral), esd:DIR (SPEAKER/Emotion/*.wav), emodb:DIR (EmoDB's wav files under their original names, e.g. 03a01Wa.wav) or manifest:FILE.csv (columns path, speaker, emotion; optional intensity (neutral|normal|strong or 0..1), text, take; paths relative to the CSV).")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Folder the config's relative data paths are under (default: $AINN_DATA, else ./data).", show_default=False)] = None,
    cache: Annotated[Path | None, typer.Option("--cache", help="Feature cache folder: every training file's log-mel and pitch, kept by content hash and shared by runs (default: the config's data.cache_dir, .cache/ainn-features under the current folder). Safe to delete.", show_default=False)] = None,
    init: Annotated[Path | None, typer.Option(help="Checkpoint to start from (e.g. RUN/stage1/best.pt for stage2).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run's latest checkpoint exactly.")] = False,
    export_to: Annotated[Path | None, typer.Option("--export", help="Write a bundle here when training ends: a new or empty folder, or one holding an ainn bundle (replaced).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a config key with a TOML value, e.g. --set stage1.steps=100 --set variant=no_cue --set 'stage2.lambdas.ecc=1.0'.")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", help="auto, cpu, cuda or cuda:N (default: the config's, auto).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train AINN (Stage I, then Stage II) and optionally export a bundle. Ctrl-C saves `latest`; --resume continues.

    The configs in configs/ read RAVDESS (and LibriSpeech) under the data root; get them with `ainn data ravdess`
    and `ainn data librispeech`. A log shows one line per `log_every` steps with the time left.

    Examples:

      ainn train --config configs/default.toml --out runs/mine --export mine/

      ainn train --config configs/default.toml --out runs/quick --set stage1.steps=20 --set stage2.steps=10

      ainn train --out runs/esd --data esd:/data/ESD --set stage1.steps=20000

    Several GPUs or machines: torchrun --nproc_per_node N -m ainn_cli train ... (DDP; gloo on CPU).
    """
    from ainn_cli.commands.train import TrainOptions, run_train

    run_train(TrainOptions(out=out, config=config, stage=stage, data=tuple(data or ()), init=init, resume=resume,
                           export=export_to, overrides=tuple(overrides or ()), device=device, quiet=quiet,
                           data_root=data_root, cache=cache))


@command()
@friendly
def evaluate(
    pairs: Annotated[Path | None, typer.Argument(help="CSV, one row per utterance: converted (wav) or source + reference, target_emotion; optional target, text, target_strength, id. Paths relative to the CSV.")] = None,
    esd: Annotated[Path | None, typer.Option(help="ESD root instead of a CSV: neutral -> angry/happy/sad/surprise parallel pairs of speakers 0011-0020.")] = None,
    split: Annotated[str, typer.Option(help="With --esd: evaluation, test or train.")] = "test",
    model: ModelOpt = None,
    judge: Annotated[str | None, typer.Option(help="Bundle whose recognizer reads emotion and strength; without it those columns stay empty.")] = None,
    device: DeviceOpt = "auto",
    out: Annotated[Path | None, typer.Option(help="Write results.csv (per utterance) and summary.json here.")] = None,
    plots: Annotated[Path | None, typer.Option(help="Write confusion.png, strength.png and mcd_hist.png here (needs matplotlib).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing result and plot files.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Score converted speech: MCD, F0 RMSE/correlation, emotion accuracy, strength RMSE, WER, speaker similarity.

    Rows without a converted wav are converted with --model. Accuracy and strength are read by --judge,
    never silently by the converting model. Aggregates per emotion and overall, with bootstrap 95% CIs.

    Examples:

      ainn evaluate pairs.csv --judge judge_bundle/ --out results/ --plots results/

      ainn evaluate --esd /data/ESD --split test --model mine/ --judge judge_bundle/
    """
    from ainn_cli.commands.train import EvaluateOptions, run_evaluate

    _succeed(run_evaluate(EvaluateOptions(pairs=pairs, esd=esd, split=split, model=model, judge=judge, device=device,
                                          out=out, plots=plots, overwrite=overwrite, as_json=json_out)))


@command()
@friendly
def serve(
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    host: Annotated[str, typer.Option(help="Address to listen on. Anything but 127.0.0.1 (or ::1, localhost) lets other machines use the page, with a warning.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one, printed).")] = 7860,
) -> None:
    """Open a local web page to convert, listen A/B and read strength (needs the web extra: pip install -e '.[web]').

    Loads the model once and prints the address; conversions run one at a time, in turn. Ctrl-C stops it.

    Examples:

      ainn serve     (then open http://127.0.0.1:7860/)

      ainn serve --model paper --port 8000

      ainn serve --host 0.0.0.0     (other machines on the network may use it: it warns)
    """
    from ainn_cli.serve.command import ServeOptions, run_serve

    run_serve(ServeOptions(model=model, device=device, host=host, port=port))


data_app = typer.Typer(
    cls=AinnGroup, no_args_is_help=True, rich_markup_mode=None,
    help="Download RAVDESS or LibriSpeech and convert it to the training layout (mono 16-bit FLAC, manifest.csv)."
         "\n\nThe folder defaults to DATA_ROOT/ravdess or DATA_ROOT/librispeech, where DATA_ROOT is $AINN_DATA or "
         "./data: the folder the configs in configs/ read their corpora from. Re-running resumes.",
)
app.add_typer(data_app, name="data")
FolderArg = Annotated[Path | None, typer.Argument(help="Corpus folder to fill (default: DATA_ROOT/KIND, DATA_ROOT = $AINN_DATA or ./data).", show_default=False)]
MirrorOpt = Annotated[str | None, typer.Option(help="Download from this base address instead (the file name is appended; the checksum stays). Also AINN_DATA_MIRROR.")]
KeepArchiveOpt = Annotated[bool, typer.Option(help="Keep the downloaded archive in FOLDER/.download (otherwise removed once converted).")]


@data_app.command("ravdess", cls=AinnCommand)
@friendly
def data_ravdess(folder: FolderArg = None, mirror: MirrorOpt = None, keep_archive: KeepArchiveOpt = False,
                 quiet: QuietOpt = False) -> None:
    """RAVDESS speech (Zenodo record 1188976, Audio_Speech_Actors_01-24.zip, 208 MB, md5-checked; CC BY-NC-SA 4.0).

    Gives FOLDER/Actor_XX/03-01-EE-II-SS-RR-AA.flac (1440 files, 24 actors) and manifest.csv (path, actor, gender,
    emotion, intensity, statement, repetition, text, duration_s): the `ravdess:` source of ainn train.

    Example: ainn data ravdess            (then: ainn train --config configs/default.toml --out runs/mine)
    """
    from ainn_cli.commands.data import DataOptions, run_data

    run_data(DataOptions(corpus="ravdess", folder=folder, mirror=mirror, keep_archive=keep_archive, quiet=quiet))


@data_app.command("librispeech", cls=AinnCommand)
@friendly
def data_librispeech(
    folder: FolderArg = None,
    subset: Annotated[str, typer.Option(help="dev-clean (337 MB, 40 readers), test-clean, dev-other, test-other, train-clean-100 (6.3 GB), train-clean-360 or train-other-500.")] = "dev-clean",
    mirror: MirrorOpt = None, keep_archive: KeepArchiveOpt = False, quiet: QuietOpt = False,
) -> None:
    """A LibriSpeech subset (OpenSLR resource 12, SUBSET.tar.gz, sha256-checked; CC BY 4.0): read audiobook speech.

    Gives FOLDER/READER/READER-CHAPTER-UTT.flac and manifest.csv (path, speaker, gender, utt_id, duration_s, text,
    subset, chapter, source_path) with the official transcripts: the `librispeech:` source of ainn train. Several
    subsets can share one folder.

    Example: ainn data librispeech --subset dev-clean
    """
    from ainn_cli.commands.data import DataOptions, run_data

    run_data(DataOptions(corpus="librispeech", folder=folder, subset=subset, mirror=mirror, keep_archive=keep_archive,
                         quiet=quiet))


def main() -> None:
    """The `ainn` console script."""
    app()


if __name__ == "__main__":
    main()
