"""`ainn serve`: listen, load the model once, serve the page until Ctrl-C or SIGTERM, then remove what it made.

    check options --> import the web libraries (the `web` extra) --> bind host:port (a taken port fails here,
    before the model loads) --> load_pipeline --> print the address --> uvicorn on that socket --> stop:
    the queue closes and the spool folder (uploads being received) is removed
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from ainn_cli.console import say
from ainn_cli.errors import AinnError, UsageError

if TYPE_CHECKING:
    import uvicorn

    from ainn_cli.pipeline import Pipeline
    from ainn_cli.serve.service import Service

WEB_HINT = "pip install -e '.[web]' in the ainn checkout"  # ainn is not on PyPI
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
GRACE_SECONDS = 2  # open requests may finish this long after a stop
IDEEP_CACHE = 8  # convolution shapes whose parameters torch's ideep keeps (LRU_CACHE_CAPACITY; its default 1024)


@dataclass(frozen=True)
class ServeOptions:
    """`ainn serve`: the model and device, and where to listen (127.0.0.1 unless asked; port 0: any free one)."""

    model: str | None = None
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860


class _Stop(Exception):
    """Raised by the SIGTERM handler once the server has shut down gracefully."""


def run_serve(options: ServeOptions, announce: Callable[[str], None] | None = None) -> None:
    """Serve the page until stopped; `announce` gets the address line (default: stdout, flushed at once)."""
    if not 0 <= options.port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535, got {options.port}")
    _web_libraries()
    sock = listen(options.host, options.port)
    if not is_loopback(options.host):
        say(f"listening on {options.host}: anyone who can reach this machine can use the page and this CPU",
            "warning")
    spool: Path | None = None
    try:
        _bound_caches()
        from ainn_cli.pipeline import load_pipeline

        pipe = load_pipeline(options.model, options.device)
        spool = Path(tempfile.mkdtemp(prefix="ainn-serve-"))
        port = sock.getsockname()[1]
        service, server = _server(pipe, spool, options.host, port)
        (announce or _print_now)(f"ainn serve: {address(options.host, port)}  (model {pipe.bundle.info.name} on "
                                 f"{pipe.device}; Ctrl-C stops)")
        _run_until_stopped(server, sock, service)
    finally:
        sock.close()
        if spool is not None:
            shutil.rmtree(spool, ignore_errors=True)


def _bound_caches() -> None:
    """Before torch loads: a server meets a new input length with nearly every upload, and each new length
    grew it for good, by about 30 MB through oneDNN's kernel cache (`memory.py`) and 2 MB more through
    ideep's cache of convolution parameters (1024 shapes, unless LRU_CACHE_CAPACITY says otherwise; measured
    with the default model). With both bounded its memory stays flat (`benchmarks/serve_cost.py`)."""
    from ainn_cli.memory import bound_native_caches

    os.environ.setdefault("LRU_CACHE_CAPACITY", str(IDEEP_CACHE))
    bound_native_caches()


def _print_now(line: str) -> None:
    print(line, flush=True)  # a pipe (a test, a supervisor) must see the address now, not at exit


def _web_libraries() -> None:
    """A UsageError naming the extra to install when the web libraries are missing."""
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as err:
        raise UsageError(f"ainn serve needs the web extra ({err.name} is missing): {WEB_HINT}") from None


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 for an address with ':'); AinnError when that cannot be."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    try:
        sock = socket.create_server((host.strip("[]"), port), family=family, backlog=128)
    except OSError as err:
        hint = "; choose another --port" if err.errno == errno.EADDRINUSE else ""
        reason = os.strerror(err.errno) if err.errno else str(err)  # create_server's strerror names the address again
        raise AinnError(f"cannot listen on {host}:{port} ({reason}){hint}") from None
    return sock


def is_loopback(host: str) -> bool:
    """Only this machine can reach `host` (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def address(host: str, port: int) -> str:
    """The URL to open: a wildcard address is shown as 127.0.0.1 (it serves this machine too)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]", "") else host
    return f"http://[{shown.strip('[]')}]:{port}/" if ":" in shown.strip("[]") else f"http://{shown}:{port}/"


def allowed_hosts(host: str, port: int) -> frozenset[str] | None:
    """Host header values a loopback server answers (None: any, when bound beyond this machine)."""
    if not is_loopback(host):
        return None
    names = {*LOOPBACK_NAMES, host.lower() if ":" not in host.strip("[]") else f"[{host.strip('[]')}]"}
    return frozenset({f"{name}:{port}" for name in names} | (names if port == 80 else set()))


def _server(pipe: Pipeline, spool: Path, host: str, port: int) -> tuple[Service, uvicorn.Server]:
    """The service, its app and a quiet uvicorn server for it."""
    import uvicorn

    from ainn_cli.serve.app import create_app
    from ainn_cli.serve.service import Service

    service = Service(pipe, spool)
    app = create_app(service, allowed_hosts(host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=GRACE_SECONDS, server_header=False)
    return service, uvicorn.Server(config)


def _run_until_stopped(server: uvicorn.Server, sock: socket.socket, service: Service) -> None:
    """Run uvicorn on `sock`. It shuts down gracefully on Ctrl-C or SIGTERM and then raises the signal again:
    SIGINT as KeyboardInterrupt, SIGTERM through our handler; both end here as a clean stop."""
    try:
        with _sigterm_raises():
            server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stop):
        pass
    finally:
        service.close()
    say("stopped", "note")


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While serving, SIGTERM (once uvicorn has handled it) raises _Stop instead of killing the process, so
    `finally` blocks run and the spool folder is removed."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
