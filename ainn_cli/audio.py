"""Audio constants, reading and writing.

Every number that describes the signal lives here; other modules import them.
We read with soundfile (libsndfile) and resample with soxr instead of torchaudio:
torchaudio 2.9+ dropped its audio I/O and each release pins one exact torch version.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ainn_cli.errors import AudioError, OutputError, OutputExists

# The official HiFi-GAN V1 front end (see ../shared/AINN.md, "Features").
SAMPLE_RATE = 22050  # Hz
N_FFT = 1024  # samples, also the window length
HOP_LENGTH = 256  # samples per mel frame (~11.6 ms)
N_MELS = 80
F_MIN = 0.0  # Hz
F_MAX = 8000.0  # Hz
LOG_CLAMP = 1e-5  # floor before the natural log
PAD = (N_FFT - HOP_LENGTH) // 2  # 384 samples of reflect padding on each side
FRAME_RATE = SAMPLE_RATE / HOP_LENGTH  # ~86.13 frames per second

LIMIT = 0.999  # output peak ceiling (full scale minus a hair, so 16-bit rounding cannot wrap)
READ_BLOCK = 1 << 18  # frames per block when reading (~5 s at 48 kHz)
MIN_SECONDS = 0.25  # shorter inputs cannot carry a sentence
SILENCE_PEAK = 1e-4  # peak amplitude below which an input counts as silent
CLIP_LEVEL_TOLERANCE = 1e-3  # samples within this of full scale count as clipped
CLIPPED_FRACTION = 0.01  # warn when more than this fraction of samples is clipped
MIN_RATE, MAX_RATE = 4000, 768000  # Hz; outside this a header lies (and 1 Hz would resample to gigabytes)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus"})
OUTPUT_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
                  ".oga": ("OGG", "VORBIS")}  # output suffix -> libsndfile format and subtype
NAME_MAX = 255  # bytes in one file name (ext4, xfs, btrfs, APFS); the file system is asked when it can say


@dataclass(frozen=True)
class Audio:
    """A mono waveform at SAMPLE_RATE with where it came from and what was odd about it."""

    samples: np.ndarray  # (N,) float32 in [-1, 1]
    source_rate: int
    path: str = "<memory>"
    warnings: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def read_audio(path: str | Path, max_seconds: float | None = None) -> Audio:
    """Read any libsndfile format, downmix to mono, resample to SAMPLE_RATE and validate.

    `max_seconds` reads only the start of long files (e.g. a long reference).
    """
    path = Path(path)
    try:
        os.stat(path)
    except OSError as err:  # a name too long, a folder we may not enter: one line, not a traceback
        if err.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise AudioError(f"{str(path)[:200]}: {err.strerror or err}") from None
    if not path.exists():
        raise AudioError(f"{path}: {'broken or looping symbolic link' if path.is_symlink() else 'no such file'}")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not path.is_file():  # a FIFO would block the reader forever; a device is not a recording
        raise AudioError(f"{path}: not a regular file")
    try:
        mono, rate = _read_mono(path, max_seconds)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({_short(err)})") from None
    return prepare(mono, rate, str(path))


def _read_mono(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Read block by block, downmixing each block, so a long multichannel file never sits in memory whole."""
    with sf.SoundFile(str(path)) as handle:
        rate = handle.samplerate
        frames = -1 if max_seconds is None else int(max_seconds * rate)
        blocks = [block.mean(axis=1, dtype=np.float32) for block in
                  handle.blocks(blocksize=READ_BLOCK, frames=frames, dtype="float32", always_2d=True)]
    return (np.concatenate(blocks) if blocks else np.zeros(0, dtype=np.float32)), rate


def prepare(samples: np.ndarray, rate: int, name: str = "<memory>") -> Audio:
    """Validate and resample a mono waveform `(N,)` at `rate` Hz to SAMPLE_RATE."""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise AudioError(f"{name}: sample rate {rate} Hz is outside {MIN_RATE}..{MAX_RATE} Hz")
    wave = np.asarray(samples, dtype=np.float32)  # float32 keeps long files small; sums below use float64
    if wave.ndim != 1:
        raise AudioError(f"{name}: expected a mono waveform, got shape {wave.shape}")
    warnings: list[str] = []
    wave = _finite(wave, name, warnings)
    if wave.size / rate < MIN_SECONDS:
        raise AudioError(f"{name}: too short ({wave.size / rate:.3f} s, need {MIN_SECONDS} s)")
    _check_level(wave, warnings)
    wave = wave - np.float32(np.mean(wave, dtype=np.float64))  # remove DC offset (float64 sum: no overflow)
    peak = float(np.max(np.abs(wave)))
    if peak < SILENCE_PEAK:
        raise AudioError(f"{name}: silent (peak amplitude {peak:.1e})")
    if peak > 1.0:
        wave = wave / np.float32(peak)
    out = wave.astype(np.float32, copy=False)
    if rate != SAMPLE_RATE:
        out = np.clip(soxr.resample(out, rate, SAMPLE_RATE, quality="HQ"), -1.0, 1.0).astype(np.float32)
    return Audio(samples=out, source_rate=rate, path=name, warnings=tuple(warnings))


