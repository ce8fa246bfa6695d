"""Your own data set: a plain captions file, CSV or JSON Lines, one row per caption.

CSV (``.csv``; a header row is required, column names are case-insensitive, any other
column is ignored)::

    video,caption,split
    clips/dog.mp4,a dog runs on the beach,train
    clips/dog.mp4,"a dog, wet, runs",train
    cat,a cat sleeps,test

JSON Lines (``.jsonl`` / ``.ndjson``, or a ``.json`` file whose first line is such an object;
``caption`` may also be a list of captions)::

    {"video": "clips/dog.mp4", "caption": "a dog runs on the beach", "split": "train"}

``video`` is a path relative to the captions file (or absolute; Windows spellings with
``\\`` work), or a plain id (no folder, no video suffix) looked up as ``<id>.<ext>`` in the
file's folder and its ``videos/`` and ``clips/`` subfolders. A path that does not exist is
looked up by its file name in those same folders, so a file written on another machine
still finds clips copied next to it. ``video_root`` replaces the file's folder for both.

Video ids are the file stems (``dog``); when two files share a stem their ids are their file
names (``flower.mp4``, ``flower.webm``), or their paths relative to the captions file when
the names collide too (``a/dog.mp4``, ``b/dog.mp4``), so that no video is lost.

Without a ``split`` column (or where its cell is empty), each video is placed by a hash of
its id: 80 % train, 10 % val, 10 % test (:data:`SPLIT_FRACTIONS`). The hash keeps a video's
split when the file grows, and all captions of a video stay in one split. With 3 or more
videos, val and test get at least one video each.

Rows that cannot be used (no video, an empty caption, an unknown split name, a video
already placed in another split, a JSON line that is not an object) are skipped, counted
and listed (:attr:`CaptionFileAnnotations.bad_rows`, and a warning); a file with no usable
row at all is one :class:`~s2vt.errors.S2VTError`. Byte-order marks, CRLF line ends, quoted
commas and newlines, blank lines, UTF-16 (Excel's "Unicode text") and cp1252 files load.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

from s2vt.datasets.core import (
    CLIP_EXTENSIONS,
    Annotations,
    ClipIndex,
    RawVideo,
    assemble,
    candidate_folders,
    normalize_caption,
    normalize_split,
)
from s2vt.errors import S2VTError

log = logging.getLogger(__name__)

CSV_SUFFIXES = (".csv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# Names a folder's captions file is found by (then any CSV/JSONL file with the columns).
KNOWN_FILES = ("captions.csv", "captions.jsonl", "annotations.csv", "annotations.jsonl")
# Column names accepted for each field (lowercase); the first is the documented one.
VIDEO_COLUMNS = ("video", "video_id", "path", "file")
CAPTION_COLUMNS = ("caption", "sentence", "text")
SPLIT_COLUMNS = ("split",)
SPLITS = ("train", "val", "test")
# Deterministic split of videos when the file names none (fractions of the videos).
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
CLIP_SUBDIRS = ("", "videos", "clips")
_DELIMITERS = (",", ";", "\t")
_SHOWN_BAD_ROWS = 10


@dataclass(frozen=True)
class BadRow:
    """One row that was skipped: its line number (1 = header), the reason, the video cell."""

    line: int
    reason: str
    video: str = ""

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass
class CaptionFileAnnotations(Annotations):
    """:class:`Annotations` plus what loading a captions file skipped or decided.

    Attributes:
        bad_rows: every skipped row, in file order.
        rows: data rows read (blank lines not counted).
        auto_split: ids of videos whose split was assigned by hash (no split given).
    """

    bad_rows: list[BadRow] = field(default_factory=list)
    rows: int = 0
    auto_split: list[str] = field(default_factory=list)


@dataclass
class _Row:
    line: int
    video: str
    caption: str
    split: str  # "" = not given


# ------------------------------------------------------------------------ reading text

def _read_text(path: Path) -> str:
    """The file as text: UTF-8 (BOM or not), UTF-16 with a BOM, else cp1252 with a warning."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise S2VTError(f"cannot read captions file {path}: {error.strerror}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        log.warning("%s is not UTF-8; reading it as Windows-1252 (save it as UTF-8 to be "
                    "sure of non-English letters)", path)
        return data.decode("cp1252", errors="replace")


