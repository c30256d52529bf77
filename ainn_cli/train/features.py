"""The feature cache: each training file's log-mel and YIN pitch, computed once and kept under a hash of the file's
content and the front end's settings, in `data.cache_dir` (`ainn train --cache DIR`; default
`.cache/ainn-features` under the current folder; the files can be deleted at any time).

A manifest is untrusted data, and so is every file it names:
- only regular files are read (a FIFO would block forever, `/dev/zero` never ends), at most MAX_FILE_BYTES and
  MAX_SECONDS of audio, and hashed HASH_BLOCK bytes at a time;
- rows naming the same file share one key and one array (`Features`);
- while files are read, SIGTERM and Ctrl-C stop the process at once, even in a blocked read (`interruptible`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from functools import lru_cache
from pathlib import Path
from types import FrameType

import numpy as np

from ainn_cli.audio import read_audio, settings
from ainn_cli.audio_stream import header_seconds
from ainn_cli.errors import AudioError
from ainn_cli.files import make_folders, replace_file
from ainn_cli.mel import log_mel
from ainn_cli.pitch import pitch_track, yin

MAX_FILE_BYTES = 256 << 20  # a training utterance's file: 10 minutes of 48 kHz stereo 24-bit wav is 173 MB
MAX_SECONDS = 600.0  # of audio per training file (utterances are seconds long; a lecture is not one)
HASH_BLOCK = 1 << 20  # bytes hashed at a time


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While training files are read, SIGTERM and SIGINT raise KeyboardInterrupt (one line, "interrupted", exit
    130) at once, even in a read the kernel blocks: the handler runs when the read returns EINTR, and raising from
    it ends the read. (Between training steps the loop checks a flag instead: raising there could leave a lock
    held. Here nothing is held, and cache entries are renamed into place whole.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt("while reading the training files, before any step: run the same command again")

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _identity(path: str) -> tuple[int, int, int, int]:
    """(device, inode, size, mtime) of a regular file within MAX_FILE_BYTES; anything else is an AudioError."""
    try:
        info = os.stat(path)
    except OSError as err:
        raise AudioError(f"{path}: cannot read ({err.strerror or err})") from None
    except ValueError:  # an embedded NUL
        raise AudioError(f"{path!r}: not a valid file name") from None
    if not stat.S_ISREG(info.st_mode):
        raise AudioError(f"{path}: not a regular file (a training file must be one)")
    if info.st_size > MAX_FILE_BYTES:
        raise AudioError(f"{path}: {info.st_size / 2**20:.0f} MiB, more than the {MAX_FILE_BYTES >> 20} MiB a "
                         "training file may have")
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def cache_key(path: str) -> str:
    """The cache name of a file: a hash of the front end's settings and the file's bytes."""
    return _content_key(path, _identity(path))


@lru_cache(maxsize=1 << 16)
def _content_key(path: str, identity: tuple[int, int, int, int]) -> str:
    """Hash the file read in HASH_BLOCK pieces (once per file as it is: rows naming one file hash it once)."""
    digest = hashlib.sha256(json.dumps(settings(), sort_keys=True).encode())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # never waits for a writer, should a FIFO be swapped in
    except OSError as err:
        raise AudioError(f"{path}: cannot read ({err.strerror or err})") from None
    with open(fd, "rb", buffering=0) as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise AudioError(f"{path}: not a regular file (a training file must be one)")
        size = 0
        while block := handle.read(HASH_BLOCK):
            size += len(block)
            if size > MAX_FILE_BYTES:
                raise AudioError(f"{path}: grew past the {MAX_FILE_BYTES >> 20} MiB a training file may have")
            digest.update(block)
    return digest.hexdigest()[:32]


def _samples(path: str) -> np.ndarray:
    """The file's samples (`read_audio`), refused beyond MAX_SECONDS by its header before anything is decoded."""
    seconds = header_seconds(Path(path))
    if seconds > MAX_SECONDS:
        raise AudioError(f"{path}: {seconds / 60:.1f} minutes long; a training file may last {MAX_SECONDS / 60:.0f}")
    return read_audio(path, max_seconds=MAX_SECONDS).samples


def cached_mel(path: str, cache_dir: Path) -> np.ndarray:
    """Log-mel `(80, T)` of a file, computed once and stored under its content + settings hash."""
    file = cache_dir / f"{cache_key(path)}.npy"
    return _cached(file, lambda: log_mel(_samples(path))[0].numpy().astype(np.float16))


def cached_pitch(path: str, mel_frames: int, cache_dir: Path) -> np.ndarray:
    """Continuous ln f0 and voicing `(2, T)` per mel frame (YIN), computed once like `cached_mel`."""
    file = cache_dir / f"{cache_key(path)}.pitch.npy"
    return _cached(file, lambda: pitch_track(yin(_samples(path)), mel_frames).astype(np.float32))


def _cached(file: Path, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The cache entry `file`, or `compute()` stored there (atomically: parallel workers may write the same one).
    An entry that does not load (cut short by a crash of another tool, not a .npy) is computed again."""
    if file.is_file():
        try:
            cached: np.ndarray = np.load(file, allow_pickle=False)
            return cached
        except (OSError, ValueError, EOFError):
            pass
    array = compute()
    make_folders(file.parent)
    replace_file(file, lambda tmp: np.save(tmp, array))
    return array


class Features:
    """A corpus's arrays by file: rows that name the same file (or files with the same content) share one array."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.mels: dict[str, np.ndarray] = {}
        self.pitches: dict[str, np.ndarray] = {}

    def mel(self, path: str) -> np.ndarray:
        """Log-mel `(80, T)` float32."""
        key = cache_key(path)
        if key not in self.mels:
            self.mels[key] = cached_mel(path, self.cache_dir).astype(np.float32)
        return self.mels[key]

    def pitch(self, path: str, mel_frames: int) -> np.ndarray:
        """ln f0 and voicing `(2, T)`."""
        key = cache_key(path)
        if key not in self.pitches:
            self.pitches[key] = cached_pitch(path, mel_frames, self.cache_dir)
        return self.pitches[key]
