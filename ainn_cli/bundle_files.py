"""A bundle folder on disk: the names it may list, where they may lead, their hashes, and replacing it.

Reading: every name in bundle.json is a plain relative path (`component/file`, no `..`, nothing
absolute, nothing hidden) and must resolve inside the folder. A symbolic link may point only inside
it, or, for a snapshot in the Hugging Face cache (`models--owner--name/snapshots/REV/`), into that
repo's `blobs/`. A missing file and a file with the wrong hash get the same message.

Writing: a new bundle is built in a hidden folder beside the destination and swapped in. The
destination must be new, empty, or an ainn bundle holding nothing but its own files, and never a
folder that is or holds the source, the run folder or the working folder (`check_destination`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ainn_cli.errors import BundleError, OutputError
from ainn_cli.files import first_existing

MANIFEST = "bundle.json"
CARD = "README.md"  # the model card `ainn export` writes beside a bundle's files
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}){0,3}")
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_FILES = 64  # files one bundle may list
MAX_JSON_BYTES = 16 << 20  # bundle.json (prototypes, metadata) and each config.json


def listed_files(manifest: dict[str, Any], file: Path) -> dict[str, str]:
    """bundle.json's `files` (name -> sha256), every name a plain relative path: checked before any is read."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not 0 < len(files) <= MAX_FILES:
        raise BundleError(f"{file}: 'files' must list 1 to {MAX_FILES} files with their sha256")
    for name, digest in files.items():
        if not FILE_NAME.fullmatch(name) or name in (MANIFEST, CARD):
            raise BundleError(f"{file}: {name[:100]!r} is not a file name inside the bundle (a/b.ext, no '..')")
        if not isinstance(digest, str) or not SHA256.fullmatch(digest):
            raise BundleError(f"{file}: {name}: {str(digest)[:80]!r} is not a sha256")
    return files


def bundle_file(root: Path, name: str) -> Path:
    """`root / name`, once it is known to lead to a regular file inside the bundle."""
    path = Path(root) / name
    real = os.path.realpath(path)
    if not any(_within(real, inside) for inside in _roots(root)):
        raise BundleError(f"{path}: leads outside the bundle folder (a symbolic link?)")
    if not os.path.isfile(real):
        raise BundleError(changed(path))
    return path


def changed(path: Path) -> str:
    """One message for a missing file and a wrong hash: a bundle cannot probe which files exist."""
    return f"{path}: missing or changed (does not match its sha256 in {MANIFEST}); re-download or re-export the bundle"


def verify_files(root: Path, files: dict[str, str], max_bytes: dict[str, int]) -> None:
    """Locate every listed file first (nothing read), then check its size (by suffix) and its sha256."""
    located = {name: bundle_file(root, name) for name in files}
    for name, path in located.items():
        limit = max_bytes.get(Path(name).suffix, max(max_bytes.values()))
        try:
            if path.stat().st_size > limit:
                raise BundleError(f"{path}: larger than the {limit:,} bytes a bundle file may have")
            if sha256(path) != files[name]:
                raise BundleError(changed(path))
        except OSError as err:
            raise BundleError(f"{path}: unreadable ({err.strerror or err})") from None


