"""Which videos a run works on: a folder, list file, annotation JSON or file -> ids + paths.

Ids derived from paths are unique per file. A file's id is its stem (``clip.mp4`` ->
``clip``); only files whose stems collide get a longer id, the shortest that tells them
apart: first the path relative to the input without its suffix (``a/clip``, ``b/clip``),
then with it (``flower.mp4``, ``flower.webm``, for two encodings of one video in one
folder). Ids that were unique stay what they always were, so existing stores stay valid.

Sharding (``"I/N"``, I 1-based): the videos are sorted by id and shard I takes positions
``p`` with ``p % N == I - 1``. Every shard sees the same sorted list, so the N shards are
disjoint, cover everything, and each video is written by exactly one process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from s2vt.errors import ConfigError, S2VTError
from s2vt.video import VIDEO_EXTENSIONS

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoInput:
    """One video to work on.

    Attributes:
        video_id: the id (becomes the feature file's name, safely encoded).
        path: the video file; None when the annotation names a clip that is not on disk.
    """

    video_id: str
    path: Path | None


def parse_shard(shard: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``; I is 1-based and 1 <= I <= N.

    Raises:
        ConfigError: for anything else.
    """
    index_text, sep, count_text = str(shard).partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index, count = 0, 0
    if not sep or count < 1 or not 1 <= index <= count:
        raise ConfigError(f"shard must be I/N with 1 <= I <= N (e.g. 1/4), got {shard!r}")
    return index, count


def select_shard(inputs: list[VideoInput], shard: tuple[int, int] | None) -> list[VideoInput]:
    """Sort ``inputs`` by id, drop repeated ids, and keep shard I of N (or all)."""
    unique: dict[str, VideoInput] = {}
    for item in inputs:
        if item.video_id in unique:
            logger.warning("video id %r is listed twice; using %s", item.video_id,
                           unique[item.video_id].path)
            continue
        unique[item.video_id] = item
    ordered = [unique[key] for key in sorted(unique)]
    if shard is None:
        return ordered
    index, count = shard
    return [item for position, item in enumerate(ordered) if position % count == index - 1]


def _id_candidates(path: Path, base: Path) -> tuple[str, str, str]:
    """Ids for ``path``, shortest first: stem, relative path without suffix, with suffix."""
    try:
        relative = path.relative_to(base)
    except ValueError:
        relative = path
    return path.stem, relative.with_suffix("").as_posix(), relative.as_posix()


def ids_for_paths(paths: list[Path], base: Path) -> list[VideoInput]:
    """One input per path, with ids unique per file (see the module docstring).

    Args:
        paths: the video files; the same file listed twice keeps one id (and is read once).
        base: the folder ids are made relative to when stems collide.

    Returns:
        The inputs, in the order of ``paths``.
    """
    candidates = [_id_candidates(path, base) for path in paths]
    level = [0] * len(paths)
    while True:
        owners: dict[str, set[Path]] = {}
        for position, path in enumerate(paths):
            owners.setdefault(candidates[position][level[position]], set()).add(path)
        # Only files that share an id with another file take the next, longer form.
        clashing = [
            position for position, path in enumerate(paths)
            if len(owners[candidates[position][level[position]]]) > 1
            and level[position] < len(candidates[position]) - 1
        ]
        if not clashing:
            break
        for position in clashing:
            level[position] += 1
    return [VideoInput(candidates[i][level[i]], path) for i, path in enumerate(paths)]


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def resolve_inputs(input: Path) -> list[VideoInput]:
    """The videos named by ``input``.

    Args:
        input: one of
            - a folder: every video file in it, recursively (by extension, hidden files
              skipped); ids from :func:`ids_for_paths`;
            - an annotation file (``.json``, or a captions ``.csv`` / ``.jsonl``): its videos, via
              :func:`s2vt.datasets.load_annotations` (paths resolved relative to the
              file); clips not on disk come back with ``path=None``;
            - a single video file;
            - a text file with one video path per line (relative to the list file; blank
              lines and ``#`` comments skipped).

    Returns:
        The videos, in a deterministic order.

    Raises:
        S2VTError: when ``input`` does not exist or names no video.
    """
    input = Path(input)
    if not input.exists():
        raise S2VTError(f"input not found: {input}")
    if input.is_dir():
        paths = sorted(
            p for p in input.rglob("*")
            if _is_video_name(p) and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(input).parts)
        )
        inputs = ids_for_paths(paths, input)
    elif input.suffix.lower() in (".json", ".csv", ".jsonl", ".ndjson"):
        from s2vt.datasets import load_annotations

        annotations = load_annotations(input, keep_missing=True)
        inputs = [
            VideoInput(video.video_id, None if video.path is None else Path(video.path))
            for video in annotations.videos
        ]
    elif input.suffix.lower() in VIDEO_EXTENSIONS:
        inputs = [VideoInput(input.stem, input)]
    else:
        try:
            lines = input.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise S2VTError(f"cannot read video list {input}: {error}") from None
        base = input.parent
        paths = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line).expanduser()
                paths.append(path if path.is_absolute() else base / path)
        inputs = ids_for_paths(paths, base)
    if not inputs:
        raise S2VTError(
            f"no videos found in {input} (video extensions: {' '.join(VIDEO_EXTENSIONS)})"
        )
    return inputs
