"""Audio constants, reading and writing.

Every number that describes the signal lives here; other modules import them.
We read with soundfile (libsndfile) and resample with soxr instead of torchaudio:
torchaudio 2.9+ dropped its audio I/O and each release pins one exact torch version.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ainn_cli.errors import AudioError, OutputError, UsageError
from ainn_cli.files import KeptErrors, atomic_output, check_writable, reason, short_reason

# The official HiFi-GAN V1 front end (its config_v1.json: 22050 Hz, 1024-point STFT, hop 256, 80 mels to 8 kHz).
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
REFERENCE_MAX_SECONDS = 30.0  # only the start of a very long reference is read (its emotion, not its length)
SILENCE_PEAK = 1e-4  # peak amplitude below which an input counts as silent
CLIP_LEVEL_TOLERANCE = 1e-3  # samples within this of full scale count as clipped
CLIPPED_FRACTION = 0.01  # warn when more than this fraction of samples is clipped
MIN_RATE, MAX_RATE = 4000, 768000  # Hz; outside this a header lies (and 1 Hz would resample to gigabytes)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus"})
OUTPUT_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"),
                  ".oga": ("OGG", "VORBIS")}  # output suffix -> libsndfile format and subtype
FORMAT_MAX_RATES = {"OGG": 200_000, "FLAC": 655_350}  # Hz: libvorbis segfaults above, libFLAC refuses above


def settings() -> dict[str, float]:
    """The front end's numbers: a bundle records them, and the feature cache is keyed by them."""
    return {"sample_rate": SAMPLE_RATE, "n_fft": N_FFT, "hop_length": HOP_LENGTH, "n_mels": N_MELS,
            "f_min": F_MIN, "f_max": F_MAX, "log_clamp": LOG_CLAMP}


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
    path = check_input(path)
    try:
        mono, rate = _read_mono(path, max_seconds)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({short_reason(err)})") from None
    except OSError as err:  # no permission to read it, an I/O error
        raise AudioError(f"{path}: cannot read ({err.strerror or err})") from None
    return prepare(mono, rate, str(path))


def probe(path: str | Path) -> None:
    """Refuse what `read_audio` would refuse as unreadable, from the file's header alone (a folder run finds its
    broken, empty and unopenable files before any model loads)."""
    path = check_input(path)
    try:
        with sound_file(path):
            pass
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({short_reason(err)})") from None
    except OSError as err:
        raise AudioError(f"{path}: cannot read ({err.strerror or err})") from None


@contextlib.contextmanager
def sound_file(path: str | Path) -> Iterator[sf.SoundFile]:
    """libsndfile reading `path`, whatever its name: opened by Python and handed over as a file object, since
    soundfile encodes a name strictly as UTF-8 and libsndfile refuses paths of over 1024 bytes."""
    with open(path, "rb") as handle, sf.SoundFile(handle) as sound:
        yield sound


def check_input(path: str | Path) -> Path:
    """An input that exists and is a regular file, or a one-line AudioError (a FIFO would block the reader forever;
    a device is not a recording; a name the system refuses to look up is not a traceback)."""
    path = Path(path)
    try:
        os.stat(path)
    except OSError as err:  # a name too long, a folder we may not enter: one line, not a traceback
        if err.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            raise AudioError(f"{str(path)[:200]}: {err.strerror or err}") from None
    except ValueError:  # an embedded NUL
        raise AudioError(f"{str(path)[:200]!r}: not a valid file name") from None
    if not path.exists():
        raise AudioError(f"{path}: {'broken or looping symbolic link' if path.is_symlink() else 'no such file'}")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if not path.is_file():
        raise AudioError(f"{path}: not a regular file")
    return path


def _read_mono(path: Path, max_seconds: float | None) -> tuple[np.ndarray, int]:
    """Read block by block, downmixing each block, so a long multichannel file never sits in memory whole."""
    with sound_file(path) as handle:
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


def check_rate(path: Path, rate: int) -> None:
    """Refuse a sample rate that `path`'s format cannot encode, before anything is converted (libvorbis crashes
    the process above 200 kHz; FLAC stops at 655350 Hz)."""
    kind, _ = output_format(path)
    highest = FORMAT_MAX_RATES.get(kind, MAX_RATE)
    if rate > highest:
        raise UsageError(f"{path}: {kind.lower()} files hold at most {highest} Hz, not --sample-rate {rate}")


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
    check_rate(path, rate)
    check_writable(path, overwrite)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(np.asarray(samples, dtype=np.float32), SAMPLE_RATE, rate, quality="HQ")
    samples = limit(samples, on_limit)
    kept = None
    try:
        with atomic_output(path, overwrite) as tmp, open(tmp, "wb") as handle:
            kept = KeptErrors(handle)
            sf.write(kept, samples, rate, format=kind, subtype=subtype)
            handle.flush()
            os.fsync(handle.fileno())
    except (OSError, sf.LibsndfileError, AssertionError) as err:  # soundfile asserts a short write away
        raise OutputError(f"{path}: cannot write ({reason(kept.error if kept and kept.error else err)})") from None
    return path


def limit(samples: np.ndarray, on_limit: Callable[[float], None] | None = None) -> np.ndarray:
    """Finite `(N,)` float32 within [-LIMIT, LIMIT]: NaN/inf -> 0, then the whole signal scaled if it peaks higher."""
    clean = np.nan_to_num(np.asarray(samples, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    peak = float(np.max(np.abs(clean))) if clean.size else 0.0
    if peak <= LIMIT:
        return clean
    if on_limit is not None:
        on_limit(peak)
    return clean * np.float32(LIMIT / peak)


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES
