"""`ainn serve`'s web app over real HTTP (uvicorn on a free port, a tiny bundle): the page, converting, the queue,
and hostile uploads, each of which must get a one-line message and leave no file behind."""

from __future__ import annotations

import concurrent.futures
import io
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from ainn_cli.audio import SAMPLE_RATE, read_audio
from ainn_cli.pipeline import Pipeline, load_pipeline
from tests.conftest import tone
from tests.test_serve_support import Running, long_wav, read_reply, serving, spooled, web_libraries

web_libraries()


@pytest.fixture(scope="module")
def pipe(tiny_bundle: Path) -> Pipeline:
    return load_pipeline(str(tiny_bundle), "cpu")


@pytest.fixture()
def server(pipe: Pipeline, tmp_path: Path) -> Any:
    with serving(pipe, tmp_path / "spool", max_bytes=4 * 2**20, max_in_flight=3) as running:
        yield running


def wav_file(path: Path, seconds: float = 1.0, f0: float = 140.0, seed: int = 0) -> Path:
    sf.write(path, tone(seconds, f0=f0, seed=seed), SAMPLE_RATE)
    return path


# ---- the page -------------------------------------------------------------------------------------------------

def test_the_page_and_its_files_come_from_this_server_only(server: Running) -> None:
    status, html = server.get("/")
    assert status == 200 and b"<title>ainn" in html
    for name in ("page.js", "draw.js", "page.css"):
        status, body = server.get(f"/static/{name}")
        assert status == 200 and len(body) > 1000
        assert not re.search(rb"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", body.replace(b"://", b"")), name
    assert not re.search(rb"(src|href)=\"(https?:)?//", html)
    assert server.get("/static/../../../etc/passwd")[0] == 404
    assert server.get("/static/index.html")[0] == 404
    with __import__("urllib.request").request.urlopen(server.url + "/") as reply:
        policy = reply.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy


def test_config_names_the_model_emotions_and_limits(server: Running, pipe: Pipeline) -> None:
    status, config = server.get("/api/config")
    assert status == 200 and config["emotions"] == sorted(pipe.bundle.info.prototypes)
    assert config["max_bytes"] == 4 * 2**20 and config["tempo"] is False


def test_another_host_or_origin_is_refused(server: Running, tmp_path: Path) -> None:
    status, body = server.get("/api/config", headers={"Host": "attacker.example:80"})
    assert status == 421 and "does not answer to the host" in body["error"]
    status, body = server.post("/api/upload?name=a.wav", data=wav_file(tmp_path / "a.wav").read_bytes(),
                               headers={"Origin": "http://attacker.example"})
    assert status == 403 and body["error"] == "requests from another site are refused"
    assert len(server.service.uploads) == 0


# ---- converting ---------------------------------------------------------------------------------------------

def test_a_conversion_through_the_server_is_the_library_s(server: Running, pipe: Pipeline, tmp_path: Path) -> None:
    source = server.upload(wav_file(tmp_path / "src.wav", 1.5, 120.0))
    reference = server.upload(wav_file(tmp_path / "ref.wav", 1.2, 230.0, seed=2))
    assert source["name"] == "src.wav" and source["seconds"] == 1.5
    status, job = server.post("/api/convert", body={"source": source["id"], "reference": reference["id"],
                                                    "strength": 0.6, "tempo": False})
    assert status == 200 and job["state"] in ("queued", "running", "done")
    done = server.finish(job)
    assert done["state"] == "done", done
    status, wav = server.get(f"/api/output/{done['id']}")
    got, rate = sf.read(io.BytesIO(wav), dtype="float32")
    expected = pipe.convert(read_audio(tmp_path / "src.wav"), read_audio(tmp_path / "ref.wav"), 0.6)
    assert rate == SAMPLE_RATE and len(got) == len(expected.wave) == done["result"]["output"]["samples"]
    np.testing.assert_allclose(got, np.clip(expected.wave, -0.999, 0.999), atol=2 / 32768)
    assert done["result"]["sentence"].startswith(f"src-ref.wav: {expected.emotion} at strength 0.6")
    assert set(done["result"]["pictures"]) == {"source", "reference"}
    status, drawn = server.get(f"/api/picture/{done['id']}")
    assert status == 200 and drawn["seconds"] == round(len(got) / SAMPLE_RATE, 3) and len(drawn["f0"]) > 0


