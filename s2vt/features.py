"""The feature store: one folder of per-video CNN features that survives kills and reruns.

Layout of a store folder::

    meta.json                     encoder spec, feature_dim, dtype, image_size, sampling,
                                  format_version (identical for every writer of the folder)
    <safe_id>.json                video_id, source path, frame indices, timestamps, fps
    <safe_id>.npy                 (T, D) features, float16 by default
    failures.jsonl                one JSON line per failed video: video_id, path, reason
    failures.<I>-of-<N>.jsonl     the same, written by shard I of N (readers merge them)

A video is *done* when its ``.npy`` exists: the sidecar ``.json`` is written first, and
both go through a temp file + rename, so a run killed at any moment leaves either nothing
or complete files under the final names. Temp files are hidden (leading dot, ``.tmp``
suffix), ignored by readers, and removed later once their writer is provably gone.

Video ids become file names only through :func:`s2vt.fileio.safe_filename`, so an id such
as ``../../x`` or ``/etc/passwd`` can never make a write leave the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2vt.errors import S2VTError
from s2vt.fileio import (
    atomic_write_bytes,
    create_exclusive,
    id_from_filename,
    is_temp_name,
    safe_filename,
    temp_is_stale,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
META_FILE = "meta.json"
FAILURES_FILE = "failures.jsonl"
DEFAULT_DTYPE = "float16"
SUPPORTED_DTYPES = ("float16", "float32")
# Stems that would collide with the store's own files (meta.json) on any file system,
# including case-insensitive ones; such ids get their first letter percent-encoded.
_RESERVED_STEMS = frozenset({"meta"})
# Most file systems cap a name at 255 bytes; keep room for ".npy" and temp-name decoration.
_MAX_STEM_BYTES = 200


@dataclass
class VideoFeatures:
    """The stored features of one video.

    Attributes:
        video_id: the video id.
        features: (T, D) array in the store's dtype.
        indices: (T,) int64 frame indices in the source video.
        timestamps: (T,) float64 seconds.
        fps: average frame rate of the source (0.0 when unknown).
        source: the source video path as recorded when extracting (None if unknown).
    """

    video_id: str
    features: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    fps: float = 0.0
    source: str | None = None


def file_stem(video_id: str) -> str:
    """The file name stem of ``video_id`` in a store (reversible by ``id_from_filename``).

    Raises:
        S2VTError: for an empty id or one too long for a file name.
    """
    if not isinstance(video_id, str) or not video_id:
        raise S2VTError(f"invalid video id {video_id!r}: it must be a non-empty string")
    stem = safe_filename(video_id)
    if stem.lower() in _RESERVED_STEMS:
        stem = f"%{ord(stem[0]):02X}{stem[1:]}"
    if len(stem.encode("utf-8")) > _MAX_STEM_BYTES:
        raise S2VTError(f"video id is too long to be a file name: {video_id[:60]!r}...")
    return stem


def shard_failures_name(shard: tuple[int, int] | None) -> str:
    """``failures.jsonl``, or ``failures.<I>-of-<N>.jsonl`` for shard I (1-based) of N."""
    if shard is None:
        return FAILURES_FILE
    index, count = shard
    return f"failures.{index}-of-{count}.jsonl"


def normalize_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults of a store's meta (dtype, format_version) and check its types.

    Args:
        meta: at least ``feature_dim``; usually also ``encoder``, ``image_size``, ``sampling``.

    Returns:
        A JSON-safe copy with ``dtype`` and ``format_version`` set.
    """
    if not isinstance(meta, dict):
        raise S2VTError("feature store meta must be a mapping")
    data = json.loads(json.dumps(meta))  # JSON round trip: tuples -> lists, as on disk
    data.setdefault("dtype", DEFAULT_DTYPE)
    data.setdefault("format_version", FORMAT_VERSION)
    data.setdefault("stream", {"name": "rgb"})  # stores made before streams hold rgb
    data.setdefault("decoder", "decord")  # stores made before the decoder registry
    dim = data.get("feature_dim")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise S2VTError(f"feature store meta needs a positive integer feature_dim, got {dim!r}")
    if data["dtype"] not in SUPPORTED_DTYPES:
        raise S2VTError(
            f"feature store dtype must be one of {list(SUPPORTED_DTYPES)}, got {data['dtype']!r}"
        )
    return data