def read_json(path: Path, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parsed JSON of a bundle file; too large, unreadable, invalid or absurdly nested is a BundleError."""
    try:
        if path.stat().st_size > max_bytes:
            raise BundleError(f"{path}: larger than the {max_bytes:,} bytes a bundle's JSON may have")
        return json.loads(path.read_bytes())
    except OSError as err:
        raise BundleError(f"{path}: unreadable ({err.strerror or err})") from None
    except (ValueError, RecursionError) as err:  # bad JSON or UTF-8, 5000-digit numbers, deep nesting
        raise BundleError(f"{path}: not valid JSON ({str(err).splitlines()[0][:120]})") from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _roots(root: Path) -> list[str]:
    """Where the files of the bundle at `root` may really lie."""
    real = os.path.realpath(root)
    snapshots, repo = os.path.dirname(real), os.path.dirname(os.path.dirname(real))
    roots = [real]
    if os.path.basename(snapshots) == "snapshots" and os.path.basename(repo).startswith("models--"):
        roots.append(os.path.join(repo, "blobs"))  # the Hugging Face cache links snapshot files to blobs
    return roots


def _within(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


# --------------------------------------------------------------------------------------------- writing


def check_destination(out_dir: Path, overwrite: bool, protect: Iterable[Path] = ()) -> None:
    """Refuse a bundle destination unless it is new, empty or (with `overwrite`) an ainn bundle holding only
    its own files; never a symbolic link, and never a folder that is or holds one of `protect` or the
    working folder."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink():
        raise OutputError(f"{out_dir}: is a symbolic link; give the folder itself")
    real = os.path.realpath(out_dir)
    for kept in (*protect, Path.cwd()):
        if _within(os.path.realpath(kept), real):
            raise OutputError(f"{out_dir}: is or holds {kept}, which writing a bundle there would replace")
    blocker = first_existing((out_dir, *out_dir.parents))
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"{blocker}: exists and is not a folder, so no bundle can be written at {out_dir}")
    try:
        if blocker != out_dir or not any(out_dir.iterdir()):
            return
    except OSError as err:
        raise OutputError(f"{out_dir}: cannot look inside ({err.strerror or err})") from None
    if not overwrite:
        raise OutputError(f"{out_dir}: exists and is not empty (use --overwrite to replace the bundle in it)")
    _own_files(out_dir)


def temp_beside(out_dir: Path) -> Path:
    """A private, hidden, empty folder next to `out_dir` to build a bundle in."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name[:100]}.", dir=out_dir.parent))
    except OSError as err:
        raise OutputError(f"{out_dir.parent}: cannot write there ({err.strerror or err})") from None


def swap_in(tmp: Path, out_dir: Path) -> None:
    """Put the finished bundle folder `tmp` at `out_dir`. An old bundle there is renamed aside first, then
    only its own files are removed; anything else that appeared meanwhile stays in the hidden folder."""
    try:
        tmp.chmod(0o755)  # mkdtemp makes it private
        if not out_dir.exists() or not any(out_dir.iterdir()):
            os.replace(tmp, out_dir)  # rename(2) replaces an empty folder, atomically
            return
        old = _own_files(out_dir)
        aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name[:100]}.old.", dir=out_dir.parent))
        os.replace(out_dir, aside)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            os.replace(aside, out_dir)
            raise
    except OSError as err:
        raise OutputError(f"{out_dir}: cannot write the bundle ({err.strerror or err})") from None
    for file in old:
        with contextlib.suppress(OSError):
            (aside / file).unlink()
    for folder, _, _ in os.walk(aside, topdown=False):
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # only empty ones


def _own_files(folder: Path) -> list[str]:
    """The relative names of an ainn bundle's files in `folder`; an OutputError if it holds anything else."""
    refuse = f"{folder}: not empty and not an ainn bundle"
    if not (folder / MANIFEST).is_file():
        raise OutputError(f"{refuse} (no {MANIFEST}); ainn replaces only its own bundles")
    try:
        manifest = read_json(folder / MANIFEST)
        own = {MANIFEST, CARD, *listed_files(manifest if isinstance(manifest, dict) else {}, folder / MANIFEST)}
    except BundleError as err:
        raise OutputError(f"{refuse} ({err}); ainn replaces only its own bundles") from None
    found = []
    for where, dirs, files in os.walk(folder):  # symbolic links to folders are listed in dirs, not entered
        for name in [*files, *(d for d in dirs if os.path.islink(os.path.join(where, d)))]:
            rel = os.path.relpath(os.path.join(where, name), folder).replace(os.sep, "/")
            if rel not in own:
                raise OutputError(f"{folder}: holds {rel}, which is not part of its bundle; ainn replaces only "
                                  "its own bundles")
            found.append(rel)
    return found