def test_an_emotion_without_a_reference_and_a_strength_reading(server: Running, tmp_path: Path) -> None:
    source = server.upload(wav_file(tmp_path / "src.wav"))
    status, reply = server.post("/api/convert", body={"source": source["id"], "emotion": "bored"})
    assert status == 400 and reply["error"].startswith("unknown emotion 'bored' (this model knows: angry, happy")
    done = server.finish(server.post("/api/convert", body={"source": source["id"], "emotion": "sad"})[1])
    assert done["result"]["converted"]["emotion"] == "sad" and done["result"]["reading"] is None
    reading = server.finish(server.post("/api/strength", body={"upload": source["id"]})[1])
    assert reading["result"]["reading"]["label"] in reading["result"]["reading"]["probabilities"]
    assert reading["result"]["name"] == "src.wav"


@pytest.mark.parametrize(("body", "status", "message"), [
    ({"source": "nope", "emotion": "sad"}, 404, "no longer on the server"),
    ({"source": "x", "emotion": "sad", "strength": 7}, 400, "strength must be between 0 and 1"),
])
def test_bad_requests_get_one_line(server: Running, body: object, status: int, message: str) -> None:
    got, reply = server.post("/api/convert", body=body)
    assert got == status and message in reply["error"]


def test_unknown_jobs_and_broken_json(server: Running) -> None:
    assert server.get("/api/jobs/nope")[1]["error"].startswith("that job is no longer known")
    assert server.get("/api/output/nope")[0] == 404 and server.get("/api/picture/nope")[0] == 404
    status, reply = server.post("/api/convert", data=b"{not json", headers={"Content-Type": "application/json"})
    assert status == 400 and reply["error"] == "the request is not JSON"
    status, reply = server.post("/api/convert", data=b"[" + b"1," * 40000 + b"1]")
    assert status == 400 and reply["error"] == "the request is too large"


