"""MSVD (YouTube2Text, Chen & Dolan 2011) with the standard 1200 / 100 / 670 split.

Files (in the dataset folder, or pass one annotation file directly)::

    AllVideoDescriptions.txt          "# ..." comment lines, then "<clip key> <description>"
    MSR Video Description Corpus.csv  VideoID,Start,End,WorkerID,Source,AnnotationTime,
                                      Language,Description (English rows are used)
    youtube_mapping.txt               "<clip key> vid<N>" (N = 1..1970)
    YouTubeClips/<clip key>.avi

The clip key is ``<YouTube id>_<start>_<end>``; YouTube ids contain ``_`` and ``-``, so a key
is split from the right. The key is the video id (it names the clip file in both annotation
files); ``vid<N>`` is kept as an alias in ``attributes["aliases"]``. When both annotation
files are present, ``AllVideoDescriptions.txt`` (the cleaned English list) is used.

Split: vid1-1200 train, vid1201-1300 val, vid1301-1970 test. Clips that the mapping does not
list (the CSV has ~2089 clips, the standard set 1970) are left out. Without the mapping the
split follows the order in which clips first appear in the annotation file, with a warning.
"""

from __future__ import annotations

import csv
import logging
import re
from pathlib import Path

from s2vt.datasets.core import Annotations, ClipIndex, RawVideo, assemble, candidate_folders
from s2vt.errors import S2VTError

log = logging.getLogger(__name__)

DESCRIPTIONS_TXT = "AllVideoDescriptions.txt"
CORPUS_CSV = "MSR Video Description Corpus.csv"
MAPPING_TXT = "youtube_mapping.txt"
CSV_COLUMNS = ("VideoID", "Start", "End", "Language", "Description")
CLIP_SUBDIRS = ("YouTubeClips", "youtube_clips", "YouTubeClips/YouTubeClips", "videos", "clips",
                "")
# Standard split (Venugopalan et al. 2015, after Guadarrama et al. 2013): vid index ranges.
SPLIT_BOUNDS: tuple[tuple[int, str], ...] = ((1200, "train"), (1300, "val"), (1970, "test"))
_VID = re.compile(r"^vid(\d+)$")


def split_of_index(number: int) -> str | None:
    """Standard split of clip ``vid<number>`` (None beyond the 1970 standard clips)."""
    for bound, name in SPLIT_BOUNDS:
        if number <= bound:
            return name
    return None


def parse_key(key: str) -> tuple[str, str, str] | None:
    """``"-_hbPLsZvvo_5_8"`` -> (YouTube id, start, end); None if not in that form."""
    parts = key.rsplit("_", 2)
    if len(parts) != 3 or not parts[0]:
        return None
    return parts[0], parts[1], parts[2]


def _csv_header(path: Path) -> list[str]:
    try:
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
            return next(csv.reader(handle), [])
    except OSError:
        return []


def is_corpus_csv(path: Path) -> bool:
    """A CSV whose header has MSVD's VideoID / Start / End / Language / Description columns."""
    header = {column.strip() for column in _csv_header(path)}
    return path.suffix.lower() == ".csv" and all(column in header for column in CSV_COLUMNS)


def is_descriptions_txt(path: Path) -> bool:
    return path.suffix.lower() == ".txt" and path.name.lower().startswith("allvideodescriptions")


def annotation_file(path: Path) -> Path | None:
    """The annotation file to read: the given file, or the folder's txt (preferred) or CSV."""
    if path.is_file():
        return path if is_descriptions_txt(path) or is_corpus_csv(path) else None
    if not path.is_dir():
        return None
    txt = [p for p in sorted(path.glob("*.txt")) if is_descriptions_txt(p)]
    if txt:
        return txt[0]
    if (path / CORPUS_CSV).is_file() and is_corpus_csv(path / CORPUS_CSV):
        return path / CORPUS_CSV
    csvs = [p for p in sorted(path.glob("*.csv")) if is_corpus_csv(p)]
    return csvs[0] if csvs else None


def detect(path: Path) -> bool:
    """True for MSVD's description txt / corpus CSV or a folder holding one."""
    return annotation_file(path) is not None


def read_descriptions_txt(path: Path) -> list[tuple[str, str]]:
    """(clip key, description) pairs of ``AllVideoDescriptions.txt``; '#' lines are comments."""
    pairs = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 1)  # a space or a tab after the clip name
            if len(parts) == 2:
                pairs.append((parts[0], parts[1]))
    return pairs


def read_corpus_csv(path: Path) -> list[tuple[str, str]]:
    """(clip key, description) pairs of the English rows of the MSR Video Description CSV."""
    pairs = []
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        skipped = 0
        for row in reader:
            if (row.get("Language") or "").strip().lower() != "english":
                skipped += 1
                continue
            video, start, end = ((row.get(col) or "").strip() for col in ("VideoID", "Start",
                                                                          "End"))
            text = row.get("Description") or ""
            if video and text.strip():
                pairs.append((f"{video}_{start}_{end}", text))
    log.debug("%s: %d non-English rows skipped", path, skipped)
    return pairs


def read_mapping(path: Path) -> dict[str, int]:
    """clip key -> N from ``youtube_mapping.txt`` lines "<key> vid<N>"."""
    mapping: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            parts = line.split()
            if not parts:
                continue
            match = _VID.match(parts[-1]) if len(parts) == 2 else None
            if match is None:
                raise S2VTError(f"{path}:{number}: expected '<clip key> vid<N>', got "
                                f"'{line.strip()[:80]}'")
            mapping[parts[0]] = int(match.group(1))
    return mapping


def load(path: Path, *, video_root: Path | None = None, keep_missing: bool = False) -> Annotations:
    """Load MSVD from its folder or one of its annotation files (see the module docstring)."""
    file = annotation_file(path)
    if file is None:
        raise S2VTError(f"no MSVD annotation file in {path} (expected {DESCRIPTIONS_TXT} or "
                        f"'{CORPUS_CSV}')")
    root = file.parent
    pairs = read_descriptions_txt(file) if is_descriptions_txt(file) else read_corpus_csv(file)
    first_seen: dict[str, int] = {}
    for key, _ in pairs:
        first_seen.setdefault(key, len(first_seen) + 1)
    mapping_path = root / MAPPING_TXT
    if mapping_path.is_file():
        numbers = read_mapping(mapping_path)
        outside = sum(1 for key in first_seen if key not in numbers)
        if outside:
            log.info("%s: %d clips are not in %s (not in the standard split); left out",
                     file, outside, MAPPING_TXT)
    else:
        log.warning("%s: no %s next to it; the standard split is approximated by the order of "
                    "the clips in the file", file, MAPPING_TXT)
        numbers = first_seen
    raw_videos = []
    for key in sorted((k for k in first_seen if k in numbers), key=lambda k: numbers[k]):
        split = split_of_index(numbers[key])
        if split is None:
            continue
        attributes: dict = {"aliases": [f"vid{numbers[key]}"]}
        parsed = parse_key(key)
        if parsed is not None:
            attributes.update(youtube_id=parsed[0], start=parsed[1], end=parsed[2])
        raw_videos.append(RawVideo(video_id=key, split=split, attributes=attributes))
    folders = candidate_folders([video_root if video_root is not None else root], CLIP_SUBDIRS)
    return assemble(raw_videos, pairs, index=ClipIndex(folders), file_root=root, source=path,
                    keep_missing=keep_missing)
