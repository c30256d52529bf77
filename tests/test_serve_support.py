"""Helpers for the `ainn serve` tests (no tests here): a real uvicorn server on a free port in a thread, and
plain-HTTP and raw-socket clients for it."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ainn_cli.pipeline import Pipeline

WEB_MISSING = "the web extra is not installed (pip install -e '.[web]')"


def web_libraries() -> None:
    """Skip the calling test module when starlette or uvicorn is missing (the CLI-only install)."""
    pytest.importorskip("starlette", reason=WEB_MISSING)
    pytest.importorskip("uvicorn", reason=WEB_MISSING)


@dataclass
class Running:
    """A served app: its URL, its service (pipeline, uploads, queue) and the spool folder it may write in."""

    url: str
    port: int
    service: Any  # ainn_cli.serve.service.Service
    spool: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        return self.send(urllib.request.Request(self.url + path, headers=headers or {}))

    def post(self, path: str, data: bytes | None = None, body: object = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        sent = json.dumps(body).encode() if body is not None else data
        request = urllib.request.Request(self.url + path, data=sent if sent is not None else b"", method="POST",
                                         headers={**({"Content-Type": "application/json"} if body is not None
                                                     else {}), **(headers or {})})
        return self.send(request)

    def send(self, request: urllib.request.Request) -> tuple[int, Any]:
        """(status, decoded JSON or raw bytes)."""
        try:
            with urllib.request.urlopen(request, timeout=60) as reply:
                return reply.status, _decoded(reply.read(), reply.headers.get("content-type", ""))
        except urllib.error.HTTPError as err:
            return err.code, _decoded(err.read(), err.headers.get("content-type", ""))

    def upload(self, path: Path, name: str | None = None) -> dict[str, Any]:
        from urllib.parse import quote

        status, body = self.post(f"/api/upload?name={quote(name or path.name)}", data=path.read_bytes())
        assert status == 200, body
        return dict(body)

    def finish(self, job: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        """Long-poll a job until it is done or failed."""
        deadline = time.monotonic() + timeout
        while job["state"] in ("queued", "running"):
            assert time.monotonic() < deadline, f"job {job['id']} did not finish"
            status, job = self.get(f"/api/jobs/{job['id']}?wait=1")
            assert status == 200, job
        return job

    def raw(self) -> socket.socket:
        """A plain TCP connection to the server, for requests urllib will not make (huge, slow, unfinished)."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=30)


def _decoded(data: bytes, content_type: str) -> Any:
    return json.loads(data) if "json" in content_type else data


@contextlib.contextmanager
def serving(pipe: Pipeline, spool: Path, **limits: Any) -> Iterator[Running]:
    """Serve `pipe` the way `ainn serve` does (same app, host check and uvicorn), in a thread, until the block ends;
    `limits` override `uploads.Limits` fields."""
    import uvicorn

    from ainn_cli.serve.app import create_app
    from ainn_cli.serve.command import allowed_hosts, listen
    from ainn_cli.serve.service import Service
    from ainn_cli.serve.uploads import Limits

    spool.mkdir(parents=True, exist_ok=True)
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    service = Service(pipe, spool, Limits(**limits))
    config = uvicorn.Config(create_app(service, allowed_hosts("127.0.0.1", port)), log_level="warning",
                            access_log=False, lifespan="off", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    try:
        yield Running(url=f"http://127.0.0.1:{port}", port=port, service=service, spool=spool)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        service.close()
        sock.close()


def read_reply(sock: socket.socket, limit: int = 1 << 16) -> tuple[int, dict[str, Any]]:
    """Read an HTTP/1.1 reply from a raw socket: (status, JSON body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(
        b"content-length:")), 0)
    while len(body) < length and len(data) < limit:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return int(head.split()[1]), json.loads(body[:length]) if length else {}


def long_wav(path: Path, hours: float = 3.0, rate: int = 4000) -> Path:
    """An 8-bit mono wav whose header says `hours` long, written sparse (no disk used for its samples)."""
    size = int(hours * 3600 * rate)
    header = b"RIFF" + struct.pack("<I", 36 + size) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate, 1, 8)
    with open(path, "wb") as handle:
        handle.write(header + b"data" + struct.pack("<I", size))
        handle.truncate(44 + size)
    return path


def spooled(folder: Path) -> list[str]:
    """What is left in a spool folder (it must be empty between uploads)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
