"""The source side of a conversion, in bounded memory: content and voice from the source's mel, G's converted
mel, and HiFi-GAN's waveform, each chunk by chunk with context (`chunks.map_chunks`).

    source mel (1, 80, T) --[prosody reshape]--> Ec per chunk --> frames (1, D, T'), timbre (1, S)
        --> G per chunk (emotion e, strength, [prosody contour]) --> mel (1, 80, T') --> HiFi-GAN --> wave

`Renderer` is the half of `pipeline.Pipeline` that does this; the other half reads recordings and decides
what G is asked for (a `Target`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ainn_cli.audio import HOP_LENGTH
from ainn_cli.chunks import Span, map_chunks, sounding_spans
from ainn_cli.errors import DeviceError
from ainn_cli.models.predictor import ProsodyPredictor
from ainn_cli.pitch import Pitch, energy, pitch_track, prosody_inputs
from ainn_cli.prosody import (
    NEPER_TO_DB,
    Prosody,
    apply_change,
    level_plan,
    mean_f0,
    new_length,
    reshape_mel,
    retime,
    with_fine_structure,
)

CHUNK_FRAMES = 2048  # mel frames (~24 s) converted at once: memory stays bounded for any input length
MIN_CHUNK = 128  # smallest chunk tried after CUDA runs out of memory
SILENCE_DB = 60.0  # vocode: frames this far under the loudest one (and beyond a margin) are written as zeros
# mel frames (~1.1 s) of neighbour context per chunk side. It covers the convolutions' reach (a one-frame change
# moves R's features 32 frames and Ec -> G's output 46 frames away, tested); instance/group norm and the cue's
# max-normalisation see the whole chunk, so chunks are close to one pass (tested), not bit-equal to it
CONTEXT = 96


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
    lift_to_asked: bool = False


def _source_prosody(mel: torch.Tensor, pitch: Pitch) -> Prosody:
    """The source's Prosody `(1, T)` from its mel `(1, 80, T)` and YIN pitch (frames matched)."""
    track = torch.from_numpy(pitch_track(pitch, mel.shape[-1])).to(mel.device).unsqueeze(0)
    return Prosody.of(mel.float(), track)



class Renderer:
    """Converted mel and waveform from a source mel and a `Target`, chunk by chunk (the pipeline's modules)."""

    recognizer: nn.Module
    content: nn.Module
    generator: nn.Module
    prosody: ProsodyPredictor | None
    vocoder: nn.Module
    vocoder_context: int  # frames of context the vocoder's seams need (its receptive radius)
    chunk_frames: int
    device: torch.device
    dtype: torch.dtype

    def _convert_in_chunks(self, mel: torch.Tensor, target: Target) -> np.ndarray:
        """Source mel `(1, 80, T)` -> converted waveform, retrying with smaller chunks on a CUDA out-of-memory."""
        chunk = self.chunk_frames
        while True:
            try:
                out, lift = self.convert_mel(mel, target, chunk)
                wave = self.vocode(out, chunk)
                return wave if lift is None else wave * np.float32(torch.exp(lift[0].float()).item())
            except torch.OutOfMemoryError:
                if chunk <= MIN_CHUNK:
                    raise DeviceError(
                        f"out of memory on {self.device} even with {chunk}-frame chunks; use --device cpu"
                    ) from None
                chunk //= 2
                torch.cuda.empty_cache()

    def convert_mel(self, mel: torch.Tensor, target: Target, chunk: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Source mel `(1, 80, T)` -> converted mel `(1, 80, T')`, in chunks of `chunk` frames, and the ln gain `(1,)`
        its waveform is to be raised by after the vocoder (None: none; `level_lift`).

        Ec reads the source and G writes the output chunk by chunk, each chunk with CONTEXT frames of
        its neighbours on both sides, of which only the centre is kept:

            |<- CONTEXT ->|<------ chunk ------>|<- CONTEXT ->|
                          ^ kept                ^
        The voice (timbre) vector is taken once, from the first chunk, so it cannot drift between chunks.
        With a prosody path, the content is resampled in time (T' = T x the predicted duration ratio)
        and G renders the source's pitch and energy contour changed as predicted. Without a rendering G,
        the mel itself is reshaped first and, as the predictor's `match_energy` says, G's output is brought
        to the reshaped mel's speech energy; for a voice below the predictor's `low_voice_hz`, G's envelope is
        laid over the reshaped mel's harmonics. With `match_energy` "lower", the output is never louder than asked
        (the mel lowered) and never quieter than the source's level or the asked one, whichever is lower (the
        waveform raised).
        """
        rendered = bool(getattr(self.generator.config, "prosody_dim", 0))  # G renders a contour, else reshape the mel
        source, change, original = None, target.change, mel
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
            return self._generate(frames[..., s.lo : s.hi], target, timbre, part)

        out = map_chunks(frames.shape[-1], generate, chunk, CONTEXT)
        if source is not None and not rendered and self._low_voice(source):
            out = with_fine_structure(out.float(), mel.float()).to(out.dtype)  # mel is the reshaped input here
        mode = self.prosody.config.match_energy if self.prosody is not None else "off"
        if source is None or rendered or mode == "off":
            return out, None
        floor = None if target.lift_to_asked else energy(original.float())
        shift, lift = level_plan(energy(out.float()), energy(mel.float()), mode, floor)  # mel: the reshaped input
        return (out if shift is None else out + shift[:, None, None].to(out.dtype)), lift

    def _generate(self, frames: torch.Tensor, target: Target, timbre: torch.Tensor,
                  prosody: torch.Tensor | None) -> torch.Tensor:
        """G's mel `(1, 80, n)` for content frames `(1, D, n)` (and prosody channels `(1, 3, n)`); with guidance,
        pushed away from G's neutral rendering of the same frames."""
        out: torch.Tensor = self.generator(frames, target.embedding, target.strength, timbre, prosody)
        if target.neutral is not None and self.prosody is not None:  # guidance: away from G's neutral
            base = self.generator(frames, target.neutral, target.strength, timbre, prosody)
            out = base + self.prosody.config.guidance * (out - base)
        return out

    def _low_voice(self, source: Prosody) -> bool:
        """Is the source's voice below the predictor's `low_voice_hz` (where G's own harmonics drift)?"""
        limit = self.prosody.config.low_voice_hz if self.prosody is not None else 0.0
        return limit > 0 and float(mean_f0(source)[0]) < limit

    def _encode(self, mel: torch.Tensor, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Content frames `(1, D, T)` of a mel `(1, 80, T)` in chunks, and the first chunk's timbre `(1, S)`."""
        timbres: list[torch.Tensor] = []

        def encode(s: Span) -> torch.Tensor:
            frames, timbre = self._content(mel[..., s.lo : s.hi])
            timbres.append(timbre)
            return frames

        frames = map_chunks(mel.shape[-1], encode, chunk, CONTEXT)
        return frames, timbres[0]

    def _content(self, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ec's content frames `(1, D, n)` and timbre `(1, S)` of a mel `(1, 80, n)` (with R's cue of it)."""
        content = self.content(mel, self.recognizer(mel).cue)
        return content.frames, content.timbre

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
