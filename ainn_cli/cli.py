"""The `ainn` command: each Typer command builds its options and calls its function in `ainn_cli.commands`
(imported when the command runs, so `ainn --help` imports no torch)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar, cast

import typer
from typer.core import TyperCommand

from ainn_cli import __version__
from ainn_cli.audio import SAMPLE_RATE
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
        except KeyboardInterrupt:
            from ainn_cli.console import err_console

            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return cast(F, wrapper)


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
    source: Annotated[Path, typer.Argument(help="Source speech: an audio file or a folder (converted recursively).")],
    reference: Annotated[Path | None, typer.Argument(help="Reference speech whose emotion and strength to take: a file or a folder.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output file, .wav, .flac or .ogg (the extension sets the format), or folder for folder input (wav). Default: SRC-REF.wav / SRC-ainn/.")] = None,
    strength: Annotated[float | None, typer.Option(help="Emotional strength of the output, 0 (neutral) to 1 (full). Default: the reference's.")] = None,
    emotion: Annotated[str | None, typer.Option(help=f"Target emotion without a reference (the model's prototype of it): {', '.join(DEFAULT_EMOTIONS)} for the default model; `ainn info` lists another model's.")] = None,
    tempo: Annotated[bool | None, typer.Option("--tempo/--no-tempo", show_default=False, help="Also follow the reference's speaking rate relative to the source's (a slower reference makes a longer output). Default: as the model says; the default model does not (it cost emotion heard on held-out speakers, see the README).")] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    half: Annotated[bool, typer.Option(help="fp16 on CUDA (the vocoder stays fp32).")] = False,
    sample_rate: Annotated[int | None, typer.Option("--sample-rate", help=f"Output sample rate in Hz (default {SAMPLE_RATE}).")] = None,
    pairing: Annotated[str, typer.Option(help="With a reference folder: same-name (the reference with the source's file name, extension aside) or all (every source with every reference).")] = "same-name",
    shard: Annotated[str | None, typer.Option(help="Convert only part K of N of a folder, e.g. 2/8, for parallel jobs.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace existing outputs (otherwise they are kept, and skipped in folders).")] = False,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Convert SOURCE to the emotion of REFERENCE (or --emotion), keeping its words and voice.

    Examples:

      ainn convert neutral.wav angry.wav -o out.wav

      ainn convert neutral.wav --emotion sad --strength 0.5 -o sad.wav

      ainn convert neutral.wav sad.wav --tempo -o sad.wav     (also take the reference's speaking rate)

      ainn convert in_dir/ angry.wav -o out_dir/     (resumes: existing outputs are skipped)
    """
    from ainn_cli.commands import ConvertOptions, run_convert

    _succeed(run_convert(ConvertOptions(
        source=source, reference=reference, output=output, strength=strength, emotion=emotion, tempo=tempo, model=model,
        device=device, half=half, sample_rate=sample_rate, pairing=pairing, shard=shard, overwrite=overwrite,
        as_json=json_out, quiet=quiet,
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

    The default model learnt emotions from acted studio speech (RAVDESS): it reads neutral read speech,
    such as an audiobook, as emotional (mostly angry), so trust it on acted speech, not on narration.
    """
    from ainn_cli.commands import StrengthOptions, run_strength

    _succeed(run_strength(StrengthOptions(files=tuple(files), model=model, device=device, plot=plot,
                                          overwrite=overwrite, as_json=json_out)))


@command()
@friendly
def info(model: ModelOpt = None, device: DeviceOpt = "auto", json_out: JsonOpt = False) -> None:
    """Versions, the device auto would choose, and the bundle's components and parameter counts."""
    from ainn_cli.commands import InfoOptions, run_info

    run_info(InfoOptions(model=model, device=device, as_json=json_out))


@command()
@friendly
def export(
    bundle_dir: Annotated[Path, typer.Argument(help="A bundle folder (or registry name).")],
    out_dir: Annotated[Path, typer.Argument(help="Where to write the Hub-ready folder.")],
    overwrite: Annotated[bool, typer.Option(help="Replace the ainn bundle in OUT_DIR (a folder holding anything else is never replaced).")] = False,
) -> None:
    """Write a Hub-ready copy of a bundle with a model card (README.md)."""
    from ainn_cli.commands import ExportOptions, run_export

    run_export(ExportOptions(bundle=str(bundle_dir), out_dir=out_dir, overwrite=overwrite))


@command()
@friendly
def train(
    out: Annotated[Path, typer.Option("--out", help="Run folder (checkpoints, logs, resolved config, split).")],
    config: Annotated[Path | None, typer.Option(help="TOML file with hyperparameters (see configs/default.toml).")] = None,
    stage: Annotated[str, typer.Option(help="stage1, stage2, both, or recognizer (R alone, with augmentation).")] = "both",
    data: Annotated[list[str] | None, typer.Option(help="Data source kind:path (manifest|ravdess|esd); repeatable; replaces the config's.")] = None,
    init: Annotated[Path | None, typer.Option(help="Checkpoint to start from (e.g. RUN/stage1/best.pt for stage2).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run's latest checkpoint exactly.")] = False,
    export_to: Annotated[Path | None, typer.Option("--export", help="Write a bundle here when training ends: a new or empty folder, or one holding an ainn bundle (replaced).")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override a config key with a TOML value, e.g. --set stage1.steps=100 --set variant=no_cue --set 'stage2.lambdas.ecc=1.0'.")] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", help="auto, cpu, cuda or cuda:N (default: the config's, auto).")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train AINN (Stage I, then Stage II) and optionally export a bundle. Ctrl-C saves `latest`.

    Several GPUs or machines: torchrun --nproc_per_node N -m ainn_cli train ... (DDP; gloo on CPU).
    """
    from ainn_cli.commands import TrainOptions, run_train

    run_train(TrainOptions(out=out, config=config, stage=stage, data=tuple(data or ()), init=init, resume=resume,
                           export=export_to, overrides=tuple(overrides or ()), device=device, quiet=quiet))


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
    from ainn_cli.commands import EvaluateOptions, run_evaluate

    _succeed(run_evaluate(EvaluateOptions(pairs=pairs, esd=esd, split=split, model=model, judge=judge, device=device,
                                          out=out, plots=plots, overwrite=overwrite, as_json=json_out)))


def main() -> None:
    """The `ainn` console script."""
    app()


if __name__ == "__main__":
    main()
