"""The public Python API: load a bundle once, then convert and read strength.

    src wave --mel--> R (cue) --> Ec --> content c, timbre s ---------\
    ref wave --mel--> R (class, strength, cue) --> Ee --> e ----------> G --> mel --> HiFi-GAN --> wave

With a prosody predictor, e, the strength and (`rate_weight`) the two waves' speaking rates (`rate.py`) give a
prosody change that reshapes the source's mel before Ec (`prosody.reshape_mel`). The chunked rendering (Ec, G,
HiFi-GAN) is `render.Renderer`; the result dataclasses are in `results.py` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from ainn_cli.audio import SAMPLE_RATE, Audio, prepare
from ainn_cli.bundle import Bundle, load_bundle
from ainn_cli.chunks import map_chunks
from ainn_cli.controls import Controls
from ainn_cli.device import resolve_device
from ainn_cli.emotions import NEUTRAL, strength_of
from ainn_cli.errors import BundleError, UsageError
from ainn_cli.hub import resolve_bundle
from ainn_cli.measure import measure
from ainn_cli.mel import log_mel_in_chunks
from ainn_cli.models.predictor import ProsodyPredictor
from ainn_cli.models.reader import Reader
from ainn_cli.models.recognizer import Recognition, Recognizer
from ainn_cli.models.vocoder import HifiGan, receptive_radius
from ainn_cli.pitch import Pitch, yin
from ainn_cli.prosody import NEPER_TO_DB, SEMITONES, apply_controls, new_length
from ainn_cli.rate import rate_ratio, speaking_rate
from ainn_cli.reading import read_emotion
from ainn_cli.render import CHUNK_FRAMES, CONTEXT, MIN_CHUNK, SILENCE_DB, Renderer, Target
from ainn_cli.results import ConversionResult, ProsodyChange, StrengthReading

__all__ = [  # the public API; the results and the renderer's constants live in results.py and render.py
    "CHUNK_FRAMES", "CONTEXT", "MIN_CHUNK", "READ_CHUNK_FRAMES", "SILENCE_DB", "ConversionResult", "Pipeline",
    "ProsodyChange", "StrengthReading", "Target", "load_pipeline",
]

REMEMBERED_RATES = 8  # references whose speaking rate a pipeline keeps
READ_CHUNK_FRAMES = 4 * CHUNK_FRAMES  # mel frames (~95 s) R reads at once; a longer recording is read in chunks
SELF_TEST_SECONDS = 0.3  # of noise run through every path when a bundle loads (inputs need 0.25 s)


class Pipeline(Renderer):
    """A loaded bundle on one device. Inputs are `Audio` or `(N,)` float arrays at SAMPLE_RATE. Reading recordings
    and deciding what G is asked for live here; rendering the converted waveform in chunks is `Renderer`'s."""

    def __init__(self, bundle: Bundle, device: torch.device, half: bool = False) -> None:
        self.bundle, self.device = bundle, device
        self.dtype = torch.float16 if half and device.type == "cuda" else torch.float32
        for name, module in bundle.modules.items():
            module.to(device, torch.float32 if name in ("vocoder", "reader") else self.dtype)
        m = bundle.modules
        reader = m.get("reader")
        # where present, the reader reads recordings for `strength`; a conversion is steered by R's reading of the
        # reference, which converted better on the validation speakers of two corpora (docs/cross_corpus.md)
        self.reader = reader if isinstance(reader, Reader) else None
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
        if self.reader is not None and tuple(self.reader.config.labels) != tuple(self.labels):
            raise BundleError(f"{where}: the reader's labels {list(self.reader.config.labels)} are not the bundle's "
                              f"{list(self.labels)}")
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
        """Read emotion category, strength and cue M of a recording (with the reader where the bundle has one)."""
        if self.reader is not None:
            return read_emotion(self.reader, _samples(wave))
        return self._read(_samples(wave))[2]

    @torch.inference_mode()
    def convert(
        self, source: Audio | np.ndarray, reference: Audio | np.ndarray | None = None,
        strength: float | None = None, emotion: str | None = None, tempo: bool | None = None,
        controls: Controls | None = None,
    ) -> ConversionResult:
        """Say `source` with the emotion of `reference` (or of a prototype `emotion`) at `strength`; with `tempo`,
        also follow the reference's speaking rate (None: as the model's `follow_rate` says). `controls` set or
        offset the prosody change by hand, or keep the source's length (`controls.py`)."""
        start = time.perf_counter()
        if strength is not None and not 0.0 <= strength <= 1.0:
            raise UsageError(f"strength must be between 0 and 1, got {strength}")
        samples = _samples(source)
        mel = self._mel(samples)
        reading, label, level, target = self._ask(samples, mel, reference, strength, emotion, tempo)
        target = self._controlled(target, controls or Controls())
        change = target.change
        wave = self._convert_in_chunks(mel, target)
        length = len(samples) if change is None else round(len(samples) * new_length(mel.shape[-1], change)
                                                           / max(mel.shape[-1], 1))
        wave = _fit(wave, length)
        return ConversionResult(
            wave=wave, reference=reading, emotion=label, strength=level,
            seconds=len(samples) / SAMPLE_RATE, elapsed=time.perf_counter() - start,
            prosody=None if change is None else _described(change, length / max(len(samples), 1), target.contour),
            measured=measure(samples, wave, target.pitch), heard=self.hear(reference),
        )

    @torch.inference_mode()
    def hear(self, reference: Audio | np.ndarray | None) -> StrengthReading | None:
        """The reference as the reader hears it (`strength`'s reading), None without a reference or a reader."""
        return None if reference is None or self.reader is None else read_emotion(self.reader, _samples(reference))

    def _ask(
        self, samples: np.ndarray, mel: torch.Tensor, reference: Audio | np.ndarray | None, strength: float | None,
        emotion: str | None, tempo: bool | None, pitch: Pitch | None = None,
    ) -> tuple[StrengthReading | None, str, float, Target]:
        """What G is asked for a source `(N,)` with mel `(1, 80, T)`: the reference's reading, the target label and
        level, and the Target (with a prosody path, the source's pitch and the predicted change and contour). A
        stream gives the source's first `rate.MAX_SECONDS` and their mel (all the speaking rate reads) and its
        `pitch`, measured as it went."""
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
        return reading, label, level, Target(embedding, strength_in, level_in, pitch or yin(samples), change,
                                             None if contour is None else contour.float(), neutral)

    def _controlled(self, target: Target, controls: Controls) -> Target:
        """The Target with the hand controls applied to its prosody change (a model without a prosody path has
        the source's length already, but nothing to set pitch, level or rate with)."""
        if controls.prosody and target.change is None:
            raise UsageError(f"{self.bundle.path}: --pitch, --level and --rate need a model with a prosody path "
                             "(the default has one)")
        if target.change is None:
            return target
        return dataclasses.replace(target, change=apply_controls(target.change, controls),
                                   lift_to_asked=controls.level is not None)

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
