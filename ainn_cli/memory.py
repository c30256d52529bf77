"""Keep a folder run's memory flat: bound the native caches that grow with every new input length.

Converting a folder of files of different lengths grew the process by ~90 MB per file (default model,
`ainn convert` on ten files of 2.5-3.4 s: peak RSS 1.42-1.53 GB, against 0.52-0.62 GB for the longest
file alone), for two reasons:
- oneDNN, torch's CPU convolution library, compiles and caches kernels for every new input shape, up
  to 1024 of them: about 30 MB per input length for the default model;
- glibc's malloc raises its mmap threshold each time a large block is freed, so later tensors come
  from a heap that fragments and is never given back.
`bound_native_caches` (called before torch is imported) turns the first off and pins the second;
`release_memory` (after each file) returns freed heap pages. With both, the same folder peaks at
0.50 GB, below the longest file alone. The price is CPU time: about 25 % more with one thread
(kernels are compiled again and large tensors are mapped afresh), more on a loaded machine. Setting
ONEDNN_PRIMITIVE_CACHE_CAPACITY or MALLOC_MMAP_THRESHOLD_ yourself overrides them.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter number (glibc malloc.h)
MMAP_THRESHOLD = 1 << 20  # bytes: blocks of 1 MiB and more get their own mapping, unmapped when freed
STREAM_KERNELS = 64  # oneDNN kernels a stream keeps (see bound_native_caches)


def bound_native_caches(kernels: int = 0) -> None:
    """At most `kernels` cached oneDNN kernels (none by default) and a fixed mmap threshold, for the `ainn`
    process before it imports torch.

    A folder's files come in ever new lengths, so cached kernels are rarely reused: none are kept. A stream
    (`stream_convert`) runs the same chunk shape again and again between spans of new lengths: STREAM_KERNELS
    kernels, evicted oldest first, keep 22 % of its CPU time for about 40 MB (a 150-second stream, default
    model: 164 CPU-seconds and 0.52 GB with none, 128 s and 0.56 GB with 64, 127 s and 0.90 GB with oneDNN's
    own 1024). Once torch is loaded (the Python API, a test run) it is too late for oneDNN's setting and the
    process is not ours to tune: then this does nothing.
    """
    if "torch" in sys.modules:
        return
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", str(kernels))
    libc = _glibc()
    if libc is not None and "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def release_memory() -> None:
    """Free unreachable objects and give the heap's free pages back to the system (glibc; elsewhere a no-op)."""
    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The running process's C library when it is glibc (it has malloc_trim), else None (macOS, musl, Windows)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
