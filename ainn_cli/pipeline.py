"""The public Python API: load a bundle once, then convert and read strength.

    src wave --mel--> R (cue) --> Ec --> content c, timbre s ---------\
    ref wave --mel--> R (class, strength, cue) --> Ee --> e ----------> G --> mel --> HiFi-GAN --> wave
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from ainn_cli.audio import FRAME_RATE, HOP_LENGTH, SAMPLE_RATE, Audio, prepare
from ainn_cli.bundle import Bundle, load_bundle
from ainn_cli.device import resolve_device
from ainn_cli.errors import DeviceError, UsageError
from ainn_cli.hub import resolve_bundle
from ainn_cli.mel import chunk_spans, log_mel
from ainn_cli.recognizer import Recognition
from ainn_cli.vocoder import HifiGan, receptive_radius

CHUNK_FRAMES = 2048  # mel frames (~24 s) converted at once: memory stays bounded for any input length
MIN_CHUNK = 128  # smallest chunk tried after CUDA runs out of memory
CONTEXT = 96  # mel frames (~1.1 s) of neighbour context per chunk side: more than R -> Ec -> G sees


@dataclass(frozen=True)
class StrengthReading:
    """Emotion category, calibrated strength and the emotional cue of one recording."""

    label: str
    probabilities: dict[str, float]
    strength: float  # calibrated, 0 = neutral, 1 = full-blown
    raw_strength: float  # Rs output before calibration
    cue: tuple[float, ...]  # emotional cue M per mel frame
    seconds: float
    frame_rate: float = FRAME_RATE


@dataclass(frozen=True)
class ConversionResult:
    wave: np.ndarray  # (N,) float32 at SAMPLE_RATE
    reference: StrengthReading | None  # None when converting to a prototype emotion
    emotion: str
    strength: float  # calibrated target strength of the output
    seconds: float
    elapsed: float

    @property
    def rtf(self) -> float:
        """Real-time factor: seconds of compute per second of audio."""
        return self.elapsed / max(self.seconds, 1e-9)


class Pipeline:
    """A loaded bundle on one device. Inputs are `Audio` or `(N,)` float arrays at SAMPLE_RATE."""

    def __init__(self, bundle: Bundle, device: torch.device, half: bool = False) -> None:
        self.bundle, self.device = bundle, device
        self.dtype = torch.float16 if half and device.type == "cuda" else torch.float32
        for name, module in bundle.modules.items():
            module.to(device, torch.float32 if name == "vocoder" else self.dtype)
        m = bundle.modules
        self.recognizer, self.content, self.emotion = m["recognizer"], m["content_encoder"], m["emotion_encoder"]
        self.generator = m["generator"]
        vocoder = m["vocoder"]
        assert isinstance(vocoder, HifiGan)  # the bundle loader builds it from VocoderConfig
        # on a CPU the tiled channels-last path computes the same waveform ~1.3x faster (benchmarks/vocoder_ab.py)
        self.vocoder: torch.nn.Module = vocoder.prepare_for_inference() if device.type == "cpu" else vocoder
        self.vocoder_context = receptive_radius(vocoder.config)  # exact seams with 15 frames, not CONTEXT's 96
        self.labels = bundle.info.labels
        self.chunk_frames = CHUNK_FRAMES

    def _mel(self, wave: np.ndarray) -> torch.Tensor:
        """`(N,)` -> `(1, 80, N // 256)` on device in the pipeline's dtype."""
        return log_mel(torch.from_numpy(np.ascontiguousarray(wave)).to(self.device)).to(self.dtype)

    def _read(self, samples: np.ndarray) -> tuple[torch.Tensor, Recognition, StrengthReading]:
        """Mel `(1, 80, T)`, R's raw outputs and the calibrated reading of one waveform."""
        mel = self._mel(samples)
        rec = self.recognizer(mel)
        probs = torch.softmax(rec.logits.float(), dim=-1)[0].cpu().tolist()
        label = self.labels[int(np.argmax(probs))]
        raw = float(rec.strength[0])
        strength = 0.0 if label == "neutral" else self.bundle.info.calibration.calibrate(label, raw)
        reading = StrengthReading(
            label=label, probabilities=dict(zip(self.labels, probs)), strength=strength, raw_strength=raw,
            cue=tuple(rec.cue[0].float().cpu().tolist()), seconds=len(samples) / SAMPLE_RATE,
        )
        return mel, rec, reading

    @torch.inference_mode()
    def strength(self, wave: Audio | np.ndarray) -> StrengthReading:
        """Read emotion category, calibrated strength and cue M of a recording."""
        return self._read(_samples(wave))[2]

    @torch.inference_mode()
    def convert(
        self, source: Audio | np.ndarray, reference: Audio | np.ndarray | None = None,
        strength: float | None = None, emotion: str | None = None,
    ) -> ConversionResult:
        """Say `source` with the emotion of `reference` (or of a prototype `emotion`) at `strength`."""
        start = time.perf_counter()
        if strength is not None and not 0.0 <= strength <= 1.0:
            raise UsageError(f"strength must be between 0 and 1, got {strength}")
        reading, embedding = self._target(reference, emotion)
        label = reading.label if reading else str(emotion)
        level = _level(label, strength, reading)
        raw = 0.0 if label == "neutral" else self.bundle.info.calibration.raw(label, level)
        samples = _samples(source)
        strength_in = torch.full((1,), raw, device=self.device, dtype=self.dtype)
        wave = _fit(self._convert_in_chunks(self._mel(samples), embedding, strength_in), len(samples))
        return ConversionResult(
            wave=wave, reference=reading, emotion=label, strength=level,
            seconds=len(samples) / SAMPLE_RATE, elapsed=time.perf_counter() - start,
        )

    def _target(
        self, reference: Audio | np.ndarray | None, emotion: str | None
    ) -> tuple[StrengthReading | None, torch.Tensor]:
        """The reference's reading and emotion embedding `(1, E)`, or a prototype's embedding."""
        if reference is not None:
            mel, rec, reading = self._read(_samples(reference))
            return reading, self.emotion(mel, rec.cue)
        if emotion is None:
            raise UsageError("give a reference recording or an --emotion")
        prototypes = self.bundle.info.prototypes
        if emotion not in prototypes:
            raise UsageError(f"unknown emotion {emotion!r} (this model knows: {', '.join(prototypes) or 'none'})")
        return None, torch.tensor([prototypes[emotion]], device=self.device, dtype=self.dtype)

    def _convert_in_chunks(self, mel: torch.Tensor, embedding: torch.Tensor, strength: torch.Tensor) -> np.ndarray:
        """Source mel `(1, 80, T)` -> converted waveform, retrying with smaller chunks on a CUDA out-of-memory."""
        chunk = self.chunk_frames
        while True:
            try:
                return self.vocode(self.convert_mel(mel, embedding, strength, chunk), chunk)
            except torch.OutOfMemoryError:
                if chunk <= MIN_CHUNK:
                    raise DeviceError(
                        f"out of memory on {self.device} even with {chunk}-frame chunks; use --device cpu"
                    ) from None
                chunk //= 2
                torch.cuda.empty_cache()

    def convert_mel(self, mel: torch.Tensor, embedding: torch.Tensor, strength: torch.Tensor,
                    chunk: int) -> torch.Tensor:
        """Source mel `(1, 80, T)` -> converted mel `(1, 80, T)`, in chunks of `chunk` frames.

        Each chunk is processed with CONTEXT frames of its neighbours on both sides, which covers the
        receptive field of R, Ec and G, and only its centre is kept:

            |<- CONTEXT ->|<------ chunk ------>|<- CONTEXT ->|
                          ^ kept                ^
        The voice (timbre) vector is taken once, from the first chunk, so it cannot drift between chunks.
        """
        pieces, timbre = [], None
        for start, stop, lo, hi in chunk_spans(mel.shape[-1], chunk, CONTEXT):
            part = mel[..., lo:hi]
            content = self.content(part, self.recognizer(part).cue)
            timbre = content.timbre if timbre is None else timbre
            out = self.generator(content.frames, embedding, strength, timbre)
            pieces.append(out[..., start - lo : stop - lo])
        return torch.cat(pieces, dim=-1)

    def vocode(self, mel: torch.Tensor, chunk: int = CHUNK_FRAMES) -> np.ndarray:
        """Log-mel `(1, 80, T)` -> waveform `(T * 256,)`; long inputs in chunks with context overlap."""
        mel, pieces = mel.to(torch.float32), []
        for start, stop, lo, hi in chunk_spans(mel.shape[-1], chunk, self.vocoder_context):
            wave = self.vocoder(mel[..., lo:hi])[0]
            pieces.append(wave[(start - lo) * HOP_LENGTH : (stop - lo) * HOP_LENGTH])
        return torch.cat(pieces).float().cpu().numpy()


def _level(label: str, strength: float | None, reading: StrengthReading | None) -> float:
    """Target strength: 0 for neutral, else --strength, else the reference's, else full."""
    if label == "neutral":
        return 0.0
    if strength is not None:
        return strength
    return reading.strength if reading is not None else 1.0


def _fit(wave: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad `(N',)` to `(length,)`: frames cover len // 256 * 256 samples."""
    return wave[:length] if len(wave) >= length else np.pad(wave, (0, length - len(wave)))


def _samples(wave: Audio | np.ndarray) -> np.ndarray:
    if isinstance(wave, Audio):
        return wave.samples
    return prepare(np.asarray(wave, dtype=np.float32), SAMPLE_RATE).samples


def load_pipeline(model: str | None = None, device: str = "auto", half: bool = False) -> Pipeline:
    """Load a bundle (registry name, folder or Hub id) onto a device: the entry point of the API."""
    return Pipeline(load_bundle(resolve_bundle(model)), resolve_device(device), half=half)
