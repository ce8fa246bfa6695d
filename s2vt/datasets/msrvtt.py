"""MSR-VTT (and the synthetic benchmark, which writes the same JSON layout).

Files: ``train_val_videodatainfo.json`` + ``test_videodatainfo.json`` (or the 2017
``videodatainfo_2017.json``, or any one JSON in this layout, such as ``s2vt synth``'s
``annotations.json``)::

    {"videos": [{"video_id": "video0", "split": "train", "category": 9, "url": ...,
                 "start time": 137.72, "end time": 149.44, "file": "videos/x.mp4"?}, ...],
     "sentences": [{"video_id": "video0", "caption": "...", "sen_id": 0}, ...]}

Clips ``video<N>.mp4`` are looked up in ``TrainValVideo/``, ``TestVideo/``, ``videos/``,
``videos/all/`` and the JSON's own folder, or taken from a relative ``file`` key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from s2vt.datasets.core import (
    Annotations,
    ClipIndex,
    RawVideo,
    assemble,
    candidate_folders,
    normalize_split,
)
from s2vt.errors import S2VTError

KNOWN_FILES = (
    "train_val_videodatainfo.json",
    "test_videodatainfo.json",
    "videodatainfo_2017.json",
    "annotations.json",
)
CLIP_SUBDIRS = (
    "TrainValVideo", "TestVideo", "train-video", "test-video", "videos", "videos/all",
    "video", "clips", "",
)
# Metadata worth keeping from real MSR-VTT video entries (the rest is bulky or redundant).
META_KEYS = ("category", "url", "start time", "end time")


def read_json(path: Path) -> Any:
    """Parse a JSON annotation file; a missing or malformed file is one S2VTError."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise S2VTError(f"annotation file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise S2VTError(f"annotation file {path} is not valid JSON: {error}") from None


def sniff_json(path: Path) -> str:
    """The first non-blank character of a JSON file ('{' or '[') without parsing it all."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read(4096).lstrip("\ufeff \t\r\n")[:1]
    except OSError:
        return ""


def annotation_files(path: Path) -> list[Path]:
    """The MSR-VTT-layout JSON files of a folder (known names first), or the file itself."""
    if path.is_file():
        return [path]
    known = [path / name for name in KNOWN_FILES if (path / name).is_file()]
    # The 2017 file is a superset of the 2016 pair; reading both would duplicate videos.
    if len(known) > 1 and (path / "videodatainfo_2017.json") in known:
        known = [p for p in known if p.name != "videodatainfo_2017.json"]
    if known:
        return known
    return [p for p in sorted(path.glob("*.json")) if looks_like_msrvtt(p)]


def looks_like_msrvtt(path: Path) -> bool:
    """A JSON object file that is not one of VATEX's lists (cheap: name + first char)."""
    return path.suffix.lower() == ".json" and sniff_json(path) == "{"


def detect(path: Path) -> bool:
    """True for an MSR-VTT-layout JSON file or a folder holding one."""
    if path.is_file():
        return looks_like_msrvtt(path)
    return path.is_dir() and bool(annotation_files(path))


def clip_folders(root: Path, video_root: Path | None) -> list[Path]:
    """Folders to look for clips in, most specific first."""
    bases = [video_root] if video_root is not None else [root]
    nested = root.name.lower() in ("annotation", "annotations", "annotation_files")
    if video_root is None and nested:
        bases.append(root.parent)  # MSRVTT/annotation/*.json next to MSRVTT/videos/
    return candidate_folders(bases, CLIP_SUBDIRS)


def load(path: Path, *, video_root: Path | None = None, keep_missing: bool = False) -> Annotations:
    """Load MSR-VTT-layout annotations from a JSON file or a folder of them.

    Args:
        path: a JSON file or the dataset folder.
        video_root: folder with the clips (default: the usual folders next to the JSON).
        keep_missing: keep clips whose file is missing (``path=None``) instead of skipping.
    """
    files = annotation_files(path)
    if not files:
        raise S2VTError(f"no MSR-VTT annotation JSON in {path} (expected one of: "
                        f"{', '.join(KNOWN_FILES)})")
    raw_videos: list[RawVideo] = []
    raw_captions: list[tuple[str, str]] = []
    for file in files:
        data = read_json(file)
        if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
            raise S2VTError(f"{file} is not in the MSR-VTT layout (needs a 'videos' list)")
        for position, entry in enumerate(data["videos"]):
            if not isinstance(entry, dict) or "video_id" not in entry:
                raise S2VTError(f"{file}: videos[{position}] has no 'video_id'")
            attributes = entry.get("attributes")
            if not isinstance(attributes, dict):
                attributes = {key: entry[key] for key in META_KEYS if key in entry} or None
            file_field = entry.get("file")
            raw_videos.append(RawVideo(
                video_id=str(entry["video_id"]),
                split=normalize_split(entry.get("split", "test")),
                attributes=attributes,
                file=str(file_field) if file_field else None,
            ))
        for position, entry in enumerate(data.get("sentences") or []):
            if not isinstance(entry, dict) or "video_id" not in entry or "caption" not in entry:
                raise S2VTError(f"{file}: sentences[{position}] needs 'video_id' and 'caption'")
            raw_captions.append((str(entry["video_id"]), str(entry["caption"])))
    root = files[0].parent
    index = ClipIndex(clip_folders(root, video_root))
    return assemble(raw_videos, raw_captions, index=index, file_root=root, source=path,
                    keep_missing=keep_missing)
