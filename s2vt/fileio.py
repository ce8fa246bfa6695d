"""Safe file writing: atomic writes and video ids turned into safe file names."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

_PLAIN_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def safe_filename(video_id: str) -> str:
    """Encode a video id as a file name that can never leave its folder.

    Plain ids (letters, digits, ``_``, ``-``, ``.``, not starting with a dot) stay as they
    are, so MSR-VTT's ``video7`` is ``video7``. Anything else (``/``, ``..``, spaces,
    non-ASCII letters, a leading dot) is percent-encoded, which is reversible by
    :func:`id_from_filename`.
    """
    if not video_id:
        raise ValueError("empty video id")
    if set(video_id) <= _PLAIN_NAME_CHARS and not video_id.startswith(".") and "%" not in video_id:
        return video_id
    encoded = quote(video_id, safe="")
    if encoded.startswith("."):
        encoded = "%2E" + encoded[1:]
    return encoded.replace("..", "%2E%2E")


def id_from_filename(name: str) -> str:
    """Invert :func:`safe_filename`."""
    return unquote(name)


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through a temp file in the same folder, fsync, then rename into place.

    A process killed at any moment leaves either the old file or the complete new one,
    never a partial file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; give the result the usual permissions (0666 & ~umask).
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    """The process umask (reading it requires setting it, so set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Atomically write a UTF-8 text file."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write pretty JSON."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