def _head(path: Path, limit: int = 65536) -> str:
    """The first bytes of a file as text, for format detection (never raises)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit)
    except OSError:
        return ""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")


def _columns(header: list[str]) -> dict[str, int] | None:
    """Field -> column index from a header row, or None without video and caption columns."""
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    found: dict[str, int] = {}
    for key, options in (("video", VIDEO_COLUMNS), ("caption", CAPTION_COLUMNS),
                         ("split", SPLIT_COLUMNS)):
        for option in options:
            if option in names:
                found[key] = names.index(option)
                break
    return found if "video" in found and "caption" in found else None


def _csv_dialect(text: str) -> str | None:
    """The delimiter whose header row has video and caption columns, or None."""
    first = text.lstrip("\r\n").splitlines()[0] if text.strip() else ""
    for delimiter in _DELIMITERS:
        header = next(csv.reader([first], delimiter=delimiter), [])
        if _columns(header) is not None:
            return delimiter
    return None


def _first_json_object(text: str) -> dict | None:
    for line in text.splitlines():
        if line.strip():
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                return None
            return value if isinstance(value, dict) else None
    return None


def _is_jsonl(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix not in JSONL_SUFFIXES and suffix != ".json":
        return False
    first = _first_json_object(_head(path))
    # MSR-VTT's layout is one JSON object with a "videos" list; ours is one per line.
    return first is not None and "videos" not in first and "video" in first and \
        "caption" in first


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() in CSV_SUFFIXES and _csv_dialect(_head(path)) is not None


def annotation_file(path: Path) -> Path | None:
    """The captions file to read: the given file, or the folder's (known names first)."""
    if path.is_file():
        return path if _is_csv(path) or _is_jsonl(path) else None
    if not path.is_dir():
        return None
    for name in KNOWN_FILES:
        if (path / name).is_file() and annotation_file(path / name) is not None:
            return path / name
    for candidate in sorted(path.iterdir()):
        if candidate.suffix.lower() in CSV_SUFFIXES + JSONL_SUFFIXES and candidate.is_file() \
                and annotation_file(candidate) is not None:
            return candidate
    return None


def detect(path: Path) -> bool:
    """True for a captions CSV / JSON Lines file (or a folder holding one)."""
    return annotation_file(path) is not None


def _csv_rows(text: str, path: Path) -> list[_Row]:
    delimiter = _csv_dialect(text)
    if delimiter is None:
        raise S2VTError(f"{path}: the first row must be a header naming a 'video' and a "
                        "'caption' column (and optionally 'split')")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = _columns(next(reader))
    assert columns is not None  # _csv_dialect checked the header
    rows: list[_Row] = []
    width = max(columns.values()) + 1
    line = 1
    for record in reader:
        start, line = line + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue  # a blank line, or one of only delimiters
        record = record + [""] * (width - len(record))
        split = record[columns["split"]] if "split" in columns else ""
        rows.append(_Row(start, record[columns["video"]], record[columns["caption"]], split))
    return rows


def _jsonl_rows(text: str, bad: list[BadRow]) -> list[_Row]:
    rows: list[_Row] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as error:
            bad.append(BadRow(number, f"not valid JSON ({error.msg})"))
            continue
        if not isinstance(entry, dict):
            bad.append(BadRow(number, "not a JSON object"))
            continue
        video = entry.get("video")
        video = "" if video is None else str(video)
        split = entry.get("split")
        split = "" if split is None else str(split)
        captions = entry.get("caption")
        if isinstance(captions, list):
            if not captions:
                bad.append(BadRow(number, "empty caption list", video))
            for caption in captions:
                rows.append(_Row(number, video, "" if caption is None else str(caption), split))
        else:
            rows.append(_Row(number, video, "" if captions is None else str(captions), split))
    return rows


# ------------------------------------------------------------------------ videos

def _is_path(value: str) -> bool:
    """A path (has a folder part or a video suffix) rather than a plain id."""
    if "/" in value or "\\" in value:
        return True
    return os.path.splitext(value)[1].lower() in CLIP_EXTENSIONS


def _as_path(value: str, root: Path) -> Path:
    """``value`` as a local path: absolute as written, relative to ``root`` otherwise."""
    if PureWindowsPath(value).drive or value.startswith("\\\\"):
        return Path(value)  # a Windows absolute path; only its file name can help here
    posix = value.replace("\\", "/")
    path = Path(posix)
    return path if path.is_absolute() else root / PurePosixPath(posix)


