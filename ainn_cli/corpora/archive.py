"""Reading the members of a zip or tar archive without trusting it.

Nothing is extracted: a member is read into memory (at most MAX_MEMBER_BYTES) and the corpus modules name the
output from what they parse out of the member's file name. An archive is refused whole when a member's name
is absolute or climbs out (`..`), when it holds a link or a device, or when it has more than MAX_MEMBERS
members; a member larger than MAX_MEMBER_BYTES is refused before it is read.

    for member in members(path):       # in archive order; regular files only
        if wanted(member.name): data = member.read()
"""

from __future__ import annotations

import functools
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ainn_cli.errors import CorpusError

MAX_MEMBERS = 1_000_000  # LibriSpeech train-other-500, the largest, has about 150,000
MAX_MEMBER_BYTES = 256 << 20  # one recording or listing (RAVDESS's are about 0.6 MB, LibriSpeech's under 1 MB)


@dataclass(frozen=True)
class Member:
    """A regular file in an archive: its checked name, its declared size and how to read it (while iterating)."""

    name: str  # POSIX path inside the archive
    size: int
    read: Callable[[], bytes]

    @property
    def basename(self) -> str:
        return PurePosixPath(self.name).name


def members(path: Path) -> Iterator[Member]:
    """The regular files of a zip or a tar (any compression), in archive order, each checked (`check_name`)."""
    if zipfile.is_zipfile(path):
        yield from _zip_members(path)
    else:
        yield from _tar_members(path)


def check_name(name: str, archive: Path) -> str:
    """A member name that stays inside the archive's folder: relative, no `..`, no backslash or NUL."""
    if not name or name.startswith(("/", "\\")) or "\\" in name or "\0" in name or (len(name) > 1 and name[1] == ":"):
        raise CorpusError(f"{archive}: member {name[:200]!r} has an absolute or odd path; not an official archive")
    if ".." in PurePosixPath(name).parts:
        raise CorpusError(f"{archive}: member {name[:200]!r} climbs out of its folder; not an official archive")
    return name


def _count(index: int, archive: Path) -> None:
    if index >= MAX_MEMBERS:
        raise CorpusError(f"{archive}: more than {MAX_MEMBERS} members; not an official archive")


def _check_size(size: int, name: str, archive: Path) -> None:
    if size > MAX_MEMBER_BYTES:
        raise CorpusError(f"{archive}: member {name[:200]} is {size} bytes, more than {MAX_MEMBER_BYTES >> 20} MiB")


def _zip_members(path: Path) -> Iterator[Member]:
    try:
        with zipfile.ZipFile(path) as archive:
            for index, info in enumerate(archive.infolist()):
                _count(index, path)
                name = check_name(info.filename, path)
                kind = (info.external_attr >> 16) & 0o170000  # the Unix file type, where one was recorded
                if kind == 0o120000:
                    raise CorpusError(f"{path}: member {name[:200]} is a symbolic link; not an official archive")
                if info.is_dir():
                    continue
                _check_size(info.file_size, name, path)
                yield Member(name, info.file_size, functools.partial(_read_zip, archive, info, path))
    except (zipfile.BadZipFile, EOFError) as err:
        raise CorpusError(f"{path}: a damaged zip archive ({err})") from None


def _read_zip(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> bytes:
    """The member's bytes; a member that inflates beyond its declared size (or fails its CRC) is refused."""
    with archive.open(info) as handle:
        data = handle.read(info.file_size + 1)
    if len(data) != info.file_size:
        raise CorpusError(f"{path}: member {info.filename[:200]} is not the size it declares")
    return data


def _tar_members(path: Path) -> Iterator[Member]:
    try:
        with tarfile.open(path, mode="r|*") as archive:  # a stream: one pass, no seeking back in the gzip
            for index, info in enumerate(archive):
                _count(index, path)
                name = check_name(info.name, path)
                if info.isdir():
                    continue
                if not info.isfile():
                    raise CorpusError(f"{path}: member {name[:200]} is a link or a device; not an official archive")
                _check_size(info.size, name, path)
                yield Member(name, info.size, functools.partial(_read_tar, archive, info, path))
    except (tarfile.TarError, EOFError, OSError) as err:
        raise CorpusError(f"{path}: not a readable zip or tar archive ({err})") from None


def _read_tar(archive: tarfile.TarFile, info: tarfile.TarInfo, path: Path) -> bytes:
    handle = archive.extractfile(info)
    if handle is None:
        raise CorpusError(f"{path}: member {info.name[:200]} cannot be read")
    data = handle.read(info.size + 1)
    if len(data) != info.size:
        raise CorpusError(f"{path}: member {info.name[:200]} is cut short")
    return data
