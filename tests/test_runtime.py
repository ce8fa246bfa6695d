"""Process-wide runtime set-up: the allocator keeps freed memory for reuse."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

# Allocated, touched and freed in a fresh process: above glibc's default mmap threshold
# (128 KiB) and below the raised one (32 MiB), like one activation of an encoder chunk.
BLOCK_MIB = 16

# Run in a fresh process so that the allocator starts from glibc's defaults (the test
# process may already have called keep_freed_memory through the CLI).
_PROBE = f"""
import ctypes, json, os, sys

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * page

if sys.argv[1] == "keep":
    from s2vt.runtime import keep_freed_memory
    assert keep_freed_memory()
size = {BLOCK_MIB} << 20
before = rss()
block = libc.malloc(size)
ctypes.memset(block, 1, size)  # touch every page
held = libc.mallinfo2()
libc.free(block)
freed = libc.mallinfo2()
print(json.dumps({{"mmapped_while_held": held.hblkhd, "heap_free_after": freed.fordblks,
                   "rss_kept_after": rss() - before}}))
"""


def _probe(mode: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True,
                          text=True, timeout=60, check=True)
    return json.loads(done.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt and mallinfo2 are glibc's")
def test_keep_freed_memory_keeps_a_freed_block_in_the_heap() -> None:
    """By default glibc serves the block with its own mmap and unmaps it on free (the
    next call page-faults it in again); after keep_freed_memory() it comes from the heap
    and stays there, resident, for the next allocation."""
    block = BLOCK_MIB << 20
    default, kept = _probe("default"), _probe("keep")

    assert default["mmapped_while_held"] >= block
    assert default["heap_free_after"] < block
    assert default["rss_kept_after"] < block // 2

    assert kept["mmapped_while_held"] < block
    assert kept["heap_free_after"] >= block
    assert kept["rss_kept_after"] >= block - (1 << 20)
