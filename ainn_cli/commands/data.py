"""`ainn data ravdess|librispeech [DIR]`: download an official corpus and convert it to the training layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from ainn_cli.corpora.build import Built, build_corpus
from ainn_cli.corpora.librispeech import LibriSpeech
from ainn_cli.corpora.ravdess import Ravdess
from ainn_cli.corpora.sources import RAVDESS, data_root, librispeech

CORPORA = ("ravdess", "librispeech")


@dataclass(frozen=True)
class DataOptions:
    """`ainn data`: which corpus, where (default: DATA_ROOT/KIND), which LibriSpeech subset, from where."""

    corpus: str
    folder: Path | None = None
    subset: str = "dev-clean"
    mirror: str | None = None
    keep_archive: bool = False
    quiet: bool = False


def run_data(options: DataOptions) -> Built:
    """Fetch and convert; print what the folder holds and the `--data` source that trains on it."""
    folder = options.folder or data_root() / options.corpus
    if options.corpus == "ravdess":
        built = build_corpus(RAVDESS.mirrored(options.mirror), Ravdess(), folder, options.keep_archive, options.quiet)
    else:
        archive = librispeech(options.subset).mirrored(options.mirror)
        built = build_corpus(archive, LibriSpeech(options.subset), folder, options.keep_archive, options.quiet)
    typer.echo(f"{built.folder}: {built.converted + built.kept} recordings ({built.converted} converted now, "
               f"{built.kept} kept), {built.minutes:.1f} minutes; {_how_to_train(options.corpus, folder)}")
    return built


def _how_to_train(corpus: str, folder: Path) -> str:
    """Where training finds the folder: the configs' own source under the data root, or --data."""
    if folder.name == corpus and folder.parent.absolute() == data_root().absolute():
        return f"the configs in configs/ read it as {corpus}:{corpus} under the data root {folder.parent}"
    return f"train on it with --data {corpus}:{folder} (or --data-root {folder.parent} if it is named {corpus})"
