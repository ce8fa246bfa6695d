"""Process-wide set-up that makes CPU inference fast: the C allocator's reuse of memory.

Why: CNN and LSTM activations on the CPU are tensors of several MiB that torch allocates
and frees at every call. glibc's ``malloc`` serves blocks above its mmap threshold with a
fresh ``mmap`` and hands freed memory at the top of a heap back to the kernel (trim), so
every call pays page faults on memory it just gave away. On our 2-core VM that made
EfficientNet-Lite0 run 23 img/s instead of 43 img/s on one thread (chunks of 4 frames; a
``fill_`` of a padded 19 MiB activation ran at 2 GB/s). Raising both thresholds keeps
freed blocks in the heap for the next call, the effect PyTorch's CPU tuning guides get
by preloading jemalloc or tcmalloc. Memory is still freed for reuse inside the process;
only its return to the kernel is deferred.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# mallopt(3) parameters (glibc <malloc.h>).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# glibc caps the mmap threshold at 32 MiB on 64-bit systems (DEFAULT_MMAP_THRESHOLD_MAX):
# every activation of a 4-frame encoder chunk and an LSTM decoding step is below it.
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Make glibc ``malloc`` keep freed memory for reuse instead of unmapping it.

    Call once at process start in processes that compute (the CLI, the pipelines' step
    workers, decode workers that compute flow; not plain decode workers, whose decoders
    gain nothing from it and whose untrimmed heap grows). A no-op where the C library has
    no ``mallopt`` (musl, macOS, Windows).

    Returns:
        True when both settings took effect.
    """
    try:
        # The symbols already loaded into this process, the C library's among them.
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        logger.debug("no mallopt in the C library: allocator left as it is")
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt returns 1 on success and 0 when a value is out of range.
    mmap_ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
    trim_ok = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
    return mmap_ok and trim_ok


def prepare_worker(threads: int) -> None:
    """Set up a spawned worker process: :func:`keep_freed_memory` and its torch threads."""
    import torch

    keep_freed_memory()
    torch.set_num_threads(threads)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch (and so OpenVINO) threads, then restore the
    count it had: a stage's choice never leaks into the stages after it in one process.
    ``None`` leaves the count as it is."""
    import torch

    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
