"""`ainn data`: fetch one corpus archive and convert it into a corpus folder, resumably.

    FOLDER/.download/ARCHIVE(.part)   the download (resumed; removed when done unless kept)
    FOLDER/...                        mono 16-bit FLAC at 22050 Hz, named by the corpus module
    FOLDER/manifest.csv               one row per recording (the corpus module's columns)
    FOLDER/SOURCE.md                  where it came from, its licence and checksum, how it was converted

Running the same command again resumes: the download continues from its last byte, recordings already
converted are kept (and counted from their headers), the manifest is written at the end.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from ainn_cli.audio import SAMPLE_RATE
from ainn_cli.console import Ticker
from ainn_cli.corpora.archive import members
from ainn_cli.corpora.download import fetch
from ainn_cli.corpora.layout import Corpus, convert_recording, duration, read_manifest, write_manifest
from ainn_cli.corpora.sources import Archive
from ainn_cli.errors import CorpusError

DOWNLOADS = ".download"
MANIFEST = "manifest.csv"
SOURCE = "SOURCE.md"


@dataclass(frozen=True)
class Built:
    """What one run did: the corpus folder, recordings converted now and found from before, minutes of audio."""

    folder: Path
    converted: int
    kept: int
    minutes: float
    archive: Path | None  # the archive, when it was kept


def build_corpus(archive: Archive, corpus: Corpus, folder: Path, keep_archive: bool = False,
                 quiet: bool = False) -> Built:
    """Download (or resume) `archive` into FOLDER/.download, convert its recordings into `folder`, write the
    manifest and SOURCE.md; the archive is removed afterwards unless `keep_archive`."""
    if folder.exists() and not folder.is_dir():
        raise CorpusError(f"{folder}: exists and is not a folder")
    downloads = folder / DOWNLOADS
    with _ByteTicker(f"downloading {archive.filename}", quiet) as on_bytes:
        path = fetch(archive, downloads, on_bytes)
    rows, converted = _convert(path, corpus, folder, quiet)
    manifest = corpus.finish(rows, read_manifest(folder / MANIFEST))
    write_manifest(folder / MANIFEST, corpus.columns, manifest)
    minutes = sum(float(row["duration_s"]) for row in rows) / 60
    (folder / SOURCE).write_text(_source_text(archive, path, len(rows), minutes))
    if not keep_archive:
        _remove_download(path, downloads)
    return Built(folder, converted, len(rows) - converted, minutes, path if keep_archive else None)


def _convert(path: Path, corpus: Corpus, folder: Path, quiet: bool) -> tuple[list[dict[str, str]], int]:
    """Every recording of the archive into `folder` (existing ones kept): the manifest rows and how many were new."""
    total = sum(1 for member in members(path) if corpus.wanted(member))
    if not total:
        raise CorpusError(f"{path}: no recordings of this corpus in the archive")
    rows: list[dict[str, str]] = []
    converted = 0
    with Ticker("converting", total, disable=quiet) as ticker:
        for member in members(path):
            recording = corpus.recording(member)
            if recording is None:
                continue
            out = folder / recording.path
            kept = out.is_file()
            ticker.naming(recording.path)
            seconds = duration(out) if kept else convert_recording(recording.member.read(), member.name, out)
            converted += not kept
            rows.append({**recording.row, "duration_s": f"{seconds:.3f}"})
            ticker.advance(name=recording.path, note="kept" if kept else f"{seconds:.1f} s", skipped=kept)
    return rows, converted


class _ByteTicker:
    """`fetch`'s byte counter as a Ticker, made when the server says the size: one plain line per 5 % in a log."""

    def __init__(self, label: str, quiet: bool) -> None:
        self.label, self.quiet = label, quiet
        self.ticker: Ticker | None = None

    def __enter__(self) -> _ByteTicker:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ticker is not None:
            self.ticker.__exit__(*exc)

    def __call__(self, done: int, total: int | None) -> None:
        if self.ticker is None:
            size = max(total or done, 1)
            self.ticker = Ticker(self.label, size, disable=self.quiet, every=size / 20,
                                 show=lambda n: f"{n / 1e6:.1f}" if n < size else f"{n / 1e6:.1f} MB").__enter__()
            self.ticker.update(done, skipped=True)  # what an earlier run fetched took no time in this one
        else:
            self.ticker.update(done)


def _source_text(archive: Archive, path: Path, files: int, minutes: float) -> str:
    checks = ", ".join(f"{kind} {value}" for kind, value in
                       (("size", archive.size), ("md5", archive.md5), ("sha256", archive.sha256)) if value)
    return (f"# {archive.name} (converted by `ainn data`)\n\n"
            f"- Downloaded from {archive.url} on {datetime.date.today().isoformat()}; checked: "
            f"{checks or 'the server-announced size and a recorded sha256'}.\n"
            f"- Licence: {archive.licence or 'see the publisher'}.\n"
            f"- Converted: decoded, downmixed to mono, resampled to {SAMPLE_RATE} Hz (soxr VHQ), 16-bit FLAC; "
            "nothing trimmed. Intersample peaks above full scale are clipped.\n"
            f"- {files} recordings, {minutes:.1f} minutes; `{MANIFEST}` lists them.\n"
            f"- Archive: `{path.name}`.\n")


def _remove_download(path: Path, downloads: Path) -> None:
    """The archive and its checksum record: files this command made; the folder only if nothing else is in it."""
    path.unlink(missing_ok=True)
    path.with_name(f"{path.name}.sha256").unlink(missing_ok=True)
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
