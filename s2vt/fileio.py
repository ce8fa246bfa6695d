"""Safe file writing: atomic writes, video ids turned into safe file names, and the
locked temp files that tell a live writer from a dead one (so a cleaner removes only the
left-overs of killed runs)."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote, unquote

try:  # flock tells a live writer's temp file from a dead one's (POSIX only)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

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


# A temp file this old whose lock is free belongs to a dead writer. The age guard covers the
# microseconds between a writer creating its temp file and locking it (and file systems
# without working locks, where only much older files are removed).
STALE_TEMP_SECONDS = 10.0
STALE_TEMP_SECONDS_NO_LOCK = 3600.0


def write_locked(handle: BinaryIO, payload: bytes) -> None:
    """Lock the temp file (so cleaners see it is alive), then write ``payload``."""
    if fcntl is not None:
        with contextlib.suppress(OSError):
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    handle.write(payload)


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` atomically, holding a lock on the temp file while writing."""
    atomic_write(path, lambda handle: write_locked(handle, payload))


def is_temp_name(name: str) -> bool:
    """True for the hidden temp names the atomic writers use (``.<name>....tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def temp_is_stale(path: Path, now: float) -> bool:
    """True when the temp file's writer is gone: old enough and nobody holds its lock."""
    try:
        age = now - path.stat().st_mtime
    except OSError:
        return False
    if age < STALE_TEMP_SECONDS:
        return False
    if fcntl is None:
        return age >= STALE_TEMP_SECONDS_NO_LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # a live writer holds it
    except OSError:
        return age >= STALE_TEMP_SECONDS_NO_LOCK  # no working locks here: only very old ones
    finally:
        os.close(fd)
    return True


def create_exclusive(path: Path, payload: bytes) -> None:
    """Create ``path`` with ``payload`` atomically, unless it exists (then leave it alone).

    The content goes to a temp file first and is hard-linked into place: a link never
    replaces an existing file, so of several racing writers exactly one wins and the
    others see a complete file.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:
            # No hard links on this file system: fall back to exclusive create + write.
            # (A reader could then see a partial meta for a moment; retried below.)
            try:
                with open(path, "xb") as handle:
                    handle.write(payload)
            except FileExistsError:
                pass
    finally:
        tmp.unlink(missing_ok=True)
    # A racing writer on a link-less file system may still be writing: wait briefly.
    for _ in range(50):
        try:
            json.loads(path.read_text(encoding="utf-8"))
            return
        except (OSError, ValueError):
            time.sleep(0.05)
