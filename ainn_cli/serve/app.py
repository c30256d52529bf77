"""The web app: a Starlette app over `Service`, serving the page (package data) and a small JSON API.

    GET  /                      the page          GET  /static/{page.js,draw.js,page.css}
    GET  /api/config            emotions, tempo, limits
    POST /api/upload?name=N     raw body (one file) -> {id, name, seconds, warnings}
    POST /api/convert           {source, reference | emotion, strength, tempo} -> {id} of a queued job
    POST /api/strength          {upload} -> {id}
    GET  /api/jobs/{id}?wait=S  {state, position, elapsed, estimate, result | error}, once it changes (or S s)
    GET  /api/output/{id}       the converted audio (audio/wav)
    GET  /api/picture/{id}      the mel and F0 picture of the converted audio, drawn when first asked for

Every error is `{"error": one line}` with a status. Requests must name this server as their Host (a page on
another site cannot reach it through DNS rebinding) and come from its own origin; the page may load nothing
from elsewhere (Content-Security-Policy).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import quote

import anyio
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ainn_cli.errors import AinnError, UsageError
from ainn_cli.serve.jobs import QueueFull, UnknownJob
from ainn_cli.serve.service import ConvertRequest, Service
from ainn_cli.serve.uploads import UploadRefused, check_declared_size, discard, display_name, spool

PAGE_FILES = {"page.js": "text/javascript; charset=utf-8", "draw.js": "text/javascript; charset=utf-8",
              "page.css": "text/css; charset=utf-8", "index.html": "text/html; charset=utf-8"}  # all that is served
JSON_MAX_BYTES = 64 * 1024  # a request's JSON body
MAX_WAIT = 2.0  # seconds a status request may wait for a change (`?wait=`)
CHECK_EVERY = 0.02  # seconds between looks at a job during such a wait
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self' blob:; img-src 'self' data: blob:; "
                               "connect-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store",
}
Endpoint = Callable[[Request], Awaitable[Response]]


def page_files() -> dict[str, bytes]:
    """The page's files from the package (`ainn_cli/serve/page/`)."""
    folder = resources.files("ainn_cli.serve") / "page"
    return {name: (folder / name).read_bytes() for name in PAGE_FILES}


def create_app(service: Service, allowed_hosts: frozenset[str] | None = None) -> Starlette:
    """The app. `allowed_hosts`: the Host values accepted (None: any, for a server bound to all interfaces)."""
    page, api = _Page(page_files()), _Api(service)
    routes: list[tuple[str, Endpoint, str]] = [
        ("/", page.index, "GET"), ("/static/{name}", page.static, "GET"), ("/api/config", api.config, "GET"),
        ("/api/upload", guarded(api.upload), "POST"), ("/api/convert", guarded(api.convert), "POST"),
        ("/api/strength", guarded(api.strength), "POST"), ("/api/jobs/{job_id}", guarded(api.status), "GET"),
        ("/api/output/{job_id}", guarded(api.output), "GET"),
        ("/api/picture/{job_id}", guarded(api.output_picture), "GET"),
    ]
    app = Starlette(routes=[Route(path, _with_manners(endpoint, allowed_hosts), methods=[method])
                            for path, endpoint, method in routes])
    app.state.service = service
    return app


