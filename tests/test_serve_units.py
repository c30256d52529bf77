"""`ainn serve`'s parts that need no web library: names, caps, decoding, the upload store, the queue, requests,
the result views and the service on a tiny bundle (these run in the CLI-only install too)."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ainn_cli.audio import REFERENCE_MAX_SECONDS, SAMPLE_RATE, Audio, prepare, read_audio, write_wav
from ainn_cli.errors import AinnError, UsageError
from ainn_cli.pipeline import Pipeline, load_pipeline
from ainn_cli.serve.jobs import Outcome, QueueFull, UnknownJob, WorkQueue
from ainn_cli.serve.service import ConvertRequest, Service
from ainn_cli.serve.uploads import (
    Limits,
    UploadRefused,
    UploadStore,
    check_declared_size,
    decode,
    display_name,
    spool,
)
from ainn_cli.serve.views import PICTURE_COLUMNS, output_name, picture, wav_bytes
from tests.conftest import tone
from tests.test_serve_support import long_wav


@pytest.fixture(scope="module")
def pipe(tiny_bundle: Path) -> Pipeline:
    return load_pipeline(str(tiny_bundle), "cpu")


# ---- names and caps -----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "shown"), [
    ("../../x", "x"), ("..\\..\\win.ini", "win.ini"), ("a\x00b.wav", "ab.wav"), ("/etc/passwd", "passwd"),
    ("take [1].wav", "take [1].wav"), ("..", "upload"), ("", "upload"), (None, "upload"), ("\x00\x01", "upload"),
    ("new\nline.wav", "newline.wav"), ("x" * 300 + ".wav", "x" * 80),
])
def test_a_client_name_is_only_ever_a_label(raw: str | None, shown: str) -> None:
    assert display_name(raw) == shown


def test_a_declared_size_over_the_cap_is_refused_before_reading() -> None:
    with pytest.raises(UploadRefused, match=r"big\.wav: 2\.15 GB is over the page's limit of 210 MB") as caught:
        check_declared_size("big.wav", str(2 * 2**30), Limits())
    assert caught.value.status == 413
    check_declared_size("ok.wav", "1000", Limits())
    with pytest.raises(UploadRefused, match="bad Content-Length"):
        check_declared_size("x", "12abc", Limits())


async def _chunks(count: int, size: int, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for k in range(count):
        if fail_after is not None and k == fail_after:
            raise ConnectionResetError("client went away")
        yield b"\0" * size


def test_a_stream_over_the_cap_stops_there_and_leaves_no_file(tmp_path: Path) -> None:
    read = []

    async def counted() -> AsyncIterator[bytes]:
        async for chunk in _chunks(10_000, 65536):  # 655 MB if it were all read
            read.append(len(chunk))
            yield chunk

    with pytest.raises(UploadRefused, match="over the page's limit of 1.05 MB") as caught:
        asyncio.run(spool("big.wav", counted(), tmp_path, Limits(max_bytes=2**20)))
    assert caught.value.status == 413
    assert sum(read) <= 2**20 + 65536  # stopped at the cap, not at the end
    assert list(tmp_path.iterdir()) == []


def test_a_client_gone_mid_upload_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ConnectionResetError):
        asyncio.run(spool("x.wav", _chunks(10, 1000, fail_after=5), tmp_path, Limits()))
    with pytest.raises(UploadRefused, match="empty"):
        asyncio.run(spool("x.wav", _chunks(0, 0), tmp_path, Limits()))
    assert list(tmp_path.iterdir()) == []


def test_a_spooled_file_gets_a_server_name_whatever_the_client_said(tmp_path: Path) -> None:
    path = asyncio.run(spool("../../x", _chunks(3, 100), tmp_path, Limits()))
    assert path.parent == tmp_path and path.name.startswith("upload-") and path.stat().st_size == 300


# ---- decoding -------------------------------------------------------------------------------------------------

def test_not_audio_gets_the_cli_message_with_the_shown_name(tmp_path: Path) -> None:
    fake = tmp_path / "spool-123.part"
    fake.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(UploadRefused) as caught:
        decode(fake, "song.wav", Limits())
    assert caught.value.status == 415
    assert str(caught.value).startswith("song.wav: not a readable audio file")
    assert str(fake) not in str(caught.value) and "spool" not in str(caught.value)


def test_a_three_hour_wav_is_refused_from_its_header(tmp_path: Path) -> None:
    path = long_wav(tmp_path / "long.part")
    started = time.perf_counter()
    with pytest.raises(UploadRefused, match=r"long\.wav: 3 h 0 min long; the page takes up to 10 min") as caught:
        decode(path, "long.wav", Limits())
    assert caught.value.status == 413 and time.perf_counter() - started < 2  # nothing decoded


def test_silent_and_short_audio_get_the_cli_messages(tmp_path: Path) -> None:
    sf.write(tmp_path / "silent.part", np.zeros(SAMPLE_RATE, dtype=np.float32), SAMPLE_RATE, format="WAV")
    sf.write(tmp_path / "short.part", tone(0.1), SAMPLE_RATE, format="WAV")
    with pytest.raises(UploadRefused, match=r"^quiet\.wav: silent"):
        decode(tmp_path / "silent.part", "quiet.wav", Limits())
    with pytest.raises(UploadRefused, match=r"^blip\.wav: too short"):
        decode(tmp_path / "short.part", "blip.wav", Limits())


def test_decoded_audio_is_what_ainn_convert_reads(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.part", tone(1.0, rate=16000), 16000, format="WAV")
    audio = decode(tmp_path / "a.part", "a.wav", Limits())
    np.testing.assert_array_equal(audio.samples, read_audio(tmp_path / "a.part").samples)
    assert audio.path == "a.wav" and audio.source_rate == 16000


# ---- the upload store -----------------------------------------------------------------------------------------

def test_the_store_keeps_the_newest_uploads_within_its_bounds() -> None:
    audio = read_audio_of(tone(2.0))
    store = UploadStore(Limits(), most=3, most_seconds=5.0)
    first, second, third = (store.add(f"{k}.wav", audio) for k in range(3))
    assert len(store) == 2  # 6 s of audio is over 5 s: the oldest went
    with pytest.raises(UploadRefused, match="no longer on the server") as caught:
        store.get(first.id)
    assert caught.value.status == 404
    assert store.get(third.id).name == "2.wav" and store.get(second.id).audio is audio
    with pytest.raises(UploadRefused):
        store.get(["not", "a", "string"])


def test_the_store_refuses_many_uploads_at_once() -> None:
    store = UploadStore(Limits(max_in_flight=2))
    with store.admit(), store.admit():
        with pytest.raises(UploadRefused, match="too many uploads at once") as caught, store.admit():
            pass
        assert caught.value.status == 429
    with store.admit():  # slots are given back
        pass


def read_audio_of(samples: np.ndarray) -> Audio:
    return prepare(samples, SAMPLE_RATE, "mem")


# ---- the queue ------------------------------------------------------------------------------------------------

def test_jobs_run_one_at_a_time_in_turn_with_their_position() -> None:
    gate, running, after = threading.Event(), threading.Event(), []
    queue = WorkQueue(max_waiting=2, after_each=lambda: after.append(1))

    def blocked() -> Outcome:
        running.set()
        gate.wait(10)
        return Outcome({"n": 1})

    first = queue.submit("convert", blocked, 2.0)
    assert running.wait(5)
    second = queue.submit("convert", lambda: Outcome({"n": 2}), 1.0)
    third = queue.submit("strength", lambda: Outcome({"n": 3}), 1.0)
    assert queue.status(first.id)["state"] == "running"
    assert [queue.status(j.id)["position"] for j in (second, third)] == [1, 2]
    with pytest.raises(QueueFull, match="the queue is full"):
        queue.submit("convert", lambda: Outcome({}), 1.0)
    gate.set()
    _wait_done(queue, third.id)
    assert [queue.status(j.id).get("result") for j in (first, second, third)] == [{"n": 1}, {"n": 2}, {"n": 3}]
    deadline = time.monotonic() + 10
    while len(after) < 3 and time.monotonic() < deadline:  # it runs once the page has its answer
        time.sleep(0.01)
    assert len(after) == 3
    queue.close()


def test_a_failing_job_gives_one_line_and_the_queue_goes_on() -> None:
    queue = WorkQueue()

    def bad_audio() -> Outcome:
        raise UsageError("strength must be between 0 and 1, got 2")

    def bug() -> Outcome:
        raise ZeroDivisionError("division by zero")

    jobs = [queue.submit("convert", work, 1.0) for work in (bad_audio, bug, lambda: Outcome({"ok": True}))]
    _wait_done(queue, jobs[-1].id)
    states = [queue.status(j.id) for j in jobs]
    assert states[0]["state"] == "failed" and states[0]["error"] == "strength must be between 0 and 1, got 2"
    assert states[1]["state"] == "failed" and "internal error (ZeroDivisionError" in str(states[1]["error"])
    assert states[2]["result"] == {"ok": True}
    queue.close()


def test_old_finished_jobs_are_forgotten() -> None:
    queue = WorkQueue(keep=2)
    jobs = [queue.submit("convert", lambda: Outcome({}, wav=b"RIFF"), 1.0) for _ in range(4)]
    _wait_done(queue, jobs[-1].id)
    with pytest.raises(UnknownJob):
        queue.status(jobs[0].id)
    with pytest.raises(UnknownJob):
        queue.output(jobs[1].id)
    assert queue.output(jobs[3].id).wav == b"RIFF"
    queue.close()


def _wait_done(queue: WorkQueue, job_id: str) -> None:
    deadline = time.monotonic() + 30
    while queue.status(job_id)["state"] in ("queued", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.01)


# ---- requests and views ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "message"), [
    ([], "JSON object"), ({}, "choose a source"), ({"source": "a"}, "give a reference recording or pick an emotion"),
    ({"source": "a", "reference": "b", "emotion": "sad"}, "not both"),
    ({"source": "a", "emotion": "sad", "strength": 1.5}, "between 0 and 1"),
    ({"source": "a", "emotion": "sad", "strength": True}, "between 0 and 1"),
    ({"source": "a", "emotion": "sad", "strength": "nan"}, "between 0 and 1"),
    ({"source": "a", "emotion": "sad", "tempo": True}, "tempo follows a reference"),
    ({"source": "a", "emotion": "sad", "tempo": "yes"}, "tempo must be"),
    ({"source": "a", "emotion": 3}, "must be strings"),
])
def test_a_bad_request_says_what_is_wrong(body: object, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        ConvertRequest.parse(body)


def test_the_picture_holds_mel_and_the_pitch() -> None:
    shown = picture(tone(2.0, f0=140.0))
    columns = int(shown["columns"])
    assert columns == min(2 * SAMPLE_RATE // 256, PICTURE_COLUMNS)
    import base64

    assert len(base64.b64decode(str(shown["mel"]))) == 80 * columns
    f0 = np.array(shown["f0"])
    assert np.median(f0[f0 > 0]) == pytest.approx(140.0, rel=0.1)
    long = picture(tone(12.0))
    assert long["columns"] == PICTURE_COLUMNS and isinstance(long["f0"], list) and len(long["f0"]) == PICTURE_COLUMNS


def test_the_page_wav_is_the_file_ainn_convert_writes(tmp_path: Path) -> None:
    wave = tone(1.0) * 3  # peaks over full scale: limited the same way
    written = write_wav(tmp_path / "out.wav", wave)
    assert wav_bytes(wave) == written.read_bytes()
    assert output_name("neutral.flac", "angry take.wav", "angry") == "neutral-angry take.wav"
    assert output_name("x.wav", None, "sad") == "x-sad.wav"


# ---- the service on a tiny bundle -----------------------------------------------------------------------------

def test_the_service_converts_as_the_library_does(pipe: Pipeline, tmp_path: Path) -> None:
    service = Service(pipe, tmp_path)
    source = service.uploads.add("src.wav", read_audio_of(tone(1.5, f0=120.0)))
    reference = service.uploads.add("ref.wav", read_audio_of(tone(1.0, f0=220.0, seed=3)))
    job = service.submit_convert(ConvertRequest(source=source.id, reference=reference.id, strength=0.3))
    _wait_done(service.queue, job.id)
    status = service.queue.status(job.id)
    assert status["state"] == "done", status
    expected = pipe.convert(source.audio, reference.audio, 0.3)
    got, rate = sf.read(io.BytesIO(service.queue.output(job.id).wav or b""), dtype="float32")
    assert rate == SAMPLE_RATE and len(got) == len(expected.wave)
    np.testing.assert_allclose(got, np.clip(expected.wave, -0.999, 0.999), atol=2 / 32768)
    result = status["result"]
    assert isinstance(result, dict) and result["sentence"].startswith("src-ref.wav: ")
    assert expected.reference is not None and result["reading"]["label"] == expected.reference.label
    assert result["converted"]["strength"] == 0.3
    assert set(result["pictures"]) == {"source", "reference"}  # the output's is drawn when asked for:
    drawn = service.output_picture(job.id)
    f0 = np.array(drawn["f0"])
    assert drawn["seconds"] == pytest.approx(len(got) / SAMPLE_RATE, abs=1e-3) and f0.shape == (drawn["columns"],)
    assert service.output_picture(job.id) is drawn  # once
    service.close()


def test_the_service_refuses_what_the_model_cannot_do(pipe: Pipeline, tmp_path: Path) -> None:
    service = Service(pipe, tmp_path)
    source = service.uploads.add("src.wav", read_audio_of(tone(1.0)))
    with pytest.raises(UsageError, match="unknown emotion 'bored'"):
        service.submit_convert(ConvertRequest(source=source.id, emotion="bored"))
    with pytest.raises(UsageError, match="cannot follow the reference's tempo"):
        service.submit_convert(ConvertRequest(source=source.id, reference=source.id, tempo=True))
    with pytest.raises(AinnError, match="no longer on the server"):
        service.submit_convert(ConvertRequest(source="gone", emotion="sad"))
    assert service.config()["tempo"] is False and service.config()["emotions"] == sorted(pipe.bundle.info.prototypes)
    service.close()


def test_only_the_start_of_a_long_reference_counts(pipe: Pipeline, tmp_path: Path) -> None:
    service = Service(pipe, tmp_path)
    source = service.uploads.add("s.wav", read_audio_of(tone(1.0)))
    long_reference = service.uploads.add("r.wav", read_audio_of(tone(REFERENCE_MAX_SECONDS + 5)))
    job = service.submit_convert(ConvertRequest(source=source.id, reference=long_reference.id))
    _wait_done(service.queue, job.id)
    reading = service.queue.status(job.id)["result"]["reading"]
    assert reading["seconds"] == pytest.approx(REFERENCE_MAX_SECONDS, abs=0.01)
    service.close()


def test_an_upload_is_drawn_once_when_it_arrives(pipe: Pipeline, tmp_path: Path) -> None:
    service = Service(pipe, tmp_path)
    sf.write(tmp_path / "spooled.part", tone(1.0), SAMPLE_RATE, format="WAV")
    upload = service.receive(tmp_path / "spooled.part", "voice.wav")
    assert upload.name == "voice.wav" and upload.picture is not None
    job = service.submit_convert(ConvertRequest(source=upload.id, emotion="sad"))
    _wait_done(service.queue, job.id)
    assert service.queue.status(job.id)["result"]["pictures"]["source"] is upload.picture  # not drawn again
    (tmp_path / "bad.part").write_bytes(b"junk" * 100)
    with pytest.raises(UploadRefused, match=r"^bad\.wav: not a readable audio file"):
        service.receive(tmp_path / "bad.part", "bad.wav")
    service.close()
