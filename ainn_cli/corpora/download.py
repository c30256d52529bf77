"""Download one archive with progress, resume and checksum, standard library only (urllib).

    FILE.part        the bytes so far; an interrupted or failed download continues from its end (HTTP Range,
                     If-Range: a file that changed on the server starts over)
    FILE.part.json   what the server said at the start (length, ETag, Last-Modified), checked on resume
    FILE             the verified archive: its size and checksum as published (sources.py), else the server's
                     Content-Length, and the sha256 of what arrived recorded in FILE.sha256
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from http.client import HTTPException, HTTPResponse
from pathlib import Path
from typing import Any

from ainn_cli.corpora.sources import Archive
from ainn_cli.errors import CorpusError

BLOCK = 1 << 20  # bytes per read
TIMEOUT = 30.0  # seconds a connection may stay silent
ATTEMPTS = 4  # tries per run; each one resumes where the last stopped
RETRY_PAUSE = 2.0  # seconds before the next try (doubles)
MAX_BYTES = 64 << 30  # refuse anything larger (the largest LibriSpeech archive, train-other-500, is 30 GB)
USER_AGENT = "ainn (https://github.com; emotional voice conversion) urllib"


def fetch(archive: Archive, folder: Path, on_bytes: Callable[[int, int | None], None] | None = None) -> Path:
    """The verified archive in `folder`: found there, or downloaded (resuming FILE.part), then checked."""
    target = folder / archive.filename
    if target.is_file():
        try:
            verify(target, archive)
            return target
        except CorpusError:
            target.unlink()  # damaged since it was checked: fetched again
    folder.mkdir(parents=True, exist_ok=True)
    part = folder / f"{archive.filename}.part"
    for attempt in range(ATTEMPTS):
        try:
            _download(archive, part, on_bytes)
            break
        except (urllib.error.URLError, HTTPException, OSError) as err:
            if isinstance(err, urllib.error.HTTPError) and err.code < 500 and err.code != 429:
                raise CorpusError(f"{archive.url}: {err.code} {err.reason}") from None
            if attempt == ATTEMPTS - 1:
                raise CorpusError(f"{archive.url}: {getattr(err, 'reason', None) or err} after {ATTEMPTS} tries; "
                                  "run the same command again to resume") from None
            time.sleep(RETRY_PAUSE * 2**attempt)
    try:
        verify(part, archive)
    except CorpusError as err:
        _forget(part)  # a wrong file is not worth resuming
        raise CorpusError(f"{err}; the download was removed (run the command again to fetch it anew)") from None
    os.replace(part, target)
    _meta(part).unlink(missing_ok=True)
    return target


def _download(archive: Archive, part: Path, on_bytes: Callable[[int, int | None], None] | None) -> None:
    """Append the rest of the file to `part` (all of it when the server cannot resume it)."""
    have = part.stat().st_size if part.is_file() else 0
    known = _read_meta(part) if have else {}
    request = urllib.request.Request(archive.url, headers={"User-Agent": USER_AGENT})
    if have and known:
        request.add_header("Range", f"bytes={have}-")
        validator = known.get("etag") or known.get("last_modified")
        if validator:
            request.add_header("If-Range", validator)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT)
    except urllib.error.HTTPError as err:
        if err.code == 416 and known.get("length") == have:  # nothing left to send: it is all here
            return
        raise
    with response:
        total = _total(response, archive, have)
        if response.status != 206:
            have = 0  # the server sent the whole file (it cannot resume, or the file changed): start over
            _write_meta(part, {"url": archive.url, "length": total, "etag": response.headers.get("ETag"),
                               "last_modified": response.headers.get("Last-Modified")})
        elif known.get("length") not in (None, total):
            raise CorpusError(f"{archive.url}: the server now says {total} bytes, earlier {known['length']}")
        _append(response, part, have, total, on_bytes)


def _total(response: HTTPResponse, archive: Archive, have: int) -> int:
    """The file's full length from Content-Range (206) or Content-Length (200), checked against what is published
    and MAX_BYTES before a byte is written."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        start, _, total_text = content_range.removeprefix("bytes ").partition("/")
        if not start.startswith(f"{have}-") or not total_text.isdigit():
            raise CorpusError(f"{archive.url}: the server resumed at {content_range!r}, not at byte {have}")
        total = int(total_text)
    else:
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise CorpusError(f"{archive.url}: the server does not say how large the file is")
        total = int(length)
    if total > MAX_BYTES:
        raise CorpusError(f"{archive.url}: {total} bytes is more than the {MAX_BYTES >> 30} GiB ainn accepts")
    if archive.size is not None and total != archive.size:
        raise CorpusError(f"{archive.url}: the server offers {total} bytes; {archive.name} is {archive.size}")
    return total


def _append(response: HTTPResponse, part: Path, have: int, total: int,
            on_bytes: Callable[[int, int | None], None] | None) -> None:
    """Copy the body after the first `have` bytes of `part`, never past `total`."""
    with open(part, "r+b" if have else "wb") as out:
        out.seek(have)
        out.truncate()
        done = have
        while block := response.read(BLOCK):
            done += len(block)
            if done > total:
                raise CorpusError(f"{response.geturl()}: the server sent more than the {total} bytes it announced")
            out.write(block)
            if on_bytes is not None:
                on_bytes(done, total)
    if done < total:
        raise ConnectionError(f"the connection closed at byte {done} of {total}")


def verify(file: Path, archive: Archive) -> None:
    """Size and checksums as published; without a published checksum, the sha256 recorded in FILE.sha256 the first
    time (so a file that changes later is noticed)."""
    size = file.stat().st_size
    if archive.size is not None and size != archive.size:
        raise CorpusError(f"{file}: {size} bytes; {archive.name} is {archive.size} bytes")
    md5, sha256 = _digests(file)
    for kind, want, got in (("md5", archive.md5, md5), ("sha256", archive.sha256, sha256)):
        if want is not None and want != got:
            raise CorpusError(f"{file}: {kind} {got}, but {archive.name} has {want}")
    record = file.with_name(f"{file.name.removesuffix('.part')}.sha256")
    if archive.md5 is None and archive.sha256 is None:
        if record.is_file() and record.read_text().split()[0] != sha256:
            raise CorpusError(f"{file}: sha256 {sha256} differs from the one recorded in {record}")
        record.write_text(f"{sha256}  {record.name.removesuffix('.sha256')}\n")


def _digests(file: Path) -> tuple[str, str]:
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(file, "rb") as handle:
        while block := handle.read(BLOCK):
            md5.update(block)
            sha256.update(block)
    return md5.hexdigest(), sha256.hexdigest()


def _meta(part: Path) -> Path:
    return part.with_name(f"{part.name}.json")


def _read_meta(part: Path) -> dict[str, Any]:
    try:
        data = json.loads(_meta(part).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_meta(part: Path, facts: dict[str, Any]) -> None:
    _meta(part).write_text(json.dumps(facts) + "\n")


def _forget(part: Path) -> None:
    part.unlink(missing_ok=True)
    _meta(part).unlink(missing_ok=True)