def _finite(wave: np.ndarray, name: str, warnings: list[str]) -> np.ndarray:
    """Replace NaN and infinite samples by 0 with a warning; refuse a wave that has nothing else."""
    bad = int(np.count_nonzero(~np.isfinite(wave)))
    if not bad:
        return wave
    if bad == wave.size:
        raise AudioError(f"{name}: every sample is NaN or infinite")
    warnings.append(f"{bad} NaN/infinite samples replaced by 0")
    return np.where(np.isfinite(wave), wave, 0.0)


def _check_level(wave: np.ndarray, warnings: list[str]) -> None:
    """Warn about audio beyond full scale (float files) or clipped at full scale, as recorded."""
    peak = float(np.max(np.abs(wave)))
    if peak > 1.0 + CLIP_LEVEL_TOLERANCE:
        warnings.append(f"peak {peak:.3g} is beyond full scale; normalised")
    elif np.mean(np.abs(wave) >= 1.0 - CLIP_LEVEL_TOLERANCE) > CLIPPED_FRACTION:
        warnings.append(f"more than {CLIPPED_FRACTION:.0%} of samples are clipped")


def output_format(path: Path) -> tuple[str, str]:
    """libsndfile's format and subtype for an output name: 16-bit wav or flac, or ogg vorbis; others refused."""
    found = OUTPUT_FORMATS.get(path.suffix.lower())
    if found is None:
        what = f"{path.suffix} files" if path.suffix else "a name without an extension"
        raise OutputError(f"{path}: cannot write {what}; end the output name in .wav, .flac or .ogg")
    return found


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE, overwrite: bool = False,
              on_limit: Callable[[float], None] | None = None) -> Path:
    """Write `(N,)` float samples at SAMPLE_RATE as audio at `rate`, atomically (hidden temp file, then rename).

    The format follows the extension (`output_format`: .wav and .flac 16-bit, .ogg vorbis). Non-finite
    samples become 0; a peak beyond full scale (e.g. after resampling) is scaled down to LIMIT, and
    `on_limit(peak)` is told. On any failure the temp file is removed and the target is left as it was;
    without `overwrite` an existing file is never replaced, not even one that appears while writing.
    """
    path = Path(path)
    kind, subtype = output_format(path)
    check_writable(path, overwrite)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(np.asarray(samples, dtype=np.float32), SAMPLE_RATE, rate, quality="HQ")
    samples = limit(samples, on_limit)
    try:
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as handle:
            sf.write(handle, samples, rate, format=kind, subtype=subtype)
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, sf.LibsndfileError) as err:
        raise OutputError(f"{path}: cannot write ({_reason(err)})") from None
    return path


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
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes files private; outputs get the usual permissions
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


def limit(samples: np.ndarray, on_limit: Callable[[float], None] | None = None) -> np.ndarray:
    """Finite `(N,)` float32 within [-LIMIT, LIMIT]: NaN/inf -> 0, then the whole signal scaled if it peaks higher."""
    clean = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(clean))) if clean.size else 0.0
    if peak <= LIMIT:
        return clean
    if on_limit is not None:
        on_limit(peak)
    return clean * np.float32(LIMIT / peak)


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
    blocker = next((p for p in path.parents if p.exists() or p.is_symlink()), None)
    if blocker is not None and not blocker.is_dir():
        raise OutputError(f"{blocker}: is not a folder, so {path} cannot be written")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path.parent}: cannot create folder ({_reason(err)})") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path.parent}: folder is not writable")


def _discard(tmp: str | None) -> None:
    """Remove a temp file if it was created; never raise (we are already handling a failure)."""
    if tmp is not None:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _reason(err: Exception) -> str:
    return (err.strerror if isinstance(err, OSError) else None) or _short(err)


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.removeprefix("Error opening ").strip()
