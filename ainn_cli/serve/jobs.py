"""One conversion (or reading) at a time per process: a first-in first-out queue served by one worker thread.

    page --submit--> waiting (at most `max_waiting`) --worker thread--> running --> done | failed
    page --status(id)--> {state, position (1 = next), elapsed, estimate, result | error}

The event loop never runs a model, so the page, a second tab and uploads stay responsive while the worker
converts. Finished jobs are kept (the newest `keep`), so a page can fetch its result and its audio.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ainn_cli.errors import AinnError

MAX_WAITING = 16  # jobs waiting behind the running one; more are refused (the page says so)
KEEP = 32  # finished jobs kept for their pages (each holds a result and, for a conversion, its wav)
FIRST_GUESS = {"convert": 0.5, "strength": 0.02}  # seconds of compute per second of audio, before any is timed
SMOOTHING = 0.3  # weight of the newest timing in the running estimate

log = logging.getLogger("ainn.serve")


class QueueFull(AinnError):
    """The queue holds MAX_WAITING jobs already."""


class UnknownJob(AinnError):
    """No job with that id (never made, or finished long ago and dropped)."""


@dataclass(frozen=True)
class Outcome:
    """What a finished job hands the page: a JSON-ready summary and, for a conversion, the output as a wav."""

    summary: dict[str, Any]
    wav: bytes | None = None
    wav_name: str = "ainn.wav"


@dataclass
class Job:
    """One unit of work and its state; `audio_seconds` sizes its time estimate."""

    kind: str
    work: Callable[[], Outcome]
    audio_seconds: float
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    state: str = "queued"  # queued, running, done, failed
    submitted: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    outcome: Outcome | None = None
    error: str | None = None


class WorkQueue:
    """The jobs of one server. `after_each` runs on the worker after every job (e.g. to give memory back)."""

    def __init__(self, max_waiting: int = MAX_WAITING, keep: int = KEEP,
                 after_each: Callable[[], None] | None = None) -> None:
        self.max_waiting, self.keep, self.after_each = max_waiting, keep, after_each
        self._waiting: deque[Job] = deque()
        self._jobs: OrderedDict[str, Job] = OrderedDict()  # every job still known, oldest first
        self._rates = dict(FIRST_GUESS)
        self._cond = threading.Condition()
        self._stopped = False
        self._worker = threading.Thread(target=self._serve, name="ainn-serve-worker", daemon=True)
        self._worker.start()

    def submit(self, kind: str, work: Callable[[], Outcome], audio_seconds: float) -> Job:
        """Queue `work`; QueueFull when MAX_WAITING jobs wait already."""
        job = Job(kind=kind, work=work, audio_seconds=audio_seconds)
        with self._cond:
            if len(self._waiting) >= self.max_waiting:
                raise QueueFull(f"the queue is full ({self.max_waiting} waiting); try again when it has moved on")
            self._waiting.append(job)
            self._jobs[job.id] = job
            self._cond.notify()
        return job

    def status(self, job_id: str) -> dict[str, Any]:
        """The job's state for its page: position while queued, elapsed and estimate, then result or error."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                raise UnknownJob("that job is no longer known to the server (too old); convert again")
            position = self._waiting.index(job) + 1 if job.state == "queued" else 0
            estimate = self._rates.get(job.kind, 1.0) * job.audio_seconds
            end = job.finished or time.monotonic()
            status: dict[str, Any] = {
                "id": job.id, "kind": job.kind, "state": job.state, "position": position,
                "elapsed": round(end - job.started, 2) if job.started is not None else 0.0,
                "estimate": round(estimate, 2),
            }
        if job.outcome is not None:
            status["result"] = job.outcome.summary
        if job.error is not None:
            status["error"] = job.error
        return status

    def output(self, job_id: str) -> Outcome:
        """A finished conversion's outcome, which holds its output wav."""
        with self._cond:
            job = self._jobs.get(job_id)
        if job is None or job.outcome is None or job.outcome.wav is None:
            raise UnknownJob("no converted audio with that id (it may have been dropped); convert again")
        return job.outcome

    def close(self) -> None:
        """Stop taking jobs; the worker ends after the current one (it is a daemon: exit does not wait for it)."""
        with self._cond:
            self._stopped = True
            self._waiting.clear()
            self._cond.notify_all()

    def _serve(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                job = self._waiting.popleft()
                job.state, job.started = "running", time.monotonic()
            self._run(job)

    def _run(self, job: Job) -> None:
        """Run one job; an AinnError is the page's one-line message, anything else a logged bug."""
        outcome, error = None, None
        try:
            outcome = job.work()
        except AinnError as err:
            error = str(err)
        except Exception as err:  # a bug, not the user's doing: the page gets one line, the log the traceback
            log.exception("job %s failed", job.id)
            error = f"internal error ({type(err).__name__}: {str(err)[:200]}); see the server's log"
        self._publish(job, outcome, error)
        if self.after_each is not None:  # after the page has its answer: it need not wait for this
            self.after_each()

    def _publish(self, job: Job, outcome: Outcome | None, error: str | None) -> None:
        """Record a finished job's outcome or error, and its time in the running estimate."""
        with self._cond:
            job.finished = time.monotonic()
            took = job.finished - (job.started or 0.0)
            if outcome is not None and job.audio_seconds > 0:
                rate = took / job.audio_seconds
                self._rates[job.kind] = (1 - SMOOTHING) * self._rates.get(job.kind, rate) + SMOOTHING * rate
            job.outcome, job.error = outcome, error
            job.state = "done" if outcome is not None else "failed"
            job.work = _spent  # the closure holds the inputs; let them go
            self._forget_old()

    def _forget_old(self) -> None:
        """Drop the oldest finished jobs past `keep` (waiting and running ones are never dropped)."""
        finished = [key for key, job in self._jobs.items() if job.state in ("done", "failed")]
        for key in finished[: max(len(finished) - self.keep, 0)]:
            del self._jobs[key]


def _spent() -> Outcome:
    raise AinnError("this job has run already")
