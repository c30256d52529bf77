"""The page's requests as plain functions over one loaded pipeline: check a request, queue its work.

    {"source": id, "reference": id | null, "emotion": str | null, "strength": 0..1 | null, "tempo": bool}
        --ConvertRequest.parse (the checks `ainn convert` makes on its options)--> WorkQueue --> views
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ainn_cli.audio import REFERENCE_MAX_SECONDS, SAMPLE_RATE, Audio
from ainn_cli.errors import UsageError
from ainn_cli.memory import release_memory
from ainn_cli.pipeline import Pipeline
from ainn_cli.serve.jobs import KEEP, Job, Outcome, WorkQueue
from ainn_cli.serve.uploads import Limits, Upload, UploadStore, decode
from ainn_cli.serve.views import Named, conversion_outcome, output_picture, picture, strength_outcome


@dataclass(frozen=True)
class ConvertRequest:
    """One conversion the page asks for: upload ids, and the options of `ainn convert`."""

    source: str
    reference: str | None = None
    emotion: str | None = None
    strength: float | None = None  # None: the reference's ("as the reference")
    tempo: bool = False

    @classmethod
    def parse(cls, data: object) -> ConvertRequest:
        """Check a JSON body's types and ranges and the options' combination; UsageError says what is wrong."""
        if not isinstance(data, dict):
            raise UsageError("the request must be a JSON object")
        source, reference, emotion = data.get("source"), data.get("reference"), data.get("emotion")
        strength, tempo = data.get("strength"), data.get("tempo", False)
        if not isinstance(source, str):
            raise UsageError("choose a source recording first")
        if reference is not None and not isinstance(reference, str) or emotion is not None and not isinstance(
                emotion, str):
            raise UsageError("reference and emotion must be strings")
        if strength is not None and (isinstance(strength, bool) or not isinstance(strength, int | float)
                                     or not math.isfinite(strength) or not 0.0 <= strength <= 1.0):
            raise UsageError(f"strength must be between 0 and 1, got {strength!r}")
        if not isinstance(tempo, bool):
            raise UsageError("tempo must be true or false")
        request = cls(source=source, reference=reference, emotion=emotion or None,
                      strength=None if strength is None else float(strength), tempo=tempo)
        request.check()
        return request

    def check(self) -> None:
        """The option rules of `ainn convert`, in its words."""
        if self.reference is None and self.emotion is None:
            raise UsageError("give a reference recording or pick an emotion")
        if self.reference is not None and self.emotion is not None:
            raise UsageError("give either a reference or an emotion, not both")
        if self.tempo and self.reference is None:
            raise UsageError("tempo follows a reference's speaking rate; an emotion prototype has none")


class Service:
    """One loaded pipeline, the uploads it was given and its queue: what the web app calls."""

    def __init__(self, pipe: Pipeline, spool: Path, limits: Limits | None = None,
                 queue: WorkQueue | None = None) -> None:
        self.pipe, self.spool, self.limits = pipe, spool, limits or Limits()
        self.uploads = UploadStore(self.limits)
        self.queue = queue or WorkQueue(after_each=release_memory)
        self._drawn: OrderedDict[str, dict[str, Any]] = OrderedDict()  # job id -> its output's picture
        self._lock = threading.Lock()

    def config(self) -> dict[str, Any]:
        """What the page needs to draw its controls: the model's emotions, tempo, the limits."""
        info = self.pipe.bundle.info
        return {"model": info.name, "device": str(self.pipe.device), "labels": list(self.pipe.labels),
                "emotions": sorted(info.prototypes), "tempo": self.pipe.can_follow_rate,
                "tempo_default": bool(self.pipe.prosody is not None and self.pipe.prosody.config.follow_rate),
                "max_bytes": self.limits.max_bytes, "max_seconds": self.limits.max_seconds,
                "reference_seconds": REFERENCE_MAX_SECONDS}

    def receive(self, path: Path, name: str) -> Upload:
        """Decode a spooled upload (the CLI's checks and messages) and draw its picture, then keep it; this runs
        in a thread as it arrives, so conversions that use it need not draw it again."""
        audio = decode(path, name, self.limits)
        return self.uploads.add(name, audio, picture(audio.samples))

    def submit_convert(self, request: ConvertRequest) -> Job:
        """Queue a conversion after the checks that need no model (as `ainn convert` does before loading)."""
        source = self.uploads.get(request.source)
        reference = self.uploads.get(request.reference) if request.reference is not None else None
        if request.emotion is not None and request.emotion not in self.pipe.bundle.info.prototypes:
            known = ", ".join(sorted(self.pipe.bundle.info.prototypes)) or "none"
            raise UsageError(f"unknown emotion {request.emotion!r} (this model knows: {known})")
        if request.tempo and not self.pipe.can_follow_rate:
            raise UsageError(f"tempo: {self.pipe.bundle.info.name} has no speaking-rate weight, so it cannot "
                             "follow the reference's tempo")
        src, ref = _named(source), None if reference is None else _as_reference(_named(reference))

        def work() -> Outcome:
            result = self.pipe.convert(src.audio, None if ref is None else ref.audio, strength=request.strength,
                                       emotion=request.emotion, tempo=request.tempo)
            return conversion_outcome(result, src, ref)

        return self.queue.submit("convert", work, source.audio.seconds)

    def output_picture(self, job_id: str) -> dict[str, Any]:
        """The mel and F0 picture of a finished conversion's output, drawn once (in the caller's thread) and kept
        for the last KEEP conversions."""
        outcome = self.queue.output(job_id)
        with self._lock:
            drawn = self._drawn.get(job_id)
        if drawn is None:
            drawn = output_picture(outcome.wav or b"")
            with self._lock:
                self._drawn[job_id] = drawn
                while len(self._drawn) > KEEP:
                    self._drawn.popitem(last=False)
        return drawn

    def submit_strength(self, upload_id: object) -> Job:
        """Queue a reading of an uploaded recording (the whole of it, as `ainn strength` reads a file)."""
        recording = _named(self.uploads.get(upload_id))

        def work() -> Outcome:
            return strength_outcome(self.pipe.strength(recording.audio), recording)

        return self.queue.submit("strength", work, recording.audio.seconds)

    def close(self) -> None:
        self.queue.close()


def _named(upload: Upload) -> Named:
    return Named(name=upload.name, audio=upload.audio, picture=upload.picture)


def _as_reference(recording: Named) -> Named:
    """Only the first REFERENCE_MAX_SECONDS of a reference count, as `ainn convert` reads one."""
    most = int(REFERENCE_MAX_SECONDS * SAMPLE_RATE)
    audio: Audio = recording.audio
    if len(audio.samples) <= most:
        return recording
    return Named(recording.name, dataclasses.replace(audio, samples=audio.samples[:most]))  # drawn anew
