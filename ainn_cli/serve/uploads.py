"""Uploads from the page: streamed to a server-named spool file under a byte cap, checked, decoded, deleted.

    request body --chunks, counted (over `max_bytes`: refused mid-stream)--> SPOOL/<random>.upload
        --header: duration <= `max_seconds`--> read_audio --> Audio in memory (`UploadStore`)
    the spool file is removed as soon as it is decoded or refused, whatever happens

The client's file name is only ever shown (`display_name`: its last component, control characters removed);
nothing the client sends becomes a server path. An upload is kept as a decoded `Audio` under a random id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import tempfile
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from ainn_cli.audio import SAMPLE_RATE, Audio, read_audio
from ainn_cli.errors import AinnError, AudioError

MAX_BYTES = 200 * 2**20  # per upload: a 10-minute 48 kHz 24-bit stereo wav is 173 MB
MAX_SECONDS = 600.0  # per upload: ten minutes of speech take minutes to convert on a CPU
MAX_IN_FLIGHT = 4  # uploads received at the same time; more are refused, not queued
MAX_STORED = 24  # decoded uploads kept for re-use (the oldest goes first)
MAX_STORED_SECONDS = 1800.0  # of decoded audio kept in all (~160 MB of float32 at 22050 Hz)
NAME_CHARS = 80  # a shown name is cut to this many characters


class UploadRefused(AinnError):
    """An upload the page does not take: too big, too long, not audio, too many at once. `status` is HTTP's."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one server takes: bytes and seconds per upload, uploads at once."""

    max_bytes: int = MAX_BYTES
    max_seconds: float = MAX_SECONDS
    max_in_flight: int = MAX_IN_FLIGHT


@dataclass(frozen=True)
class Upload:
    """A decoded upload: its random id, the name shown for it, the audio (mono, SAMPLE_RATE) and, once drawn,
    its picture for the page (drawn once, when it arrives, not at every conversion that uses it)."""

    id: str
    name: str
    audio: Audio
    picture: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "seconds": round(self.audio.seconds, 3),
                "warnings": list(self.audio.warnings)}


def display_name(raw: str | None) -> str:
    """The name to show for a client's file name: its last path component, without control characters (NUL
    included) or surrounding spaces and dots, cut to NAME_CHARS; "upload" if nothing is left."""
    text = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(c for c in text if c.isprintable()).strip(" .")
    return text[:NAME_CHARS] or "upload"


def size_text(count: float) -> str:
    """`2.0 GB`, `200 MB`, `12 kB`: a byte count for a message."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{int(count)} bytes"


def check_declared_size(name: str, declared: str | None, limits: Limits) -> None:
    """Refuse an upload whose Content-Length is over the cap before reading a byte of it."""
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise UploadRefused(f"{name}: bad Content-Length", 400) from None
    if size > limits.max_bytes:
        raise UploadRefused(f"{name}: {size_text(size)} is over the page's limit of {size_text(limits.max_bytes)}",
                            413)


async def spool(name: str, chunks: AsyncIterator[bytes], folder: Path, limits: Limits) -> Path:
    """Write the streamed body to a new file in `folder` under a server-made name, counting bytes; past
    `limits.max_bytes` stop reading and refuse (413). On any failure (a client gone away too) the file is removed."""
    fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=folder)
    try:
        total = 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                total += len(chunk)
                if total > limits.max_bytes:
                    raise UploadRefused(f"{name}: over the page's limit of {size_text(limits.max_bytes)}", 413)
                out.write(chunk)
        if total == 0:
            raise UploadRefused(f"{name}: the file is empty", 400)
    except BaseException:
        discard(Path(tmp))
        raise
    return Path(tmp)


def decode(path: Path, name: str, limits: Limits) -> Audio:
    """Check the header's duration, then read the spooled file as `ainn convert` reads an input; the error
    messages are the CLI's, naming `name` instead of the spool file."""
    try:
        info = sf.info(str(path))
        seconds = info.frames / info.samplerate if info.samplerate > 0 else 0.0
        if seconds > limits.max_seconds:
            raise UploadRefused(f"{name}: {_duration_text(seconds)} long; the page takes up to "
                                f"{_duration_text(limits.max_seconds)}", 413)
        audio = read_audio(path)
    except AudioError as err:
        raise UploadRefused(str(err).replace(str(path), name), 415) from None
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        text = str(err).replace(str(path), name).strip().splitlines()[-1:] or [type(err).__name__]
        raise UploadRefused(f"{name}: not a readable audio file ({text[0]})", 415) from None
    return dataclasses.replace(audio, path=name)


def _duration_text(seconds: float) -> str:
    """`3 h 0 min`, `10 min`, `42 s`."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{seconds / 60:.3g} min"
    return f"{seconds:.3g} s"


def discard(path: Path) -> None:
    """Remove a spool file; never raise."""
    with contextlib.suppress(OSError):
        path.unlink()


class UploadStore:
    """Decoded uploads by random id, the oldest dropped past MAX_STORED uploads or MAX_STORED_SECONDS of audio;
    and a count of uploads in flight (`admit`), so that many at once are refused rather than spooled."""

    def __init__(self, limits: Limits, most: int = MAX_STORED, most_seconds: float = MAX_STORED_SECONDS) -> None:
        self.limits, self.most, self.most_seconds = limits, most, most_seconds
        self._items: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()
        self._in_flight = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of `limits.max_in_flight` upload slots for the duration of the block (429 when none is free)."""
        with self._lock:
            if self._in_flight >= self.limits.max_in_flight:
                raise UploadRefused(f"too many uploads at once (at most {self.limits.max_in_flight}); "
                                    "wait for the others to finish", 429)
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def add(self, name: str, audio: Audio, picture: dict[str, Any] | None = None) -> Upload:
        upload = Upload(id=secrets.token_urlsafe(12), name=name, audio=audio, picture=picture)
        with self._lock:
            self._items[upload.id] = upload
            while len(self._items) > 1 and (len(self._items) > self.most or self._seconds() > self.most_seconds):
                self._items.popitem(last=False)
        return upload

    def _seconds(self) -> float:
        return sum(len(u.audio.samples) for u in self._items.values()) / SAMPLE_RATE

    def get(self, upload_id: object) -> Upload:
        """The upload with this id, or UploadRefused (404) naming what to do."""
        with self._lock:
            upload = self._items.get(upload_id) if isinstance(upload_id, str) else None
        if upload is None:
            raise UploadRefused("that file is no longer on the server (it was replaced by newer uploads); "
                                "choose it again", 404)
        return upload

    def __len__(self) -> int:
        return len(self._items)
