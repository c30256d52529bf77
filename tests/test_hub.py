"""Hub downloads (ainn_cli.hub) against a fake Hugging Face Hub that the test serves on 127.0.0.1.

The fake implements what huggingface_hub 2.4 asks of the Hub for `hf_hub_download` and
`snapshot_download(allow_patterns=...)`, with the Hub's headers:

  GET  /api/models/{owner}/{name}/revision/{rev}    repo info; its `sha` resolves a branch or tag
  GET  /api/models/{owner}/{name}/tree/{commit}     file listing (?recursive=True): path, size, git oid, lfs
  HEAD /{owner}/{name}/resolve/{rev}/{path}         X-Repo-Commit, ETag, Content-Length (+ X-Linked-Etag and
                                                    X-Linked-Size for LFS files)
  GET  /{owner}/{name}/resolve/{rev}/{path}         the bytes, same headers

Errors carry the Hub's X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound), which
huggingface_hub turns into its exception classes. Xet is never advertised (no X-Xet-* headers, no
xetHash), so downloads take the plain HTTP path. Everything is written under tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from huggingface_hub import _snapshot_download, constants, file_download, hf_api
from huggingface_hub.utils._http import close_session
from typer.testing import CliRunner

from ainn_cli.bundle import MANIFEST, load_bundle
from ainn_cli.cli import app
from ainn_cli.errors import BundleError
from ainn_cli.hub import resolve_bundle
from tests.conftest import make_tiny_bundle

SHA_NEW = "1" * 40  # owner/name: main
SHA_OLD = "2" * 40  # owner/name: tag v1
SHA_BAD = "3" * 40  # owner/corrupt: main
SHA_DOC = "4" * 40  # owner/not-a-bundle: main
TAMPERED = "vocoder/model.safetensors"
# Files in the repo that are not part of the bundle: they must never be downloaded.
EXTRAS = {
    "README.md": b"---\nlicense: mit\n---\n# tiny\n",
    ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n",
    "training/optimizer.safetensors": b"\0" * 4096,
}


# --------------------------------------------------------------------------------------------- fake Hub


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]]  # commit sha -> {path in repo: bytes}
    refs: dict[str, str]  # branch or tag -> commit sha

    def commit(self, rev: str) -> str | None:
        return self.refs.get(rev) or (rev if rev in self.commits else None)


_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/(?P<kind>revision|tree)/(?P<rev>[^/]+))?/?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<file>.+)$")


def _git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(path: str) -> bool:
    return path.endswith(".safetensors")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64  # snapshot_download opens 8 connections at once; the default backlog of 5 drops SYNs


class FakeHub:
    """A threaded HTTP server on a free port of 127.0.0.1 that logs every request it gets."""

    def __init__(self, repos: dict[str, Repo]) -> None:
        self.repos = repos
        self.log: list[tuple[str, str]] = []  # (method, decoded path)
        self.unexpected: list[str] = []  # requests the fake does not implement
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"hub": self})
        self.server = _Server(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.running = False
            self.server.shutdown()
            self.server.server_close()
            self.thread.join(timeout=5)

    def record(self, method: str, path: str) -> None:
        with self.lock:
            self.log.append((method, path))

    def clear(self) -> None:
        with self.lock:
            self.log.clear()

    def downloads(self, repo_id: str = "owner/name") -> list[str]:
        """Paths in the repo whose contents were fetched (GET on /resolve/)."""
        prefix = f"/{repo_id}/resolve/"
        return sorted(p[len(prefix):].split("/", 1)[1] for m, p in self.log if m == "GET" and p.startswith(prefix))


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        url = urlsplit(self.path)
        self.hub.record(self.command, unquote(url.path))
        api, resolve = _API.match(url.path), _RESOLVE.match(url.path)
        match = api or resolve
        if match is None or (api is not None and self.command != "GET"):
            self.hub.unexpected.append(f"{self.command} {self.path}")
            self._send(404, {"error": "not implemented by the fake Hub"}, body=body)
            return
        repo_id, rev = unquote(match["repo"]), unquote(match["rev"] or "main")
        repo = self.hub.repos.get(repo_id)
        if repo is None:  # the Hub answers 401 to anonymous requests for missing (or private) repos
            self._send(401, {"error": "Repository not found"}, body=body,
                       headers={"X-Error-Code": "RepoNotFound", "X-Error-Message": "Repository not found"})
            return
        commit = repo.commit(rev)
        if commit is None:
            self._send(404, {"error": f"Invalid rev id: {rev}"}, body=body,
                       headers={"X-Error-Code": "RevisionNotFound", "X-Error-Message": f"Invalid rev id: {rev}"})
            return
        files = repo.commits[commit]
        if api is not None and api["kind"] == "tree":
            recursive = parse_qs(url.query).get("recursive", ["False"])[0].lower() == "true"
            self._send(200, _tree(files, recursive), body=body)
        elif api is not None:
            siblings = [{"rfilename": path} for path in sorted(files)]
            self._send(200, {"_id": repo_id, "id": repo_id, "sha": commit, "private": False, "siblings": siblings},
                       body=body)
        else:
            self._file(repo_id, commit, files, unquote(match["file"]), body)

    def _file(self, repo_id: str, commit: str, files: dict[str, bytes], path: str, body: bool) -> None:
        if path not in files:
            message = f"Entry not found: {path}"
            self._send(404, {"error": message}, body=body, headers={
                "X-Error-Code": "EntryNotFound", "X-Error-Message": message, "X-Repo-Commit": commit})
            return
        data = files[path]
        headers = {"X-Repo-Commit": commit, "ETag": f'"{_git_oid(data)}"', "Accept-Ranges": "bytes"}
        if _is_lfs(path):  # LFS files: the Hub names the blob by its sha256 in X-Linked-Etag
            headers |= {"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))}
        self._send_bytes(200, data, "application/octet-stream", headers, body)

    def _send(self, status: int, payload: Any, body: bool, headers: dict[str, str] | None = None) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json", headers or {}, body)

    def _send_bytes(self, status: int, data: bytes, content_type: str, headers: dict[str, str], body: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if body:
            self.wfile.write(data)


def _tree(files: dict[str, bytes], recursive: bool) -> list[dict[str, Any]]:
    paths = sorted(files) if recursive else sorted(p for p in files if "/" not in p)
    folders = {p.rsplit("/", 1)[0] for p in files if "/" in p}
    if not recursive:
        folders = {f.split("/", 1)[0] for f in folders}
    entries: list[dict[str, Any]] = [
        {"type": "directory", "path": f, "oid": hashlib.sha1(f.encode()).hexdigest()} for f in sorted(folders)
    ]
    for path in paths:
        data = files[path]
        entry: dict[str, Any] = {"type": "file", "path": path, "size": len(data), "oid": _git_oid(data)}
        if _is_lfs(path):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        entries.append(entry)
    return entries


# --------------------------------------------------------------------------------------------- fixtures


def _read_tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bundles(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    new = _read_tree(tiny_bundle)
    old = _read_tree(make_tiny_bundle(tmp_path_factory.mktemp("hub") / "old", seed=1))
    assert new[MANIFEST] != old[MANIFEST]
    bad = dict(new)
    data = bytearray(bad[TAMPERED])
    data[-1] ^= 0xFF  # a flipped bit in the last weight: still a valid safetensors file, wrong sha256
    bad[TAMPERED] = bytes(data)
    return {"new": new, "old": old, "bad": bad}


def _repos(bundles: dict[str, dict[str, bytes]]) -> dict[str, Repo]:
    return {
        "owner/name": Repo(commits={SHA_NEW: {**bundles["new"], **EXTRAS}, SHA_OLD: {**bundles["old"], **EXTRAS}},
                           refs={"main": SHA_NEW, "v1": SHA_OLD}),
        "owner/corrupt": Repo(commits={SHA_BAD: bundles["bad"]}, refs={"main": SHA_BAD}),
        "owner/not-a-bundle": Repo(commits={SHA_DOC: dict(EXTRAS)}, refs={"main": SHA_DOC}),
    }


def _patch_hf(monkeypatch: pytest.MonkeyPatch, **values: Any) -> None:
    """Set huggingface_hub constants, and any copy of them in the modules that download."""
    for name, value in values.items():
        for module in (constants, file_download, _snapshot_download, hf_api):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, value)


@pytest.fixture()
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: dict[str, dict[str, bytes]]) -> Iterator[FakeHub]:
    """A fake Hub, with huggingface_hub pointed at it (env vars and constants) and its cache under tmp_path."""
    server = FakeHub(_repos(bundles))
    home = tmp_path / "hf"
    env = {"HF_ENDPOINT": server.url, "HF_HOME": str(home), "HF_HUB_CACHE": str(home / "hub"),
           "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "NO_PROXY": "127.0.0.1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH",
                "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(key, raising=False)
    _patch_hf(
        monkeypatch, ENDPOINT=server.url,
        HUGGINGFACE_CO_URL_TEMPLATE=server.url + "/{repo_id}/resolve/{revision}/{filename}",
        HF_HOME=str(home), HF_HUB_CACHE=str(home / "hub"), HUGGINGFACE_HUB_CACHE=str(home / "hub"),
        HF_XET_CACHE=str(home / "xet"), HF_TOKEN_PATH=str(home / "token"),
        HF_STORED_TOKENS_PATH=str(home / "stored_tokens"),
        HF_HUB_OFFLINE=False, HF_HUB_DISABLE_IMPLICIT_TOKEN=True, HF_HUB_DISABLE_TELEMETRY=True,
    )
    monkeypatch.chdir(tmp_path)  # so that "owner/name" is never mistaken for a local folder
    close_session()  # a fresh HTTP client, built with the environment above
    try:
        yield server
    finally:
        server.stop()
        close_session()
    assert server.unexpected == [], f"requests the fake Hub does not implement: {server.unexpected}"


def _go_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _patch_hf(monkeypatch, HF_HUB_OFFLINE=True)


def _snapshot(tmp_path: Path, commit: str, repo: str = "models--owner--name") -> Path:
    return tmp_path / "hf" / "hub" / repo / "snapshots" / commit


def _bundle_files(folder: Path) -> list[str]:
    return sorted([MANIFEST, *json.loads((folder / MANIFEST).read_text())["files"]])


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize(("spec", "rev", "commit", "which"), [
    ("owner/name", "main", SHA_NEW, "new"),
    ("owner/name@main", "main", SHA_NEW, "new"),
    ("owner/name@v1", "v1", SHA_OLD, "old"),
    (f"owner/name@{SHA_OLD}", SHA_OLD, SHA_OLD, "old"),
])
def test_download_fetches_exactly_the_bundle_at_the_revision(
    hub: FakeHub, tmp_path: Path, bundles: dict[str, dict[str, bytes]], spec: str, rev: str, commit: str, which: str,
) -> None:
    folder = resolve_bundle(spec)

    assert folder == _snapshot(tmp_path, commit)
    assert ("HEAD", f"/owner/name/resolve/{rev}/{MANIFEST}") in hub.log  # the requested revision was asked for
    ref = tmp_path / "hf" / "hub" / "models--owner--name" / "refs" / rev
    if rev == commit:
        assert not ref.exists()
    else:
        assert ref.read_text() == commit
    assert _read_tree(folder) == bundles[which]  # the bundle of that commit, byte for byte, and nothing else
    expected = _bundle_files(folder)
    assert len(expected) == 11
    assert hub.downloads() == expected  # each bundle file fetched once; README, optimizer... never
    bundle = load_bundle(folder)
    assert bundle.info.name == "tiny" and bundle.path == folder


def test_second_resolve_downloads_nothing(hub: FakeHub, tmp_path: Path) -> None:
    first = resolve_bundle("owner/name")
    assert hub.downloads()
    hub.clear()

    assert resolve_bundle("owner/name") == first
    assert hub.log, "the second resolve should still check the revision with the Hub"
    assert [entry for entry in hub.log if entry[0] == "GET" and "/resolve/" in entry[1]] == []
    assert not any("/tree/" in path for _, path in hub.log)  # the tree listing is cached too
    load_bundle(first)


def test_cached_bundle_works_with_the_server_down(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = resolve_bundle("owner/name@v1")
    hub.stop()

    assert resolve_bundle("owner/name@v1") == first  # online, but the Hub cannot be reached: the cache answers
    _go_offline(monkeypatch)
    assert resolve_bundle("owner/name@v1") == first
    assert load_bundle(first).info.name == "tiny"


def test_offline_with_an_empty_cache_names_hf_hub_offline(hub: FakeHub, monkeypatch: pytest.MonkeyPatch) -> None:
    _go_offline(monkeypatch)
    with pytest.raises(BundleError, match=r"owner/name@main: not in the local Hugging Face cache.*HF_HUB_OFFLINE"):
        resolve_bundle("owner/name")
    assert hub.log == []  # offline means not a single request


def test_offline_with_the_cache_filled(hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = resolve_bundle("owner/name")
    hub.clear()
    _go_offline(monkeypatch)

    assert resolve_bundle("owner/name") == first
    load_bundle(first)
    with pytest.raises(BundleError, match="HF_HUB_OFFLINE"):  # another revision is not in the cache
        resolve_bundle("owner/name@v1")
    assert hub.log == []


def test_offline_with_a_partial_cache_names_hf_hub_offline(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = resolve_bundle("owner/name")
    (folder / "generator" / "model.safetensors").unlink()  # as if the download had been interrupted
    _go_offline(monkeypatch)
    with pytest.raises(BundleError, match="HF_HUB_OFFLINE"):
        resolve_bundle("owner/name")


def test_missing_repository(hub: FakeHub) -> None:
    with pytest.raises(BundleError, match=r"owner/missing: no such repository"):
        resolve_bundle("owner/missing")
    assert hub.log  # it was the Hub that said so


def test_missing_revision(hub: FakeHub) -> None:
    with pytest.raises(BundleError, match=r"owner/name@nope: no such revision"):
        resolve_bundle("owner/name@nope")


def test_repository_without_a_bundle(hub: FakeHub) -> None:
    with pytest.raises(BundleError, match=rf"owner/not-a-bundle@main: not a model bundle \(no {MANIFEST}\)"):
        resolve_bundle("owner/not-a-bundle")
    assert hub.downloads("owner/not-a-bundle") == []


def test_corrupted_download_fails_the_sha256_check(hub: FakeHub, tmp_path: Path) -> None:
    folder = resolve_bundle("owner/corrupt")
    assert folder == _snapshot(tmp_path, SHA_BAD, "models--owner--corrupt")
    with pytest.raises(BundleError, match="sha256") as err:
        load_bundle(folder)
    assert TAMPERED in str(err.value)


def test_cli_info_from_the_hub(hub: FakeHub, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["info", "--model", "owner/name", "--device", "cpu", "--json"])

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["bundle"] == "tiny"
    assert data["path"] == str(_snapshot(tmp_path, SHA_NEW))
    assert data["device"] == "cpu"
    assert hub.downloads() == _bundle_files(_snapshot(tmp_path, SHA_NEW))


def test_cli_missing_repository_is_one_line_and_exit_1(hub: FakeHub) -> None:
    result = CliRunner().invoke(app, ["info", "--model", "owner/missing", "--device", "cpu", "--json"])

    assert result.exit_code == 1
    assert "owner/missing: no such repository" in result.stderr
    assert "Traceback" not in result.output


def test_unreachable_hub_fails_fast_in_one_line(hub: FakeHub) -> None:
    """huggingface_hub alone retries a refused first download five times with backoff (~25 s of warnings)."""
    hub.stop()  # nothing listens on its port any more: every connection is refused
    warnings: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)

    def emit(record: logging.LogRecord) -> None:
        warnings.append(record)

    handler.emit = emit  # type: ignore[method-assign]
    logging.getLogger("huggingface_hub").addHandler(handler)
    try:
        start = time.monotonic()
        result = CliRunner().invoke(app, ["info", "--model", "owner/name", "--device", "cpu"])
        elapsed = time.monotonic() - start
    finally:
        logging.getLogger("huggingface_hub").removeHandler(handler)

    assert result.exit_code == 1 and elapsed < 3, (elapsed, result.output)
    assert result.stderr.splitlines() == [f"error: owner/name@main: cannot reach the Hub ({hub.url}) and the bundle "
                                          "is not cached"]
    assert [r.getMessage() for r in warnings] == []  # no "Retrying in 1s [Retry 1/5]" lines
