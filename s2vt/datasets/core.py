"""The canonical annotation form every loader returns, and helpers the loaders share.

Video ids and file names in annotation files are data, not trusted paths:

- A clip is looked up by ``safe_filename(video_id)`` plus a video extension inside the
  clip folders the loader searches, so an id like ``../../etc/passwd`` can never point
  outside them.
- An explicit ``file`` field (MSR-VTT layout, written by ``s2vt synth``) must be a relative
  path without ``..`` parts. An absolute path or one with ``..`` is *refused*: the clip is
  treated as missing and a warning names the video. The check is lexical, so a clip folder
  that is a symlink to a big disk keeps working.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Protocol

from s2vt.errors import S2VTError
from s2vt.fileio import safe_filename

log = logging.getLogger(__name__)

# Same list as s2vt.video.VIDEO_EXTENSIONS; repeated here so loading annotations never
# imports the decoding module (and decord) just to know file suffixes.
CLIP_EXTENSIONS: tuple[str, ...] = (
    ".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp",
)

# Every benchmark spells its splits differently; one vocabulary downstream.
SPLIT_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "valid": "val",
    "validate": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
    "testing": "test",
    "public_test": "test",
    "test_novel": "test_novel",
}


def normalize_split(name: str) -> str:
    """Map a benchmark's split name to ``train`` / ``val`` / ``test`` (others: lowercased)."""
    key = str(name).strip().lower()
    return SPLIT_ALIASES.get(key, key)


def normalize_caption(text: str) -> str:
    """The one caption clean-up shared by all datasets: strip and collapse whitespace.

    Lowercasing and punctuation removal belong to the tokenizer (``s2vt.text``), so the
    references keep their original spelling for the official metric scripts.
    """
    return " ".join(str(text).split())


@dataclass(frozen=True)
class Video:
    """One clip: its id, resolved file path (None when unknown) and split.

    ``attributes`` holds the synthetic ground truth (``{"objects": [...], "background":
    ...}``) or, for real benchmarks, small metadata from the annotation file (category,
    url, start/end times, MSVD's ``vidN`` alias).
    """

    video_id: str
    path: Path | None
    split: str
    attributes: dict | None = None


@dataclass(frozen=True)
class Caption:
    """One reference sentence of one clip."""

    video_id: str
    text: str


class ExtraScorer(Protocol):
    """Scores a benchmark offers beyond the caption metrics (e.g. the synthetic benchmark's
    attribute accuracy). A loader that knows its data's ground truth attaches one to the
    annotations it returns; evaluation asks for it without knowing the benchmark."""

    def scores(self, predictions: Mapping[str, str]) -> dict[str, float]:
        """Score name -> value over the predicted videos (empty when none can be scored)."""
        ...

    def checks(self, video_id: str, caption: str) -> dict[str, tuple[bool, str]]:
        """Per-video right/wrong labels for the report, e.g. ``{"motion": (False, "...")}``."""
        ...


