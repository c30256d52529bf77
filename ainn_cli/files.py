"""Writing files safely: a hidden temporary file renamed into place, no silent replacing, name checks.

Every file ainn writes (audio, plots, reports, checkpoints, feature caches, logs) goes through
`atomic_output` or `replace_file`: a crash leaves the old file or the new one, never half of one.
Without `overwrite` an existing file is never replaced, not even one that appears while writing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from ainn_cli.errors import AudioError, OutputError, OutputExists

NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, APFS); the file system is asked when it can say


@contextlib.contextmanager
def atomic_output(path: Path, overwrite: bool, suffix: str = ".part") -> Iterator[str]:
    """A hidden temp file beside `path` to write; it becomes `path` when the block ends, or is removed on failure.

    Without `overwrite` it is hard-linked to `path`, which fails if `path` exists, even if another process
    made it a moment ago: a no-replace rename (OutputExists). With `overwrite` it replaces `path`.
    """
    budget = NAME_MAX - len(os.fsencode(suffix)) - 10  # mkstemp adds 8 random characters, we add two dots
    name = path.name
    while len(os.fsencode(name)) > budget:
        name = name[:-1]
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        usual_permissions(tmp)  # mkstemp makes files private
        _place(tmp, path, overwrite)
    finally:
        _discard(tmp)


def _place(tmp: str, path: Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise OutputExists(f"{path}: exists already (use --overwrite to replace it)") from None
    except OSError as err:  # a file system without hard links (FAT, some network mounts): check, then rename
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.ENOSYS):
            raise
        if os.path.lexists(path):
            raise OutputExists(f"{path}: exists already (use --overwrite to replace it)") from None
        os.replace(tmp, path)


def write_bytes(path: Path, data: bytes, overwrite: bool) -> Path:
    """Write bytes atomically after `check_writable`; OutputError on failure."""
    check_writable(path, overwrite)
    try:
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as handle:
            handle.write(data)
    except OSError as err:
        raise OutputError(f"{path}: cannot write ({reason(err)})") from None
    return path


def replace_file(path: Path, write: Callable[[str], object]) -> Path:
    """`write(tmp)` a hidden temporary file beside `path`, then rename it over `path` (a file ainn owns:
    checkpoints, caches, logs). The folder must exist."""
    suffix = "".join(path.suffixes[-1:]) or ".tmp"  # keep the extension: np.save would append .npy
    try:
        with atomic_output(path, overwrite=True, suffix=suffix) as tmp:
            write(tmp)
    except OSError as err:  # a full disk, a file-size limit: one line naming the file, no temp file left
        raise OutputError(f"{path}: cannot write ({reason(err)})") from None
    return path


class KeptErrors:
    """A binary file whose write errors are kept instead of raised. A C library that writes through Python
    (libsndfile's virtual I/O) cannot pass an exception back: it would print a traceback and fail on a bare
    assertion. After a failed write, `error` says why (a full disk, a file-size limit)."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        if self.error is not None:
            return 0
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            return 0

    def __getattr__(self, name: str) -> Any:  # seek, tell, read, flush, fileno: the file's own
        return getattr(self.handle, name)


def make_folders(folder: Path) -> None:
    """`mkdir -p` without recursion (Path.mkdir(parents=True) recurses once per level: a tree 1,100 folders deep
    overflows Python's stack)."""
    missing = []
    for level in (folder, *folder.parents):
        if os.path.isdir(level):
            break
        missing.append(level)
    for level in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(level)


def first_existing(paths: Iterable[Path]) -> Path | None:
    """The first of `paths` that exists (a dangling symbolic link counts): what stands in a new path's way."""
    return next((p for p in paths if p.exists() or p.is_symlink()), None)


def usual_permissions(path: Path | str) -> None:
    """Give a file the permissions a new file gets here (0666 less the umask): writers such as mkstemp and
    safetensors make private ones."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_name(path: Path) -> None:
    """Refuse a path with a name longer than the file system allows, before any work is done for it."""
    folder = next((p for p in path.parents if os.path.isdir(p)), Path("."))
    try:
        name_max = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = NAME_MAX
    longest = max(path.parts, key=lambda part: len(os.fsencode(part)), default="")
    if len(os.fsencode(longest)) > name_max:
        raise OutputError(f"{path}: the name {longest[:40]}... is {len(os.fsencode(longest))} bytes long; "
                          f"this file system allows {name_max}")
    if len(os.fsencode(os.path.abspath(path))) >= 4096:  # PATH_MAX on Linux
        raise OutputError(f"{str(path)[:60]}...: the path is longer than 4095 bytes")


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse an existing output without `overwrite` and create the folder, or say why not."""
    check_name(path)
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not path.is_file():
        raise OutputError(f"{path}: exists and is not a regular file")
    if path.exists() and not overwrite:
        raise OutputExists(f"{path}: exists already (use --overwrite to replace it)")
    blocker = first_existing(path.parents)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"{blocker}: is not a folder, so {path} cannot be written")
    try:
        make_folders(path.parent)
    except OSError as err:
        raise OutputError(f"{path.parent}: cannot create folder ({reason(err)})") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path.parent}: folder is not writable")


def _discard(tmp: str | None) -> None:
    """Remove a temp file if it was created; never raise (we are already handling a failure)."""
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def reason(err: Exception) -> str:
    return (err.strerror if isinstance(err, OSError) else None) or short_reason(err)


def short_reason(err: Exception) -> str:
    """The last line of an error, without libsndfile's "Error opening 'name': " (the caller names the file)."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return _OPENING.sub("", text.removeprefix("Error opening ")).strip()


_OPENING = re.compile(r"""^(?:b?'[^']*'|"[^"]*"|<[^>]*>): """)  # soundfile's repr of the name or file it was given


def refuse_a_missing_input(paths: list[Path]) -> None:
    """One input given that does not exist: refused here, before a command imports numpy or torch (a command with
    several inputs reports each missing one itself and goes on with the rest)."""
    if len(paths) == 1 and not os.path.lexists(paths[0]):
        raise AudioError(f"{paths[0]}: no such file")