class _Page:
    """The page's three files, and nothing else."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    async def index(self, request: Request) -> Response:
        return Response(self.files["index.html"], media_type=PAGE_FILES["index.html"])

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.files or name == "index.html":
            return _error(AinnError("no such file"), 404)
        return Response(self.files[name], media_type=PAGE_FILES[name])


class _Api:
    """The JSON API over a Service: each request checked, its work queued or answered at once."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def config(self, request: Request) -> Response:
        return JSONResponse(self.service.config())

    async def upload(self, request: Request) -> Response:
        """Stream one file to the spool under the caps, decode and draw it in a thread, forget the file."""
        service = self.service
        name = display_name(request.query_params.get("name"))
        check_declared_size(name, request.headers.get("content-length"), service.limits)
        with service.uploads.admit():
            path = await spool(name, request.stream(), service.spool, service.limits)
            try:
                upload = await anyio.to_thread.run_sync(service.receive, path, name)
            finally:
                discard(path)
        return JSONResponse(upload.describe())

    async def convert(self, request: Request) -> Response:
        job = self.service.submit_convert(ConvertRequest.parse(await _json(request)))
        return JSONResponse(self.service.queue.status(job.id))

    async def strength(self, request: Request) -> Response:
        data = await _json(request)
        job = self.service.submit_strength(data.get("upload") if isinstance(data, dict) else None)
        return JSONResponse(self.service.queue.status(job.id))

    async def status(self, request: Request) -> Response:
        job_id, wait = request.path_params["job_id"], _seconds(request.query_params.get("wait"))
        return JSONResponse(await _changed(lambda: self.service.queue.status(job_id), wait))

    async def output(self, request: Request) -> Response:
        outcome = self.service.queue.output(request.path_params["job_id"])
        return Response(outcome.wav, media_type="audio/wav",
                        headers={"Content-Disposition": f"inline; filename*=UTF-8''{quote(outcome.wav_name)}"})

    async def output_picture(self, request: Request) -> Response:
        job_id = request.path_params["job_id"]
        return JSONResponse(await anyio.to_thread.run_sync(self.service.output_picture, job_id))


def guarded(endpoint: Endpoint) -> Endpoint:
    """Turn an AinnError into `{"error": ...}` with its status; a client gone mid-upload into nothing at all."""

    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except AinnError as err:
            response = _error(err, _status_of(err))
            if isinstance(err, UploadRefused):  # the rest of the body is not read: close rather than drain it
                response.headers["Connection"] = "close"
            return response
        except ClientDisconnect:
            return Response(status_code=499)

    return run


def _status_of(err: AinnError) -> int:
    if isinstance(err, UploadRefused):
        return err.status
    if isinstance(err, UnknownJob):
        return 404
    if isinstance(err, QueueFull):
        return 503
    return 400


def _with_manners(endpoint: Endpoint, allowed_hosts: frozenset[str] | None) -> Endpoint:
    """Refuse a foreign Host (DNS rebinding) or a request from another origin; add the security headers."""

    async def run(request: Request) -> Response:
        host = request.headers.get("host", "")
        origin = request.headers.get("origin")
        if allowed_hosts is not None and host.lower() not in allowed_hosts:
            response: Response = _error(UsageError(f"this server does not answer to the host {host[:80]!r}"), 421)
        elif request.method != "GET" and origin is not None and origin != f"{request.url.scheme}://{host}":
            response = _error(UsageError("requests from another site are refused"), 403)
        else:
            response = await endpoint(request)
        response.headers.update(SECURITY_HEADERS)
        return response

    return run


def _seconds(text: str | None) -> float:
    """`?wait=` in seconds, within 0..MAX_WAIT."""
    try:
        return min(max(float(text or 0), 0.0), MAX_WAIT)
    except ValueError:
        return 0.0


async def _changed(status: Callable[[], dict[str, Any]], wait: float) -> dict[str, Any]:
    """A job's status once its state or queue position changes, or after `wait` seconds (a long poll: the page
    hears of the end of a job within CHECK_EVERY, not at its next poll)."""
    first = status()
    deadline = time.monotonic() + wait
    current = first
    while (current["state"], current["position"]) == (first["state"], first["position"]) and (
            current["state"] in ("queued", "running") and time.monotonic() < deadline):
        await anyio.sleep(CHECK_EVERY)
        current = status()
    return current


async def _json(request: Request) -> object:
    """The request's JSON body, read up to JSON_MAX_BYTES."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > JSON_MAX_BYTES:
            raise UsageError("the request is too large")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UsageError("the request is not JSON") from None


def _error(err: AinnError, status: int) -> JSONResponse:
    return JSONResponse({"error": str(err)}, status_code=status)