def meta_difference(
    existing: dict[str, Any], wanted: dict[str, Any], prefix: str = ""
) -> str | None:
    """The first dotted key whose value differs between two metas, or None when equal."""
    for key in sorted(set(existing) | set(wanted), key=str):
        name = f"{prefix}{key}"
        old, new = existing.get(key), wanted.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            inner = meta_difference(old, new, prefix=f"{name}.")
            if inner is not None:
                return inner
        elif old != new:
            return name
    return None


def meta_mismatch_error(root: Path, existing: dict, wanted: dict, key: str) -> S2VTError:
    """The one-line error for a store whose meta differs from ours at dotted ``key``."""
    old, new = _lookup(existing, key), _lookup(wanted, key)
    return S2VTError(
        f"feature store {root} was made with a different {key}: {old!r} there, {new!r} now "
        "(use another --out folder, or delete the old store)"
    )


def _lookup(data: dict, dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


class FeatureStore:
    """A folder of per-video features (see the module docstring for the layout).

    Use :meth:`create` to write (it reopens a compatible existing store) and :meth:`open`
    to read. Several processes (shards) may write one store at once: each writes only its
    own videos and its own failures file.

    Attributes:
        root: the store folder.
        meta: encoder spec, feature_dim, dtype, image_size, sampling, format_version.
        feature_dim: D, the length of each frame's feature vector.
        dtype: numpy dtype of the stored features.
    """

    def __init__(self, root: Path, meta: dict[str, Any], shard: tuple[int, int] | None = None):
        self.root = Path(root)
        self.meta = meta
        self.feature_dim = int(meta["feature_dim"])
        self.dtype = np.dtype(meta.get("dtype", DEFAULT_DTYPE))
        self.shard = shard

    # ----------------------------------------------------------------- opening
    @classmethod
    def create(
        cls, root: Path, meta: dict[str, Any], *, shard: tuple[int, int] | None = None
    ) -> FeatureStore:
        """Create a store, or reopen an existing one whose meta matches ``meta``.

        Safe when several shards race to create the same folder: ``meta.json`` appears
        atomically exactly once and every other writer checks it is equal to its own.

        Args:
            root: the store folder (created with its parents).
            meta: at least ``feature_dim``; ``dtype`` defaults to float16.
            shard: (I, N), 1-based, when this writer is shard I of N (selects its
                failures file).

        Raises:
            S2VTError: when an existing store's meta differs (naming the key), or the
                folder cannot be created.
        """
        root = Path(root)
        wanted = normalize_meta(meta)
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise S2VTError(f"cannot create feature store folder {root}: {error}") from None
        if not root.is_dir():
            raise S2VTError(f"feature store path {root} exists and is not a folder")
        meta_path = root / META_FILE
        if not meta_path.exists():
            create_exclusive(meta_path, (json.dumps(wanted, indent=2) + "\n").encode("utf-8"))
        existing = normalize_meta(_read_meta(meta_path))
        key = meta_difference(existing, wanted)
        if key is not None:
            raise meta_mismatch_error(root, existing, wanted, key)
        store = cls(root, existing, shard=shard)
        store.clean_stale_temp_files()
        return store

    @classmethod
    def open(cls, root: Path) -> FeatureStore:
        """Open an existing store for reading.

        Raises:
            S2VTError: when the folder or its meta.json is missing or unreadable.
        """
        root = Path(root)
        if not root.is_dir():
            raise S2VTError(f"feature store not found: {root} (run `s2vt extract` first)")
        meta_path = root / META_FILE
        if not meta_path.is_file():
            raise S2VTError(f"{root} is not a feature store: {META_FILE} is missing")
        return cls(root, normalize_meta(_read_meta(meta_path)))

    @classmethod
    def exists(cls, root: Path) -> bool:
        """Whether ``root`` holds a store (a meta.json)."""
        return (Path(root) / META_FILE).is_file()

    # ----------------------------------------------------------------- paths
    def feature_path(self, video_id: str) -> Path:
        """Path of the ``.npy`` of ``video_id`` (always inside :attr:`root`)."""
        return self.root / f"{file_stem(video_id)}.npy"

    def info_path(self, video_id: str) -> Path:
        """Path of the sidecar ``.json`` of ``video_id`` (always inside :attr:`root`)."""
        return self.root / f"{file_stem(video_id)}.json"

    # ----------------------------------------------------------------- writing
    def has(self, video_id: str) -> bool:
        """Whether ``video_id`` is done (its ``.npy`` exists)."""
        try:
            return self.feature_path(video_id).is_file()
        except S2VTError:
            return False

    def write(
        self,
        video_id: str,
        features: np.ndarray,
        indices: np.ndarray,
        timestamps: np.ndarray,
        source: str | None = None,
        fps: float = 0.0,
        decoding: dict | None = None,
    ) -> None:
        """Store one video's features atomically (sidecar JSON first, then the ``.npy``).

        Args:
            video_id: the id (any string; encoded safely as a file name).
            features: (T, D) with D == feature_dim; cast to the store's dtype.
            indices: (T,) frame indices.
            timestamps: (T,) seconds.
            source: the source video path, recorded for reference.
            fps: the source's average frame rate.
            decoding: how the frames were decoded (``decoder``, and ``partial`` with a
                ``warning`` when only part of the video decodes), recorded as is.

        Raises:
            S2VTError: on a wrong shape, or when the files cannot be written.
        """
        features = np.asarray(features)
        indices = np.asarray(indices).reshape(-1)
        timestamps = np.asarray(timestamps).reshape(-1)
        if features.ndim != 2 or features.shape[1] != self.feature_dim or features.shape[0] < 1:
            raise S2VTError(
                f"features of {video_id!r} have shape {features.shape}, "
                f"expected (T, {self.feature_dim}) with T >= 1"
            )
        if len(indices) != len(features) or len(timestamps) != len(features):
            raise S2VTError(
                f"features of {video_id!r}: {len(features)} frames but {len(indices)} indices "
                f"and {len(timestamps)} timestamps"
            )
        info = {
            "video_id": video_id,
            "source": None if source is None else str(source),
            "num_frames": int(len(features)),
            "fps": float(fps),
            "indices": [int(i) for i in indices],
            "timestamps": [float(t) for t in timestamps],
        }
        if decoding:
            info["decoding"] = dict(decoding)
        payload = _npy_bytes(np.ascontiguousarray(features, dtype=self.dtype))
        try:
            atomic_write_bytes(
                self.info_path(video_id),
                (json.dumps(info, ensure_ascii=False) + "\n").encode("utf-8"),
            )
            atomic_write_bytes(self.feature_path(video_id), payload)
        except OSError as error:
            raise S2VTError(
                f"cannot write features of {video_id!r} to {self.root}: {error}"
            ) from None

    def record_failure(self, video_id: str, path: str, reason: str) -> None:
        """Append one failure line (video_id, path, reason) to this writer's failures file.

        One ``write`` of one short line with O_APPEND: a kill can at worst leave a torn
        last line, which readers skip.
        """
        line = json.dumps(
            {
                "video_id": video_id,
                "path": None if path is None else str(path),
                "reason": " ".join(str(reason).split()),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            },
            ensure_ascii=False,
        )
        target = self.root / shard_failures_name(self.shard)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            # A torn line from an earlier kill must not swallow this one.
            prefix = b""
            if os.fstat(fd).st_size > 0:
                with open(target, "rb") as handle:
                    handle.seek(-1, os.SEEK_END)
                    if handle.read(1) != b"\n":
                        prefix = b"\n"
            os.write(fd, prefix + line.encode("utf-8") + b"\n")
        finally:
            os.close(fd)

    def clean_stale_temp_files(self) -> int:
        """Remove temp files left by killed writers; never a live writer's. Returns the count."""
        removed = 0
        now = time.time()
        for entry in _scan(self.root):
            if is_temp_name(entry.name) and temp_is_stale(Path(entry.path), now):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            logger.debug("removed %d stale temp files from %s", removed, self.root)
        return removed

    # ----------------------------------------------------------------- reading
    def ids(self) -> list[str]:
        """The ids of all done videos (sorted), from every writer of the folder."""
        ids = []
        for entry in _scan(self.root):
            name = entry.name
            if name.endswith(".npy") and not name.startswith("."):
                ids.append(id_from_filename(name[: -len(".npy")]))
        return sorted(ids)

    def __len__(self) -> int:
        return len(self.ids())

    def __contains__(self, video_id: object) -> bool:
        return isinstance(video_id, str) and self.has(video_id)

    def read(self, video_id: str) -> VideoFeatures:
        """Load one video's features and frame info.

        Raises:
            S2VTError: when the video is not in the store, or a file is corrupt or has the
                wrong shape/dtype (the message names the file).
        """
        path = self.feature_path(video_id)
        if not path.is_file():
            raise S2VTError(f"video {video_id!r} is not in feature store {self.root}")
        try:
            features = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise S2VTError(f"corrupt feature file {path}: {error}") from None
        if features.ndim != 2 or features.shape[1] != self.feature_dim or features.shape[0] < 1:
            raise S2VTError(
                f"corrupt feature file {path}: shape {features.shape}, "
                f"expected (T, {self.feature_dim})"
            )
        if features.dtype != self.dtype:
            raise S2VTError(
                f"corrupt feature file {path}: dtype {features.dtype}, expected {self.dtype}"
            )
        info_path = self.info_path(video_id)
        try:
            info = json.loads(info_path.read_text(encoding="utf-8"))
            indices = np.asarray(info["indices"], dtype=np.int64)
            timestamps = np.asarray(info["timestamps"], dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise S2VTError(f"corrupt or missing frame info file {info_path}: {error}") from None
        if len(indices) != len(features) or len(timestamps) != len(features):
            raise S2VTError(
                f"corrupt frame info file {info_path}: {len(indices)} indices for "
                f"{len(features)} feature rows"
            )
        return VideoFeatures(
            video_id=video_id,
            features=features,
            indices=indices,
            timestamps=timestamps,
            fps=float(info.get("fps") or 0.0),
            source=info.get("source"),
        )

    def failures(self) -> list[dict[str, Any]]:
        """Failed videos from every failures file, merged, latest line per id, sorted by id.

        A video that is done now (a later run succeeded) is not listed.
        """
        latest: dict[str, dict[str, Any]] = {}
        files = sorted(p for p in self.root.glob("failures*.jsonl") if p.is_file())
        for path in files:
            for record in _read_jsonl(path):
                video_id = record.get("video_id")
                if isinstance(video_id, str):
                    latest[video_id] = record
        return [latest[key] for key in sorted(latest) if not self.has(key)]


def _scan(root: Path) -> Iterator[os.DirEntry]:
    try:
        with os.scandir(root) as entries:
            yield from entries
    except FileNotFoundError:
        return


def _read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Parsed lines of a JSON-lines file; a torn line (killed writer) is skipped."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            yield record


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise S2VTError(f"cannot read feature store meta {path}: {error}") from None
    if not isinstance(data, dict):
        raise S2VTError(f"feature store meta {path} is not a JSON object")
    return data
