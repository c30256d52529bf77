"""The public Python API: load a bundle once, then convert and read strength.

    src wave --mel--> R (cue) --> Ec --> content c, timbre s ---------\
    ref wave --mel--> R (class, strength, cue) --> Ee --> e ----------> G --> mel --> HiFi-GAN --> wave

With a prosody predictor, e, the strength and (`rate_weight`) the two waves' speaking rates (`rate.py`) give a
prosody change that reshapes the source's mel before Ec (`prosody.reshape_mel`).
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.audio import FRAME_RATE, HOP_LENGTH, SAMPLE_RATE, Audio, prepare
from ainn_cli.bundle import Bundle, load_bundle
from ainn_cli.chunks import Span, map_chunks, sounding_spans
from ainn_cli.device import resolve_device
from ainn_cli.emotions import NEUTRAL, strength_of
from ainn_cli.errors import BundleError, DeviceError, UsageError
from ainn_cli.hub import resolve_bundle
from ainn_cli.mel import log_mel_in_chunks
from ainn_cli.models.predictor import ProsodyPredictor
from ainn_cli.models.recognizer import Recognition, Recognizer
from ainn_cli.models.vocoder import HifiGan, receptive_radius
from ainn_cli.pitch import Pitch, energy, pitch_track, prosody_inputs, yin
from ainn_cli.prosody import (
    NEPER_TO_DB,
    SEMITONES,
    Prosody,
    apply_change,
    match_energy,
    mean_f0,
    new_length,
    reshape_mel,
    retime,
    with_fine_structure,
)
from ainn_cli.rate import rate_ratio, speaking_rate

CHUNK_FRAMES = 2048  # mel frames (~24 s) converted at once: memory stays bounded for any input length
REMEMBERED_RATES = 8  # references whose speaking rate a pipeline keeps
MIN_CHUNK = 128  # smallest chunk tried after CUDA runs out of memory
SILENCE_DB = 60.0  # vocode: frames this far under the loudest one (and beyond a margin) are written as zeros
# mel frames (~1.1 s) of neighbour context per chunk side. It covers the convolutions' reach (a one-frame change
# moves R's features 32 frames and Ec -> G's output 46 frames away, tested); instance/group norm and the cue's
# max-normalisation see the whole chunk, so chunks are close to one pass (tested), not bit-equal to it
CONTEXT = 96
READ_CHUNK_FRAMES = 4 * CHUNK_FRAMES  # mel frames (~95 s) R reads at once; a longer recording is read in chunks
SELF_TEST_SECONDS = 0.3  # of noise run through every path when a bundle loads (inputs need 0.25 s)


@dataclass(frozen=True)
class StrengthReading:
    """Emotion category, calibrated strength and the emotional cue of one recording."""

    label: str
    probabilities: dict[str, float]
    strength: float  # calibrated, 0 = neutral, 1 = full-blown
    cue: tuple[float, ...]  # emotional cue M per mel frame
    seconds: float
    frame_rate: float = FRAME_RATE


@dataclass(frozen=True)
class ProsodyChange:
    """What the prosody predictor asked for (the prosody variant): the output against the source."""

    pitch_semitones: float  # median pitch shift
    pitch_range: float  # ratio of the pitch contour's spread
    energy_db: float  # loudness change of the speech frames
    duration: float  # ratio of output to source length
    pitch_end_semitones: float = 0.0  # the contour's last value: how the end of speech moves beyond the shift


@dataclass(frozen=True)
class ConversionResult:
    wave: np.ndarray  # (N,) float32 at SAMPLE_RATE
    reference: StrengthReading | None  # None when converting to a prototype emotion
    emotion: str
    strength: float  # calibrated target strength of the output
    seconds: float  # of the source
    elapsed: float
    prosody: ProsodyChange | None = None  # None for models without a prosody path

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
        predictor = m.get("prosody")
        self.prosody = predictor if isinstance(predictor, ProsodyPredictor) else None
        vocoder = m["vocoder"]
        assert isinstance(vocoder, HifiGan)  # the bundle loader builds it from VocoderConfig
        # on a CPU the tiled channels-last path computes the same waveform ~1.3x faster (benchmarks/vocoder_ab.py)
        self.vocoder: torch.nn.Module = vocoder.prepare_for_inference() if device.type == "cpu" else vocoder
        self.vocoder_context = receptive_radius(vocoder.config)  # exact seams with 15 frames, not CONTEXT's 96
        self.labels = bundle.info.labels
        self.chunk_frames, self.read_chunk_frames = CHUNK_FRAMES, READ_CHUNK_FRAMES
        self.reference_rates: dict[str, float | None] = {}  # blake2b of a reference's samples -> its speaking rate
        self._self_test()

    @torch.inference_mode()
    def _self_test(self) -> None:
        """Run noise through every path once, so that components that do not fit together (or a model that
        makes NaN) fail here in one BundleError, not in the middle of a conversion."""
        noise = np.random.default_rng(0).uniform(-0.5, 0.5, int(SELF_TEST_SECONDS * SAMPLE_RATE)).astype(np.float32)
        where, prototypes = self.bundle.path, self.bundle.info.prototypes
        try:
            classes = self.recognizer(self._mel(noise)).logits.shape[-1]
            embedding = self._target(noise, None)[1]
            wave = self.convert(noise, noise).wave
        except (RuntimeError, ValueError, IndexError, TypeError) as err:
            reason = (str(err).strip().splitlines() or [""])[0][:200]
            raise BundleError(f"{where}: its components do not fit together ({type(err).__name__}: {reason})") from None
        if classes != len(self.labels):
            raise BundleError(f"{where}: the recognizer has {classes} classes for {len(self.labels)} labels")
        if any(len(v) != embedding.shape[-1] for v in prototypes.values()):
            raise BundleError(f"{where}: prototypes do not have the emotion embedding's {embedding.shape[-1]} values")
        if not np.isfinite(wave).all():
            raise BundleError(f"{where}: the model turns a test signal into NaN or infinite samples")

    def _mel(self, wave: np.ndarray) -> torch.Tensor:
        """`(N,)` -> `(1, 80, N // 256)` on device in the pipeline's dtype; long waves in chunks (same mel)."""
        tensor = torch.from_numpy(np.ascontiguousarray(wave)).to(self.device)
        return log_mel_in_chunks(tensor, self.chunk_frames).to(self.dtype)

    def _read(self, samples: np.ndarray) -> tuple[torch.Tensor, Recognition, StrengthReading]:
        """Mel `(1, 80, T)`, R's raw outputs and the calibrated reading of one waveform (a long one in chunks)."""
        mel = self._mel(samples)
        rec = self._recognize_in_chunks(mel, self.read_chunk_frames)
        probs = torch.softmax(rec.logits.float(), dim=-1)[0].cpu().tolist()
        label = self.labels[int(np.argmax(probs))]
        raw = float(rec.strength[0])
        if not np.isfinite([*probs, raw]).all():
            raise BundleError(f"{self.bundle.path}: the recognizer gives NaN or infinite outputs")
        strength = self.bundle.info.calibration.calibrate(label, raw)
        reading = StrengthReading(
            label=label, probabilities=dict(zip(self.labels, probs)), strength=strength,
            cue=tuple(rec.cue[0].float().cpu().tolist()), seconds=len(samples) / SAMPLE_RATE,
        )
        return mel, rec, reading

    def _recognize_in_chunks(self, mel: torch.Tensor, chunk: int) -> Recognition:
        """R on a long mel `(1, 80, T)` in bounded memory: the trunk in chunks with CONTEXT frames per side (as
        `convert_mel`), then the heads on the features `(1, C, T)`. With one chunk it is forward."""
        r = cast(Recognizer, self.recognizer)
        return r.heads(map_chunks(mel.shape[-1], lambda s: r.features(mel[..., s.lo : s.hi]), chunk, CONTEXT))

    @torch.inference_mode()
    def strength(self, wave: Audio | np.ndarray) -> StrengthReading:
        """Read emotion category, calibrated strength and cue M of a recording."""
        return self._read(_samples(wave))[2]

    @torch.inference_mode()
    def convert(
        self, source: Audio | np.ndarray, reference: Audio | np.ndarray | None = None,
        strength: float | None = None, emotion: str | None = None, tempo: bool | None = None,
    ) -> ConversionResult:
        """Say `source` with the emotion of `reference` (or of a prototype `emotion`) at `strength`; with `tempo`,
        also follow the reference's speaking rate (None: as the model's `follow_rate` says)."""
        start = time.perf_counter()
        if strength is not None and not 0.0 <= strength <= 1.0:
            raise UsageError(f"strength must be between 0 and 1, got {strength}")
        samples = _samples(source)
        mel = self._mel(samples)
        reading, label, level, target = self._ask(samples, mel, reference, strength, emotion, tempo)
        change = target.change
        wave = self._convert_in_chunks(mel, target)
        length = len(samples) if change is None else round(len(samples) * new_length(mel.shape[-1], change)
                                                           / max(mel.shape[-1], 1))
        return ConversionResult(
            wave=_fit(wave, length), reference=reading, emotion=label, strength=level,
            seconds=len(samples) / SAMPLE_RATE, elapsed=time.perf_counter() - start,
            prosody=None if change is None else _described(change, length / max(len(samples), 1), target.contour),
        )

    def _ask(
        self, samples: np.ndarray, mel: torch.Tensor, reference: Audio | np.ndarray | None, strength: float | None,
        emotion: str | None, tempo: bool | None,
    ) -> tuple[StrengthReading | None, str, float, Target]:
        """What G is asked for a source `(N,)` with mel `(1, 80, T)`: the reference's reading, the target label and
        level, and the Target (with a prosody path, the source's pitch and the predicted change and contour)."""
        follow_rate = self._follows_rate(tempo, reference)
        reading, embedding = self._target(reference, emotion)
        label = reading.label if reading else str(emotion)
        level = _level(label, strength, reading)
        strength_in = torch.full((1,), self.bundle.info.calibration.raw(label, level), device=self.device,
                                 dtype=self.dtype)
        level_in = torch.full((1,), level, device=self.device, dtype=self.dtype)
        if self.prosody is None:
            return reading, label, level, Target(embedding, strength_in, level_in)
        rate = self._rate(samples, mel, reference) if follow_rate else None
        change = self.prosody(embedding, level_in, rate).float()
        contour = self.prosody.contour(self._label_index(label), level_in)
        if self.prosody.config.blend_neutral:
            embedding = self._blend_neutral(embedding, level)
        neutral = F.normalize(self._neutral(), dim=-1) if self.prosody.config.guidance != 1.0 else None
        return reading, label, level, Target(embedding, strength_in, level_in, yin(samples), change,
                                             None if contour is None else contour.float(), neutral)

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

    @property
    def can_follow_rate(self) -> bool:
        """Whether the model has a fitted weight for the reference's speaking rate (`convert(tempo=True)`)."""
        return self.prosody is not None and self.prosody.config.rate_weight != 0.0

    def _follows_rate(self, tempo: bool | None, reference: Audio | np.ndarray | None) -> bool:
        """Does this conversion follow the reference's speaking rate? `tempo` True asks for it (an error where the
        model has no fitted rate weight or there is no reference), False refuses it, None leaves it to the model."""
        if tempo and not self.can_follow_rate:
            raise UsageError(f"{self.bundle.path}: this model has no speaking-rate weight (rate_weight), so it "
                             "cannot follow the reference's tempo")
        if tempo and reference is None:
            raise UsageError("following the tempo needs a reference recording; a prototype emotion has none")
        follow = tempo if tempo is not None else self.prosody is not None and self.prosody.config.follow_rate
        return bool(follow) and self.can_follow_rate and reference is not None

    def _rate(self, source: np.ndarray, mel: torch.Tensor, reference: Audio | np.ndarray | None) -> torch.Tensor | None:
        """ln(source speaking rate / reference's) `(1,)` for the prosody predictor's `rate_weight`; None without a
        reference (a prototype has no tempo) or a rate weight."""
        if reference is None or not self.can_follow_rate:
            return None
        return torch.full((1,), rate_ratio(speaking_rate(source, mel), self._reference_rate(_samples(reference))),
                          device=self.device)

    def _reference_rate(self, samples: np.ndarray) -> float | None:
        """`rate.speaking_rate` of a reference, remembered for the last few references (a folder converted with one
        reference reads its rate once)."""
        key = hashlib.blake2b(samples.tobytes(), digest_size=16).hexdigest()
        if key not in self.reference_rates:
            if len(self.reference_rates) >= REMEMBERED_RATES:
                self.reference_rates.clear()
            self.reference_rates[key] = speaking_rate(samples)
        return self.reference_rates[key]

    def _label_index(self, label: str) -> torch.Tensor:
        """`(1,)` index of `label` among the bundle's labels."""
        return torch.tensor([self.bundle.info.labels.index(label)], device=self.device)

    def _neutral(self) -> torch.Tensor:
        """The neutral prototype `(1, E)` (blend_neutral and guidance need it)."""
        neutral = self.bundle.info.prototypes.get(NEUTRAL)
        if neutral is None:
            raise BundleError(f"{self.bundle.path}: blend_neutral and guidance need a neutral prototype in bundle.json")
        return torch.tensor([neutral], device=self.device, dtype=self.dtype)

    def _blend_neutral(self, embedding: torch.Tensor, level: float) -> torch.Tensor:
        """The emotion embedding `(1, E)` moved to the neutral prototype by 1 - level (unit norm kept)."""
        start = self._neutral()
        return F.normalize(start + level * (embedding - start), dim=-1)

    def _convert_in_chunks(self, mel: torch.Tensor, target: Target) -> np.ndarray:
        """Source mel `(1, 80, T)` -> converted waveform, retrying with smaller chunks on a CUDA out-of-memory."""
        chunk = self.chunk_frames
        while True:
            try:
                return self.vocode(self.convert_mel(mel, target, chunk), chunk)
            except torch.OutOfMemoryError:
                if chunk <= MIN_CHUNK:
                    raise DeviceError(
                        f"out of memory on {self.device} even with {chunk}-frame chunks; use --device cpu"
                    ) from None
                chunk //= 2
                torch.cuda.empty_cache()

    def convert_mel(self, mel: torch.Tensor, target: Target, chunk: int) -> torch.Tensor:
        """Source mel `(1, 80, T)` -> converted mel `(1, 80, T')`, in chunks of `chunk` frames.

        Ec reads the source and G writes the output chunk by chunk, each chunk with CONTEXT frames of
        its neighbours on both sides, of which only the centre is kept:

            |<- CONTEXT ->|<------ chunk ------>|<- CONTEXT ->|
                          ^ kept                ^
        The voice (timbre) vector is taken once, from the first chunk, so it cannot drift between chunks.
        With a prosody path, the content is resampled in time (T' = T x the predicted duration ratio)
        and G renders the source's pitch and energy contour changed as predicted. Without a rendering G,
        the mel itself is reshaped first and, as the predictor's `match_energy` says, G's output is brought
        to the reshaped mel's speech energy; for a voice below the predictor's `low_voice_hz`, G's envelope is
        laid over the reshaped mel's harmonics.
        """
        rendered = bool(getattr(self.generator.config, "prosody_dim", 0))  # G renders a contour, else reshape the mel
        source, change = None, target.change
        if target.pitch is not None and change is not None:
            source = _source_prosody(mel, target.pitch)
            if not rendered:
                mel = reshape_mel(mel, source, change.to(mel.dtype), target.contour)
        frames, timbre = self._encode(mel, chunk)
        prosody = None
        if source is not None and change is not None and rendered:
            length = new_length(mel.shape[-1], change)
            wanted = apply_change(source, change.to(source.log_f0.dtype), target.contour).retimed(length)
            frames = retime(frames, length)
            prosody = prosody_inputs(wanted.log_f0, wanted.voiced, wanted.energy).to(self.dtype)

        def generate(s: Span) -> torch.Tensor:
            part = None if prosody is None else prosody[..., s.lo : s.hi]
            out: torch.Tensor = self.generator(frames[..., s.lo : s.hi], target.embedding, target.strength, timbre,
                                               part)
            if target.neutral is not None and self.prosody is not None:  # guidance: away from G's neutral
                base = self.generator(frames[..., s.lo : s.hi], target.neutral, target.strength, timbre, part)
                out = base + self.prosody.config.guidance * (out - base)
            return out

        out = map_chunks(frames.shape[-1], generate, chunk, CONTEXT)
        if source is not None and not rendered and self._low_voice(source):
            out = with_fine_structure(out.float(), mel.float()).to(out.dtype)  # mel is the reshaped input here
        mode = self.prosody.config.match_energy if self.prosody is not None else "off"
        if source is not None and not rendered and mode != "off":
            out = match_energy(out, mel, louder=mode == "match")  # mel is the reshaped input here: the asked loudness
        return out

    def _low_voice(self, source: Prosody) -> bool:
        """Is the source's voice below the predictor's `low_voice_hz` (where G's own harmonics drift)?"""
        limit = self.prosody.config.low_voice_hz if self.prosody is not None else 0.0
        return limit > 0 and float(mean_f0(source)[0]) < limit

    def _encode(self, mel: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Content frames `(1, D, T)` of a mel `(1, 80, T)` in chunks, and the first chunk's timbre `(1, S)`."""
        timbres: list[torch.Tensor] = []

        def encode(s: Span) -> torch.Tensor:
            part = mel[..., s.lo : s.hi]
            content = self.content(part, self.recognizer(part).cue)
            timbres.append(content.timbre)
            frames: torch.Tensor = content.frames
            return frames

        frames = map_chunks(mel.shape[-1], encode, chunk, CONTEXT)
        return frames, timbres[0]

    def vocode(self, mel: torch.Tensor, chunk: int = CHUNK_FRAMES, skip_silence: bool = True) -> np.ndarray:
        """Log-mel `(1, 80, T)` -> waveform `(T * 256,)`; long inputs in chunks with context overlap.

        With `skip_silence`, runs of frames more than SILENCE_DB under the loudest frame are written as zeros
        instead of being vocoded, past a margin of the vocoder's receptive radius around every louder frame:
        the louder frames' samples are the same as from vocoding everything (they depend on no frame farther
        away), and what is skipped would have come out at about -75 dBFS."""
        mel = mel.to(torch.float32)
        if not skip_silence:
            return self._vocode_span(mel, chunk).float().cpu().numpy()
        wave = torch.zeros(mel.shape[-1] * HOP_LENGTH, device=mel.device)
        for start, stop in sounding_spans(energy(mel[0]), SILENCE_DB / NEPER_TO_DB, self.vocoder_context + 1):
            wave[start * HOP_LENGTH : stop * HOP_LENGTH] = self._vocode_span(mel[..., start:stop], chunk)
        return wave.float().cpu().numpy()

    def _vocode_span(self, mel: torch.Tensor, chunk: int) -> torch.Tensor:
        return map_chunks(mel.shape[-1], lambda s: self.vocoder(mel[..., s.lo : s.hi])[0], chunk,
                          self.vocoder_context, scale=HOP_LENGTH)


@dataclass(frozen=True)
class Target:
    """What G is asked for: emotion embedding `(1, E)`, raw strength `(1,)`, calibrated level `(1,)` and,
    with a prosody path, the source's pitch, the predicted prosody change `(1, 4)`, contour `(1, K)` and, with
    guidance, the neutral prototype `(1, E)` (unit norm, as blend_neutral hands G at strength 0)."""

    embedding: torch.Tensor
    strength: torch.Tensor
    level: torch.Tensor
    pitch: Pitch | None = None
    change: torch.Tensor | None = None
    contour: torch.Tensor | None = None
    neutral: torch.Tensor | None = None


def _source_prosody(mel: torch.Tensor, pitch: Pitch) -> Prosody:
    """The source's Prosody `(1, T)` from its mel `(1, 80, T)` and YIN pitch (frames matched)."""
    track = torch.from_numpy(pitch_track(pitch, mel.shape[-1])).to(mel.device).unsqueeze(0)
    return Prosody.of(mel.float(), track)


def _described(change: torch.Tensor, duration: float, contour: torch.Tensor | None) -> ProsodyChange:
    """The predictor's change `(1, 4)` and contour `(1, K)` in units people read."""
    values = change[0].tolist()
    end = 0.0 if contour is None else float(contour[0, -1]) * SEMITONES
    return ProsodyChange(pitch_semitones=values[0] * SEMITONES, pitch_range=math.exp(values[1]),
                         energy_db=values[2] * NEPER_TO_DB, duration=duration, pitch_end_semitones=end)


def _level(label: str, strength: float | None, reading: StrengthReading | None) -> float:
    """Target strength: 0 for neutral, else --strength, else the reference's, else full."""
    if strength is None:
        strength = reading.strength if reading is not None else 1.0
    return strength_of(label, strength)


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
