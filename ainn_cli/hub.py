"""Find a bundle by registry name, local folder or Hugging Face Hub repo id (`owner/name[@revision]`).

Hub downloads go through huggingface_hub into the standard HF cache: bundle.json first, then a
snapshot of exactly the files it lists, at the requested revision. `HF_HUB_OFFLINE=1` is honoured.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ainn_cli.bundle_files import MANIFEST  # not bundle.py, which imports torch: the registry is read without it
from ainn_cli.errors import BundleError, UsageError

DEFAULT_MODEL = "default"
DEFAULT_REVISION = "main"
HUB_PROBE_SECONDS = 2.5  # to answer one HEAD; HF_HUB_ETAG_TIMEOUT sets it for a slow link
HUB_DOWN_STATUS = (408, 429, 500, 502, 503, 504)  # the Hub is busy or down: use the cache
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


def embedded_root() -> Path:
    """checkpoints/ inside the installed wheel, or beside the package in a source/editable install."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "checkpoints", package.parent / "checkpoints"):
        if candidate.is_dir():
            return candidate
    return package / "checkpoints"


def registry() -> dict[str, Path]:
    """Embedded bundles by name."""
    root = embedded_root()
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if (p / MANIFEST).is_file()}


def resolve_bundle(model: str | None) -> Path:
    """Turn `--model` into a local bundle folder, downloading from the Hub when needed."""
    if model is not None and not model.strip():
        raise UsageError("--model is empty: give a registry name, a bundle folder or a Hub id owner/name")
    spec = model or DEFAULT_MODEL
    names = registry()
    if spec in names:
        return names[spec]
    local = Path(spec).expanduser()
    if local.exists():
        if not (local / MANIFEST).is_file():
            raise BundleError(f"{local}: not a model bundle (no {MANIFEST})")
        return local
    if _REPO_ID.match(spec):
        repo_id, _, revision = spec.partition("@")
        return download_bundle(repo_id, revision or DEFAULT_REVISION)
    known = ", ".join(names) or "none installed"
    raise BundleError(f"{spec}: no such bundle (registry: {known}; or a folder, or a Hub id owner/name[@rev])")


def download_bundle(repo_id: str, revision: str) -> Path:
    """Download bundle.json, then exactly the files it lists; return the snapshot folder."""
    import huggingface_hub
    from huggingface_hub import errors

    from ainn_cli.bundle import read_manifest

    try:
        cache_only = not _hub_answers(repo_id, revision)
        manifest = huggingface_hub.hf_hub_download(repo_id, MANIFEST, revision=revision, local_files_only=cache_only)
        files = sorted(read_manifest(Path(manifest).parent)["files"])  # plain names only, checked before fetching
        folder = huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=[MANIFEST, *files],
                                                   local_files_only=cache_only)
    except errors.RepositoryNotFoundError:
        raise BundleError(f"{repo_id}: no such repository on the Hub (or it is private)") from None
    except errors.RevisionNotFoundError:
        raise BundleError(f"{repo_id}@{revision}: no such revision on the Hub") from None
    except errors.LocalEntryNotFoundError:  # before EntryNotFoundError: it is a subclass (offline, not cached)
        raise BundleError(_offline_message(repo_id, revision)) from None
    except errors.EntryNotFoundError:
        raise BundleError(f"{repo_id}@{revision}: not a model bundle (no {MANIFEST})") from None
    except (errors.HfHubHTTPError, OSError, ValueError) as err:
        raise BundleError(f"{repo_id}@{revision}: download failed ({str(err).splitlines()[0]})") from None
    return Path(str(folder))


def _hub_answers(repo_id: str, revision: str) -> bool:
    """Whether the Hub answers one HEAD for bundle.json within HUB_PROBE_SECONDS, asked once, never retried.

    huggingface_hub retries a first download that cannot connect five times with backoff (~25 s of
    "Retrying in 8s" lines); asking once first makes an unreachable Hub a one-line error in a moment,
    or sends us to the cache. A missing repo, revision or file is raised as the Hub's HTTP error.
    """
    import huggingface_hub
    from huggingface_hub import constants, errors

    if constants.HF_HUB_OFFLINE:
        return False
    url = huggingface_hub.hf_hub_url(repo_id, MANIFEST, revision=revision)
    timeout = float(os.environ.get("HF_HUB_ETAG_TIMEOUT") or HUB_PROBE_SECONDS)
    try:
        huggingface_hub.get_hf_file_metadata(url, timeout=timeout)
    except errors.HfHubHTTPError as err:
        if getattr(err.response, "status_code", 0) in HUB_DOWN_STATUS:
            return False
        raise
    except Exception as err:
        if _network_error(err):
            return False
        raise
    return True


def _network_error(err: Exception) -> bool:
    """A connection, DNS, TLS or timeout failure, from whichever HTTP client this huggingface_hub uses."""
    client = type(err).__module__.split(".")[0]
    return isinstance(err, OSError) or client in {"httpx", "httpx2", "httpcore", "httpcore2", "requests", "urllib3"}


def _offline_message(repo_id: str, revision: str) -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return f"{repo_id}@{revision}: not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading"
    return f"{repo_id}@{revision}: cannot reach the Hub ({constants.ENDPOINT}) and the bundle is not cached"
