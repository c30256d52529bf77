"""The official archives `ainn data` downloads: address, size and checksum, each with where it is published.

    RAVDESS speech   Zenodo record 1188976, Audio_Speech_Actors_01-24.zip: 208,468,073 bytes,
                     md5 bc696df654c87fed845eb13823edef8a (the record's file listing)
    LibriSpeech      OpenSLR resource 12, SUBSET.tar.gz: sha256 as in torchaudio's
                     `torchaudio/datasets/librispeech.py` (_CHECKSUMS); dev-clean's size 337,926,286 bytes and
                     md5 42e2234ba48799c1f50f24a7926300a1 (OpenSLR's md5sum.txt)

A mirror (`--mirror URL`, or AINN_DATA_MIRROR) replaces everything before the file name; the checksums stay.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ainn_cli.errors import UsageError

MIRROR_ENV = "AINN_DATA_MIRROR"
DATA_ENV = "AINN_DATA"  # the data root: the folder the configs' relative source paths are under
DEFAULT_ROOT = "data"  # without --data-root or AINN_DATA: ./data


def data_root(given: str | Path | None = None) -> Path:
    """The data root: `given` (--data-root, or the config's data.root), else $AINN_DATA, else ./data."""
    return Path(given or os.environ.get(DATA_ENV) or DEFAULT_ROOT).expanduser()


@dataclass(frozen=True)
class Archive:
    """One file to download: its address, and what it must be (None: not published, then the server's
    Content-Length is recorded and checked, and the sha256 of what arrived is recorded beside the corpus)."""

    name: str  # e.g. "RAVDESS speech"
    url: str
    size: int | None = None  # bytes
    md5: str | None = None
    sha256: str | None = None
    licence: str = ""

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1].split("?", 1)[0]

    def mirrored(self, mirror: str | None) -> Archive:
        """The same archive from `mirror` (a base URL; the file name is appended)."""
        base = mirror if mirror is not None else os.environ.get(MIRROR_ENV, "")
        if not base:
            return self
        if not base.startswith(("http://", "https://")):
            raise UsageError(f"--mirror {base!r}: give an http:// or https:// address")
        return dataclasses.replace(self, url=f"{base.rstrip('/')}/{self.filename}")


RAVDESS = Archive(
    name="RAVDESS speech", url="https://zenodo.org/records/1188976/files/Audio_Speech_Actors_01-24.zip?download=1",
    size=208_468_073, md5="bc696df654c87fed845eb13823edef8a",
    licence="CC BY-NC-SA 4.0 (Livingstone & Russo 2018, PLoS ONE 13(5): e0196391; Zenodo 1188976)",
)
LIBRISPEECH_URL = "https://www.openslr.org/resources/12/{subset}.tar.gz"
LIBRISPEECH_LICENCE = "CC BY 4.0 (Panayotov et al., ICASSP 2015; OpenSLR SLR12)"
LIBRISPEECH_SHA256 = {
    "dev-clean": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
    "train-other-500": "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2",
}
LIBRISPEECH_KNOWN = {"dev-clean": (337_926_286, "42e2234ba48799c1f50f24a7926300a1")}  # size, md5


def librispeech(subset: str) -> Archive:
    """The archive of one LibriSpeech subset (dev-clean, test-clean, train-clean-100, ...)."""
    if subset not in LIBRISPEECH_SHA256:
        raise UsageError(f"--subset {subset!r}: use one of {', '.join(LIBRISPEECH_SHA256)}")
    size, md5 = LIBRISPEECH_KNOWN.get(subset, (None, None))
    return Archive(name=f"LibriSpeech {subset}", url=LIBRISPEECH_URL.format(subset=subset), size=size, md5=md5,
                   sha256=LIBRISPEECH_SHA256[subset], licence=LIBRISPEECH_LICENCE)
