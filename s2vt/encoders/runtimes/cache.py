"""The on-disk cache of converted networks: keyed by what made them, verified before use.

A converted network is a few files (OpenVINO: ``.xml`` + ``.bin``) plus a JSON sidecar
that names them with their SHA-256 and lists the key's parts (encoder, weights digest,
image size, runtime / torch / s2vt versions). A load trusts nothing it has not checked: a
missing, damaged or foreign file (another version, another key) means "convert again".

Files are content-addressed (``<key>-<digest>.<ext>``) and the sidecar is written last,
each atomically (:func:`s2vt.fileio.atomic_write`), so a killed run or two processes
converting the same network at once never leave a sidecar that points at a half file or
at another process's files.

The cache lives in ``$S2VT_CACHE`` when set, else ``$XDG_CACHE_HOME/s2vt``, else
``~/.cache/s2vt``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.errors import one_line
from s2vt.fileio import atomic_write, atomic_write_json

if TYPE_CHECKING:
    from torch import nn

logger = logging.getLogger(__name__)

CACHE_ENV = "S2VT_CACHE"
# Bumped when the layout of cached files or the conversion itself changes.
CACHE_FORMAT = 1
_CHUNK = 1 << 20


def cache_root() -> Path:
    """The cache folder: ``$S2VT_CACHE``, else ``$XDG_CACHE_HOME/s2vt`` or ``~/.cache/s2vt``."""
    chosen = os.environ.get(CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "s2vt"


def file_digest(path: Path) -> str:
    """SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def network_digest(net: nn.Module) -> str:
    """SHA-256 of a network's structure (its repr) and every tensor of its state dict.

    Why the content and not the weights file's name and mtime: the same file can hold
    other weights after a copy, and ``random`` or packaged weights have no file of the
    user's; hashing what the network holds is right in every case (about 10 ms for
    EfficientNet-Lite0, under a second for VGG16).
    """
    import numpy as np
    import torch

    digest = hashlib.sha256(repr(net).encode())
    for key, tensor in net.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16; hash its bits
            tensor = tensor.view(torch.int16)
        digest.update(tensor.numpy().reshape(-1).view(np.uint8))
    return digest.hexdigest()


def source_digest() -> str:
    """SHA-256 of the encoder modules' source: a code change in a checkout converts anew."""
    folder = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*.py")):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """A short stable key for a dict of JSON-able parts."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class CachedFiles:
    """The cached files of one key in ``folder``: ``load`` them verified, or ``store`` new ones.

    Args:
        folder: where this runtime keeps its files.
        parts: what the files were made from; the key is their hash, and the sidecar
            repeats them so that a foreign sidecar is recognised.
    """

    def __init__(self, folder: Path, parts: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.parts = dict(parts, cache_format=CACHE_FORMAT)
        self.key = cache_key(self.parts)
        self.sidecar = self.folder / f"{self.key}.json"

    def load(self) -> dict[str, Path] | None:
        """The verified files by role (e.g. ``{"xml": ..., "bin": ...}``), or None.

        None when nothing is cached; also when something is cached but fails a check
        (unreadable sidecar, other parts, a missing file or one whose SHA-256 differs),
        which is logged as one line and leaves the caller to convert again.
        """
        if not self.sidecar.exists():
            return None
        try:
            record = json.loads(self.sidecar.read_text())
            if not isinstance(record, dict) or record.get("parts") != self.parts:
                raise ValueError("it was made from other settings or another version")
            files = {}
            for role, entry in record["files"].items():
                path = self.folder / entry["name"]
                if Path(entry["name"]).name != entry["name"]:
                    raise ValueError(f"file name {entry['name']!r} is not a plain name")
                if not path.is_file():
                    raise ValueError(f"{path.name} is missing")
                if file_digest(path) != entry["sha256"]:
                    raise ValueError(f"{path.name} does not match its checksum")
                files[role] = path
            if not files:
                raise ValueError("it names no files")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            logger.warning("cached network %s is not usable (%s); converting again",
                           self.sidecar, one_line(error))
            return None
        return files

    def store(self, made: dict[str, Path]) -> dict[str, Path]:
        """Copy freshly made files into the cache, then write the sidecar that names them.

        Args:
            made: role -> a file just written (e.g. in a temp folder); left in place.

        Returns:
            role -> the cached file.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        files, entries = {}, {}
        for role, source in made.items():
            digest = file_digest(source)
            name = f"{self.key}-{digest[:16]}{''.join(Path(source).suffixes)}"
            target = self.folder / name

            def copy(handle: Any, source: Path = source) -> None:
                with open(source, "rb") as reader:
                    shutil.copyfileobj(reader, handle, _CHUNK)

            atomic_write(target, copy)
            files[role] = target
            entries[role] = {"name": name, "sha256": digest}
        atomic_write_json(self.sidecar, {"parts": self.parts, "files": entries})
        return files
