"""`ainn serve` as people run it: a process that prints its address, serves the page, warns beyond loopback,
stops cleanly on SIGTERM or Ctrl-C and removes its temporary files; and its one-line refusals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_serve_support import read_reply, web_libraries

web_libraries()
pytestmark = pytest.mark.slow  # each starts `ainn serve` or a model: over 5 s


def ainn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ainn_cli", *args], cwd=REPO, text=True, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.fixture()
def private_tmp(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path]]:
    """An environment whose TMPDIR is a fresh folder, so that what the server leaves there can be seen."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    yield {**os.environ, "TMPDIR": str(folder)}, folder


def started(process: subprocess.Popen[str]) -> str:
    """The address `ainn serve` prints on its first line."""
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("ainn serve: http://"), (line, process.stderr.read() if process.stderr else "")
    return line.split()[2].rstrip("/")


def test_the_server_serves_then_sigterm_stops_it_and_removes_its_files(
        tiny_bundle: Path, private_tmp: tuple[dict[str, str], Path]) -> None:
    env, tmp = private_tmp
    process = ainn("serve", "--model", str(tiny_bundle), "--port", "0", "--device", "cpu", env=env)
    try:
        url = started(process)
        with urllib.request.urlopen(url + "/api/config", timeout=10) as reply:
            assert json.loads(reply.read())["model"] == "tiny"
        port = int(url.rsplit(":", 1)[1])
        pending = socket.create_connection(("127.0.0.1", port))  # an upload still arriving at the stop
        pending.sendall(f"POST /api/upload?name=a.wav HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                        "Content-Length: 100000\r\n\r\n".encode() + b"\0" * 5000)
        _until(lambda: any(tmp.rglob("upload-*")))
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
        pending.close()
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert err.strip().splitlines()[-1] == "note: stopped"
    assert list(tmp.iterdir()) == []  # the spool folder and the half-received upload are gone


def test_ctrl_c_stops_it_and_a_public_host_is_warned_about(
        tiny_bundle: Path, private_tmp: tuple[dict[str, str], Path]) -> None:
    env, tmp = private_tmp
    process = ainn("serve", "--model", str(tiny_bundle), "--host", "0.0.0.0", "--port", "0", "--device", "cpu",
                   env=env)
    try:
        url = started(process)
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "/", timeout=10) as reply:
            assert reply.status == 200
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "warning: listening on 0.0.0.0: anyone who can reach this machine can use the page" in err
    assert "Traceback" not in err and list(tmp.iterdir()) == []


def test_a_taken_port_is_one_line_before_the_model_loads() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        begun = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "ainn_cli", "serve", "--port", str(port)], cwd=REPO,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == (f"error: cannot listen on 127.0.0.1:{port} (Address already in use); "
                                   "choose another --port")
    assert time.perf_counter() - begun < 20  # no model was loaded (that alone takes longer on a busy machine)


def test_bad_options_and_a_missing_extra_are_one_line() -> None:
    done = subprocess.run([sys.executable, "-m", "ainn_cli", "serve", "--port", "70000"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.strip() == "error: --port must be between 0 and 65535, got 70000"
    code = ("import sys; sys.modules['uvicorn'] = None; from ainn_cli.cli import main; sys.argv = ['ainn', 'serve']; "
            "main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip() == ("error: ainn serve needs the web extra (uvicorn is missing): "
                                   "pip install -e '.[web]' in the ainn checkout")


def test_help_lists_serve_without_importing_the_web_libraries() -> None:
    code = ("import sys; from typer.testing import CliRunner; from ainn_cli.cli import app; "
            "out = CliRunner().invoke(app, ['--help']).output; assert 'serve' in out, out; "
            "out = CliRunner().invoke(app, ['serve', '--help']).output; assert '--host' in out and '--port' in out; "
            "print(sorted(m for m in ('starlette', 'uvicorn', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_address_and_hosts_a_loopback_server_answers() -> None:
    from ainn_cli.serve.command import address, allowed_hosts, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.1.2.3")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.com")
    assert address("0.0.0.0", 80) == "http://127.0.0.1:80/" and address("::1", 7860) == "http://[::1]:7860/"
    assert allowed_hosts("127.0.0.1", 7860) == frozenset({"127.0.0.1:7860", "localhost:7860", "[::1]:7860"})
    assert allowed_hosts("0.0.0.0", 7860) is None


def test_read_reply_parses_what_the_raw_tests_read() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b'HTTP/1.1 413 Request Entity Too Large\r\ncontent-length: 13\r\n\r\n{"error":"x"}')
        assert read_reply(right) == (413, {"error": "x"})


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
