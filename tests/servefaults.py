"""Fault injection for ``s2vt serve``'s decode workers, chosen by the upload's content (the
server names uploads itself, so a file name cannot choose): a file starting with ``CRASH``
kills its worker with SIGSEGV, one starting with ``HANG`` never returns."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any


def content_faulty_decode(path: Path, sampling: Any, size: int, **kwargs: Any) -> Any:
    from s2vt.video import read_clip

    head = Path(path).read_bytes()[:5]
    if head == b"CRASH":
        os.kill(os.getpid(), signal.SIGSEGV)
    if head.startswith(b"HANG"):
        time.sleep(600)
    return read_clip(path, sampling, size, **kwargs)