@dataclass
class Annotations:
    """Videos and their reference captions, in the form every stage consumes.

    Attributes:
        videos: the clips, in annotation-file order.
        captions: all references, in file order.
        missing: ids of clips whose video file was not found (skipped from ``videos``
            unless the loader was asked to keep them).
        source: the annotation file or folder this came from (for messages).
        clip_dirs: the folders searched for clip files.
        missing_splits: split of each missing id, so ``split()`` can filter ``missing``.
        scorer: the benchmark's extra scores, if its loader offers any (see
            :class:`ExtraScorer`); kept by ``split()``.
    """

    videos: list[Video]
    captions: list[Caption]
    missing: list[str] = field(default_factory=list)
    source: str = ""
    clip_dirs: list[Path] = field(default_factory=list)
    missing_splits: dict[str, str] = field(default_factory=dict, repr=False)
    scorer: ExtraScorer | None = field(default=None, repr=False, compare=False)

    def splits(self) -> list[str]:
        """Split names present, in the canonical order train, val, test, then the rest."""
        order = {"train": 0, "val": 1, "test": 2, "test_novel": 3}
        names = {video.split for video in self.videos}
        return sorted(names, key=lambda name: (order.get(name, 99), name))

    def split(self, name: str) -> Annotations:
        """The videos and captions of one split (``validate`` is accepted for ``val``).

        Raises:
            S2VTError: the split is unknown or has no videos; the message lists the splits.
        """
        wanted = normalize_split(name)
        videos = [video for video in self.videos if video.split == wanted]
        if not videos:
            available = ", ".join(self.splits()) or "none"
            where = f" in {self.source}" if self.source else ""
            raise S2VTError(f"split '{name}' has no videos{where} (available splits: {available})")
        ids = {video.video_id for video in videos}
        missing = [vid for vid in self.missing if self.missing_splits.get(vid) == wanted]
        return Annotations(
            videos=videos,
            captions=[caption for caption in self.captions if caption.video_id in ids],
            missing=missing,
            source=self.source,
            clip_dirs=list(self.clip_dirs),
            missing_splits={vid: wanted for vid in missing},
            scorer=self.scorer,
        )

    def references(self) -> dict[str, list[str]]:
        """video_id -> its reference captions (every video, even one without captions)."""
        refs: dict[str, list[str]] = {video.video_id: [] for video in self.videos}
        for caption in self.captions:
            if caption.video_id in refs:
                refs[caption.video_id].append(caption.text)
        return refs

    def aliases(self) -> dict[str, str]:
        """Other names of videos -> their video id (e.g. MSVD's ``vid1301`` -> its clip key),
        so predictions keyed by the other naming can still be matched."""
        names: dict[str, str] = {}
        for video in self.videos:
            for alias in (video.attributes or {}).get("aliases", ()):
                names.setdefault(str(alias), video.video_id)
        return names

    def video_paths(self) -> dict[str, Path]:
        """video_id -> clip path for every video, for the stages that decode clips.

        Raises:
            S2VTError: some videos have no known file (e.g. only the annotation file was
                given); the message says where clips were looked for.
        """
        unknown = [video.video_id for video in self.videos if video.path is None]
        if unknown:
            searched = ", ".join(str(folder) for folder in self.clip_dirs) or "nowhere"
            raise S2VTError(
                f"{len(unknown)} video(s) of {self.source or 'the annotations'} have no clip "
                f"file (first: '{unknown[0]}'); looked in: {searched}"
            )
        return {video.video_id: video.path for video in self.videos if video.path is not None}


def is_safe_relative(name: str) -> bool:
    """True for a relative path with no ``..`` part (POSIX or Windows spelling)."""
    if not name or name.startswith(("/", "\\")):
        return False
    for flavour in (PurePosixPath, PureWindowsPath):
        pure = flavour(name)
        if pure.is_absolute() or pure.drive or ".." in pure.parts:
            return False
    return True


class ClipIndex:
    """Clip files found in a list of folders, looked up by video id.

    Folders are scanned once (one ``os.scandir`` each, not one ``stat`` per video), and the
    first folder that has a clip wins.

    Args:
        folders: candidate folders, in priority order; those that do not exist are ignored.
    """

    def __init__(self, folders: Iterable[Path]) -> None:
        self.folders: list[Path] = []
        self._by_stem: dict[str, Path] = {}
        seen: set[Path] = set()
        for folder in folders:
            folder = Path(folder)
            key = Path(os.path.abspath(folder))
            if key in seen or not folder.is_dir():
                continue
            seen.add(key)
            self.folders.append(folder)
            with os.scandir(folder) as entries:
                for entry in sorted(entries, key=lambda e: e.name):
                    stem, suffix = os.path.splitext(entry.name)
                    if suffix.lower() in CLIP_EXTENSIONS and entry.is_file():
                        self._by_stem.setdefault(stem, Path(entry.path))

    def __len__(self) -> int:
        return len(self._by_stem)

    def find(self, video_id: str) -> Path | None:
        """The clip file named after ``video_id`` (through ``safe_filename``), if any."""
        try:
            return self._by_stem.get(safe_filename(video_id))
        except ValueError:
            return None