def test_conversions_queue_and_the_page_stays_responsive(server: Running, pipe: Pipeline, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    gate, started = threading.Event(), threading.Event()
    real = pipe.convert

    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        gate.wait(20)
        return real(*args, **kwargs)

    monkeypatch.setattr(pipe, "convert", slow)
    source = server.upload(wav_file(tmp_path / "src.wav"))
    first = server.post("/api/convert", body={"source": source["id"], "emotion": "angry"})[1]
    assert started.wait(10)
    second = server.post("/api/convert", body={"source": source["id"], "emotion": "sad"})[1]
    assert second["state"] == "queued" and second["position"] == 1
    begun = time.perf_counter()
    assert server.get("/")[0] == 200 and server.get("/api/config")[0] == 200  # a second tab loads meanwhile
    other = server.upload(wav_file(tmp_path / "other.wav", seed=5))  # and uploads
    assert other["id"] and time.perf_counter() - begun < 5
    begun = time.perf_counter()
    waited = server.get(f"/api/jobs/{first['id']}?wait=0.4")[1]  # a long poll returns after its wait...
    assert waited["state"] == "running" and 0.35 < time.perf_counter() - begun < 3
    gate.set()
    assert server.finish(first)["state"] == "done" and server.finish(second)["state"] == "done"


# ---- hostile uploads: a message, and no file left behind ------------------------------------------------------

def test_not_audio_gets_a_message_and_leaves_nothing(server: Running, tmp_path: Path) -> None:
    status, reply = server.post("/api/upload?name=notes.wav", data=b"%PDF-1.4 definitely not audio" * 50)
    assert status == 415 and reply["error"].startswith("notes.wav: not a readable audio file")
    status, reply = server.post("/api/upload?name=empty.wav", data=b"")
    assert status == 400 and reply["error"] == "empty.wav: the file is empty"
    assert spooled(server.spool) == [] and len(server.service.uploads) == 0


def test_a_declared_2_gb_upload_is_refused_before_its_body(server: Running) -> None:
    with server.raw() as sock:
        sock.sendall(f"POST /api/upload?name=big.wav HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     f"Content-Length: {2 * 2**30}\r\n\r\n".encode() + b"\0" * 65536)
        status, reply = read_reply(sock)
    assert status == 413 and reply["error"] == "big.wav: 2.15 GB is over the page's limit of 4.19 MB"
    assert spooled(server.spool) == []


def test_an_endless_stream_is_cut_at_the_cap(server: Running) -> None:
    """No Content-Length (chunked): the server reads up to its cap, answers 413 and stops reading."""
    sent = 0
    with server.raw() as sock:
        sock.sendall(f"POST /api/upload?name=stream.wav HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n".encode())
        chunk = b"10000\r\n" + b"\0" * 65536 + b"\r\n"
        try:
            while sent < 64 * 2**20:  # 64 MB if the server never stopped us
                sock.sendall(chunk)
                sent += 65536
        except OSError:  # the server answered and closed
            pass
        status, reply = read_reply(sock)
    assert status == 413 and "over the page's limit of 4.19 MB" in reply["error"]
    assert sent < 32 * 2**20  # cut near the cap (socket buffers aside), not read to the end
    assert spooled(server.spool) == []


def test_a_three_hour_wav_gets_a_message(pipe: Pipeline, tmp_path: Path) -> None:
    long = long_wav(tmp_path / "long.wav")  # 43 MB, under the default size cap: the duration refuses it
    with serving(pipe, tmp_path / "spool") as server:
        status, reply = server.post("/api/upload?name=long.wav", data=long.read_bytes())
        assert status == 413 and reply["error"] == "long.wav: 3 h 0 min long; the page takes up to 10 min"
        assert spooled(server.spool) == []


@pytest.mark.parametrize(("name", "shown"), [("../../x", "x"), ("..%2F..%2Fy.wav", "y.wav"), ("a%00b.wav", "ab.wav"),
                                             ("%2Fetc%2Fpasswd", "passwd"), ("..", "upload")])
def test_hostile_names_are_labels_never_paths(server: Running, tmp_path: Path, name: str, shown: str) -> None:
    audio = wav_file(tmp_path / "in.wav").read_bytes()
    status, reply = server.post(f"/api/upload?name={name}", data=audio)
    assert status == 200 and reply["name"] == shown
    status, bad = server.post(f"/api/upload?name={name}", data=b"not audio" * 100)
    assert status == 415 and bad["error"].startswith(f"{shown}: not a readable audio file")
    assert spooled(server.spool) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["in.wav", "spool"]  # nothing written beside or above
    assert not (tmp_path.parent / "x").exists() and not (tmp_path.parent.parent / "x").exists()


def test_many_uploads_at_once_are_refused_past_the_limit(server: Running, tmp_path: Path) -> None:
    stalled = [server.raw() for _ in range(3)]  # three uploads that never finish hold every slot
    for sock in stalled:
        sock.sendall(f"POST /api/upload?name=slow.wav HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
                     f"Content-Length: {2**20}\r\n\r\n".encode() + b"\0" * 1000)
    _until(lambda: len(spooled(server.spool)) == 3)
    status, reply = server.post("/api/upload?name=one-more.wav", data=wav_file(tmp_path / "a.wav").read_bytes())
    assert status == 429 and reply["error"].startswith("too many uploads at once (at most 3)")
    for sock in stalled:  # the clients go away: their partial files go too
        sock.close()
    _until(lambda: spooled(server.spool) == [])
    assert server.upload(tmp_path / "a.wav")["name"] == "a.wav"


def test_a_burst_of_uploads_gets_answers_and_leaves_nothing(server: Running, tmp_path: Path) -> None:
    data = wav_file(tmp_path / "a.wav", seconds=2.0).read_bytes()
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda k: server.post(f"/api/upload?name={k}.wav", data=data), range(24)))
    statuses = {status for status, _ in replies}
    assert statuses <= {200, 429} and 200 in statuses
    assert all("too many uploads at once" in reply["error"] for status, reply in replies if status == 429)
    assert spooled(server.spool) == []


def _until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
