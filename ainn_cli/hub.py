"""Find a bundle by registry name, local folder or Hugging Face Hub repo id (`owner/name[@revision]`).

Hub downloads go through huggingface_hub into the standard HF cache: bundle.json first, then a
snapshot of exactly the files it lists, at the requested revision. `HF_HUB_OFFLINE=1` is honoured.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ainn_cli.bundle import MANIFEST
from ainn_cli.errors import BundleError

DEFAULT_MODEL = "default"
DEFAULT_REVISION = "main"
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

    try:
        manifest = huggingface_hub.hf_hub_download(repo_id, MANIFEST, revision=revision)
        files = sorted(json.loads(Path(manifest).read_text()).get("files", {}))
        folder = huggingface_hub.snapshot_download(repo_id, revision=revision, allow_patterns=[MANIFEST, *files])
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


def _offline_message(repo_id: str, revision: str) -> str:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return f"{repo_id}@{revision}: not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading"
    return f"{repo_id}@{revision}: cannot reach the Hub and the bundle is not cached"
