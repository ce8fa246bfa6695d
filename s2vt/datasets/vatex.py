"""VATEX (Wang et al. 2019): JSON lists of ``{"videoID", "enCap": [...], "chCap": [...]}``.

Files (in the dataset folder, or pass one file directly; the split comes from the name)::

    vatex_training_v1.0.json                    train
    vatex_validation_v1.0.json                  val
    vatex_public_test_english_v1.1.json         test   (English captions only)
    vatex_private_test_without_annotations.json private_test (no captions)
    videos/<videoID>.mp4                        e.g. Ptf_2VRj-V0_000122_000132.mp4

Only the English captions (``enCap``) are used; ``chCap`` is ignored.
"""

from __future__ import annotations

from pathlib import Path

from s2vt.datasets.core import Annotations, ClipIndex, RawVideo, assemble, candidate_folders
from s2vt.datasets.msrvtt import read_json, sniff_json
from s2vt.errors import S2VTError

CLIP_SUBDIRS = ("videos", "vatex_videos", "clips", "train", "val", "public_test", "test", "")
# Name fragment -> split, checked in this order ("private_test" before "test").
SPLIT_BY_NAME: tuple[tuple[str, str], ...] = (
    ("train", "train"), ("valid", "val"), ("val", "val"), ("private", "private_test"),
    ("test", "test"),
)


def split_from_name(path: Path) -> str:
    """Split of a VATEX file from its name; a file with another name counts as ``test``."""
    name = path.name.lower()
    for fragment, split in SPLIT_BY_NAME:
        if fragment in name:
            return split
    return "test"


def annotation_files(path: Path) -> list[Path]:
    """The JSON-list files of a folder (``vatex*.json`` first), or the file itself."""
    if path.is_file():
        return [path] if path.suffix.lower() == ".json" and sniff_json(path) == "[" else []
    files = sorted(path.glob("*.json"))
    return [p for p in files if sniff_json(p) == "["]


def detect(path: Path) -> bool:
    """True for a VATEX-style JSON list file or a folder holding one."""
    return bool(annotation_files(path))


def load(path: Path, *, video_root: Path | None = None, keep_missing: bool = False) -> Annotations:
    """Load VATEX from its folder or one of its JSON files (English captions only)."""
    files = annotation_files(path)
    if not files:
        raise S2VTError(f"no VATEX annotation JSON in {path} (expected e.g. "
                        "vatex_training_v1.0.json, a list of {'videoID', 'enCap'})")
    raw_videos: list[RawVideo] = []
    raw_captions: list[tuple[str, str]] = []
    for file in files:
        split = split_from_name(file)
        data = read_json(file)
        if not isinstance(data, list):
            raise S2VTError(f"{file} is not a VATEX annotation list")
        for position, entry in enumerate(data):
            if not isinstance(entry, dict) or "videoID" not in entry:
                raise S2VTError(f"{file}: entry {position} has no 'videoID'")
            video_id = str(entry["videoID"])
            raw_videos.append(RawVideo(video_id=video_id, split=split))
            captions = entry.get("enCap") or []
            if isinstance(captions, str):
                captions = [captions]
            raw_captions.extend((video_id, str(text)) for text in captions)
    root = files[0].parent
    folders = candidate_folders([video_root if video_root is not None else root], CLIP_SUBDIRS)
    return assemble(raw_videos, raw_captions, index=ClipIndex(folders), file_root=root,
                    source=path, keep_missing=keep_missing)
