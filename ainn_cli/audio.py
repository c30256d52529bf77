"""Audio constants, reading and writing.

Every number that describes the signal lives here; other modules import them.
We read with soundfile (libsndfile) and resample with soxr instead of torchaudio:
torchaudio 2.9+ dropped its audio I/O and each release pins one exact torch version.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ainn_cli.errors import AudioError, OutputError

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

MIN_SECONDS = 0.25  # shorter inputs cannot carry a sentence
SILENCE_PEAK = 1e-4  # peak amplitude below which an input counts as silent
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".opus"})


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
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    try:
        info = sf.info(str(path))
        frames = -1 if max_seconds is None else int(max_seconds * info.samplerate)
        data, rate = sf.read(str(path), frames=frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{path}: not a readable audio file ({_short(err)})") from None
    return prepare(data.mean(axis=1), rate, str(path))


def prepare(samples: np.ndarray, rate: int, name: str = "<memory>") -> Audio:
    """Validate and resample a mono waveform `(N,)` at `rate` Hz to SAMPLE_RATE."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise AudioError(f"{name}: expected a mono waveform, got shape {samples.shape}")
    warnings: list[str] = []
    if not np.all(np.isfinite(samples)):
        bad = int(np.sum(~np.isfinite(samples)))
        if bad == samples.size:
            raise AudioError(f"{name}: every sample is NaN or infinite")
        samples = np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)
        warnings.append(f"{bad} NaN/infinite samples replaced by 0")
    if samples.size / max(rate, 1) < MIN_SECONDS:
        raise AudioError(f"{name}: too short ({samples.size / max(rate, 1):.3f} s, need {MIN_SECONDS} s)")
    samples = samples - float(np.mean(samples))  # remove DC offset
    peak = float(np.max(np.abs(samples)))
    if peak < SILENCE_PEAK:
        raise AudioError(f"{name}: silent (peak amplitude {peak:.1e})")
    if peak > 1.0:
        samples = samples / peak
        warnings.append(f"peak {peak:.2f} is beyond full scale; normalised")
    elif np.mean(np.abs(samples) > 0.999) > 0.01:
        warnings.append("more than 1% of samples are clipped")
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)
    return Audio(samples=samples, source_rate=rate, path=name, warnings=tuple(warnings))


def write_wav(path: str | Path, samples: np.ndarray, rate: int = SAMPLE_RATE, overwrite: bool = False) -> Path:
    """Write `(N,)` float samples as 16-bit wav atomically: a temp file in the same folder, then rename."""
    path = Path(path)
    check_writable(path, overwrite)
    if rate != SAMPLE_RATE:
        samples = soxr.resample(samples, SAMPLE_RATE, rate, quality="HQ")
    samples = np.clip(np.nan_to_num(samples), -1.0, 1.0)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            sf.write(handle, samples, rate, format="WAV", subtype="PCM_16")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({err.strerror or err})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_writable(path: Path, overwrite: bool) -> None:
    """Refuse an existing output without `overwrite` and create the folder, or say why not."""
    if path.is_dir():
        raise OutputError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not overwrite:
        raise OutputError(f"{path}: exists already (use --overwrite to replace it)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"{path.parent}: cannot create folder ({err.strerror or err})") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"{path.parent}: folder is not writable")


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return text.removeprefix("Error opening ").strip()