def _file_name(value: str) -> str:
    return PureWindowsPath(value).name if "\\" in value else PurePosixPath(value).name


class _Clips:
    """Resolves the ``video`` cells of one file to (key, clip path or None)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders = candidate_folders([root], CLIP_SUBDIRS)[: len(CLIP_SUBDIRS)]
        self.index = ClipIndex(self.folders)
        self._by_name: dict[str, Path] | None = None

    def _find_name(self, name: str) -> Path | None:
        if self._by_name is None:
            self._by_name = {}
            for folder in self.index.folders:
                for entry in sorted(folder.iterdir()):
                    if entry.is_file():
                        self._by_name.setdefault(entry.name, entry)
        return self._by_name.get(name)

    def resolve(self, value: str) -> tuple[str, Path | None]:
        """-> (a key naming the video within the file, its clip file or None)."""
        if not _is_path(value):
            clip = self.index.find(value)
        else:
            path = _as_path(value, self.root)
            clip = path if path.is_file() else self._find_name(_file_name(value))
            if clip is None:
                return os.path.normpath(str(path)), None
        # Keyed by the clip file, so "dog" and "clips/dog.mp4" are one video.
        return (os.path.normpath(str(clip)) if clip is not None else value), clip


def _video_ids(keys: list[str], values: dict[str, str], root: Path) -> dict[str, str]:
    """key -> video id: the file stem; when stems collide, the file name, or the path
    relative to ``root`` when file names collide too."""
    stems: dict[str, list[str]] = {}
    for key in keys:
        value = values[key]
        stem = os.path.splitext(_file_name(value))[0] if _is_path(value) else value
        stems.setdefault(stem, []).append(key)
    ids: dict[str, str] = {}
    for stem, group in stems.items():
        if len(group) == 1:
            ids[group[0]] = stem
            continue
        names = [_file_name(values[key]) for key in group]
        if len(set(names)) == len(group):  # flower.mp4 and flower.webm
            ids.update(zip(group, names, strict=True))
            continue
        for key in group:
            written = values[key].replace("\\", "/")
            try:
                relative = (written if key == values[key]  # an id with no clip found
                            else os.path.relpath(key, root).replace(os.sep, "/"))
            except ValueError:  # another drive (Windows)
                relative = written
            ids[key] = written if relative.startswith("..") else relative
    return ids


# ------------------------------------------------------------------------ splits

def _hash_fraction(video_id: str) -> float:
    digest = hashlib.sha256(video_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(video_ids: list[str]) -> dict[str, str]:
    """Deterministic train/val/test split of videos by a hash of their ids.

    Args:
        video_ids: the videos to place (order does not matter).

    Returns:
        id -> split, :data:`SPLIT_FRACTIONS` of the videos in expectation; with 3 or more
        videos val and test each get at least one (taken from train, nearest the border).
    """
    bounds = []
    total = 0.0
    for name in SPLITS:
        total += SPLIT_FRACTIONS[name]
        bounds.append((total, name))
    fraction = {vid: _hash_fraction(vid) for vid in video_ids}
    splits = {vid: next((name for bound, name in bounds if u < bound), SPLITS[-1])
              for vid, u in fraction.items()}
    if len(video_ids) >= 3:
        for wanted in ("val", "test"):
            if wanted in splits.values():
                continue
            donors = [vid for vid, name in splits.items()
                      if name == "train" or list(splits.values()).count(name) > 1]
            donors = [vid for vid in donors if splits[vid] != wanted]
            # The train video nearest the train/val border moves: the least arbitrary pick.
            splits[max(donors, key=lambda vid: (fraction[vid], vid))] = wanted
    return splits


# ------------------------------------------------------------------------ loading

def load(path: Path, *, video_root: Path | None = None,
         keep_missing: bool = False) -> CaptionFileAnnotations:
    """Load a captions CSV / JSON Lines file (see the module docstring).

    Args:
        path: the captions file, or a folder holding one.
        video_root: folder that relative paths and ids are resolved in (default: the
            captions file's folder).
        keep_missing: keep videos whose clip file is missing (``path=None``).

    Returns:
        :class:`CaptionFileAnnotations`; skipped rows are in ``bad_rows``.

    Raises:
        S2VTError: no captions file, no header with video and caption columns, or no usable
            row at all.
    """
    path = Path(path)
    file = annotation_file(path) if path.is_dir() else path
    if file is None:
        raise S2VTError(f"no captions file in {path} (expected {KNOWN_FILES[0]} with a header "
                        "'video,caption[,split]', or a .jsonl file)")
    text = _read_text(file)
    bad: list[BadRow] = []
    jsonl = file.suffix.lower() in JSONL_SUFFIXES or (file.suffix.lower() == ".json"
                                                       and _is_jsonl(file))
    rows = _jsonl_rows(text, bad) if jsonl else _csv_rows(text, file)
    total_rows = len(rows) + sum(1 for b in bad)
    root = Path(video_root) if video_root is not None else file.parent
    clips = _Clips(root)

    keys: dict[str, str] = {}  # cell value -> key (one resolution per distinct cell)
    paths: dict[str, Path | None] = {}
    values: dict[str, str] = {}
    split_of: dict[str, str] = {}
    order: list[str] = []
    captions: list[tuple[str, str]] = []
    for row in rows:
        value = row.video.strip()
        if not value:
            bad.append(BadRow(row.line, "no video"))
            continue
        caption = normalize_caption(row.caption)
        if not caption:
            bad.append(BadRow(row.line, "empty caption", value))
            continue
        split = ""
        if row.split.strip():
            split = normalize_split(row.split)
            if split not in SPLITS:
                bad.append(BadRow(row.line, f"unknown split '{row.split.strip()}' (use "
                                            f"{', '.join(SPLITS)})", value))
                continue
        if value not in keys:
            key, clip = clips.resolve(value)
            keys[value] = key
            if key not in paths:
                paths[key], values[key] = clip, value
                order.append(key)
        key = keys[value]
        if split:
            placed = split_of.setdefault(key, split)
            if placed != split:
                bad.append(BadRow(row.line, f"video already in split '{placed}', not "
                                            f"'{split}'", value))
                continue
        captions.append((key, caption))

    bad.sort(key=lambda b: b.line)
    if not captions:
        shown = "; ".join(str(b) for b in bad[:3]) or "the file has no data rows"
        raise S2VTError(f"{file} has no usable row ({total_rows} row(s) read; {shown})")
    used = {key for key, _ in captions}
    order = [key for key in order if key in used]
    ids = _video_ids(order, values, root)
    unplaced = [ids[key] for key in order if key not in split_of]
    auto = assign_splits(unplaced) if unplaced else {}
    raw_videos = []
    for key in order:
        vid = ids[key]
        split = split_of.get(key) or auto[vid]
        raw_videos.append(RawVideo(video_id=vid, split=split, attributes={"source": values[key]}))
    if bad:
        shown = "; ".join(str(b) for b in bad[:_SHOWN_BAD_ROWS])
        more = f" (and {len(bad) - _SHOWN_BAD_ROWS} more)" if len(bad) > _SHOWN_BAD_ROWS else ""
        log.warning("%s: %d of %d rows skipped: %s%s", file, len(bad), total_rows, shown, more)
    if unplaced:
        log.info("%s: %d video(s) without a split placed by hash (%s)", file, len(unplaced),
                 " / ".join(f"{round(100 * SPLIT_FRACTIONS[s])}% {s}" for s in SPLITS))
    by_id = {ids[key]: paths[key] for key in order}
    base = assemble(raw_videos, [(ids[key], text) for key, text in captions],
                    index=_FixedIndex(by_id, clips.index.folders), file_root=root,
                    source=file, keep_missing=keep_missing)
    return CaptionFileAnnotations(
        videos=base.videos, captions=base.captions, missing=base.missing, source=base.source,
        clip_dirs=base.clip_dirs, missing_splits=base.missing_splits, bad_rows=bad,
        rows=total_rows, auto_split=unplaced,
    )


class _FixedIndex(ClipIndex):
    """A :class:`ClipIndex` whose lookups were already made (id -> path or None)."""

    def __init__(self, paths: dict[str, Path | None], folders: list[Path]) -> None:
        super().__init__([])
        self.folders = list(folders)
        self._paths = paths

    def __len__(self) -> int:
        return sum(path is not None for path in self._paths.values())

    def find(self, video_id: str) -> Path | None:
        return self._paths.get(video_id)