def candidate_folders(bases: list[Path], subdirs: tuple[str, ...]) -> list[Path]:
    """Clip folders to search: each base's usual subfolders, then any other direct subfolder.

    The fallback finds clips in a folder with an unusual name (``my_clips/``) without a flag;
    the usual names come first so that they win when a clip exists twice.
    """
    folders = [base / sub if sub else base for base in bases for sub in subdirs]
    for base in bases:
        if base.is_dir():
            folders.extend(sorted(p for p in base.iterdir()
                                  if p.is_dir() and not p.name.startswith(".")))
    return folders


def resolve_file_field(root: Path, name: str, video_id: str) -> Path | None:
    """Resolve an annotation's explicit relative ``file`` field under ``root``.

    Returns None (with a warning) for an absolute path or one with ``..``: such a clip is
    refused rather than read from outside the dataset folder.
    """
    if not is_safe_relative(name):
        log.warning("video '%s': refusing clip path '%s' (absolute or contains '..')",
                    video_id, name)
        return None
    path = root / PurePosixPath(name.replace("\\", "/"))
    return path if path.is_file() else None


@dataclass
class RawVideo:
    """A loader's view of one clip before clip lookup."""

    video_id: str
    split: str
    attributes: dict | None = None
    file: str | None = None  # explicit relative path from the annotation file


def assemble(
    raw_videos: list[RawVideo],
    raw_captions: Iterable[tuple[str, str]],
    *,
    index: ClipIndex,
    file_root: Path,
    source: Path,
    keep_missing: bool,
) -> Annotations:
    """Attach clip paths, normalise captions and drop (or keep) clips with no file.

    When no clip at all is found (only the annotation file is present, as for scoring),
    every video keeps ``path=None`` and nothing counts as missing.

    Args:
        raw_videos: the clips in file order (duplicates: the first one wins).
        raw_captions: (video_id, text) pairs; captions of unknown ids are dropped.
        index: clip files found in the dataset's usual folders.
        file_root: folder that explicit ``file`` fields are relative to.
        source: the annotation file or folder, for messages.
        keep_missing: keep clips with no file (``path=None``) instead of dropping them.
    """
    unique: dict[str, RawVideo] = {}
    for raw in raw_videos:
        unique.setdefault(raw.video_id, raw)
    paths: dict[str, Path | None] = {}
    for vid, raw in unique.items():
        path = resolve_file_field(file_root, raw.file, vid) if raw.file else None
        paths[vid] = path if path is not None else index.find(vid)
    any_found = any(path is not None for path in paths.values())
    videos: list[Video] = []
    missing: list[str] = []
    missing_splits: dict[str, str] = {}
    for vid, raw in unique.items():
        path = paths[vid]
        if path is None and any_found:
            missing.append(vid)
            missing_splits[vid] = raw.split
            if not keep_missing:
                continue
        videos.append(Video(vid, path, raw.split, raw.attributes))
    if missing:
        log.warning("%s: %d of %d clip files not found (%s); %s", source, len(missing),
                    len(unique), ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else ""),
                    "kept without a path" if keep_missing else "skipped")
    elif not any_found and unique:
        log.info("%s: no clip files found (looked in %s); videos have no path, which is "
                 "enough for scoring", source,
                 ", ".join(str(f) for f in index.folders) or "no existing folder")
    kept = {video.video_id for video in videos}
    captions = []
    for vid, text in raw_captions:
        text = normalize_caption(text)
        if text and vid in kept:
            captions.append(Caption(vid, text))
    return Annotations(
        videos=videos,
        captions=captions,
        missing=missing,
        source=str(source),
        clip_dirs=index.folders,
        missing_splits=missing_splits,
    )
