"""Frame pairs of a video through :func:`s2vt.video.read_clip`, the one decoding API.

``read_clip`` takes a frame sampling, not explicit frame indices, so the pairs are read in
two calls: the clip's own sampling gives the positions t (exactly the RGB stream's, with
the decoder's handling of damaged files), then a ``stride 1`` sampling up to the last
needed frame gives every frame up to there, from which the pairs are taken. The second
call holds ``last needed index + 1`` frames at the working size (128 px: about 50 KB a
frame, 45 MB for a 30 s clip at 30 fps); a decoder entry point taking explicit indices
would make it only the pairs' frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2vt.errors import VideoError
from s2vt.video import Clip, SamplingConfig, read_clip


def pair_indices(sampled: np.ndarray, total_frames: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """The frame pairs of the sampled positions.

    Where t+K would pass the last frame, the pair (last-K, last) is used instead, so every
    position gets a flow over exactly K frames (a video shorter than K+1 frames: the pair
    (0, last)).

    Args:
        sampled: (T,) frame indices in ``[0, total_frames)``.
        total_frames: frames in the video.
        gap: K >= 1.

    Returns:
        (first, second): (T,) int64 each, ``second - first == min(gap, total_frames - 1)``.
    """
    sampled = np.asarray(sampled, dtype=np.int64)
    last_start = max(total_frames - 1 - gap, 0)
    first = np.minimum(sampled, last_start)
    second = np.minimum(first + gap, total_frames - 1)
    return first, second


@dataclass
class FramePairs:
    """The frame pairs of one video's sampled positions.

    Attributes:
        first: (T, W, W, 3) uint8, the pairs' first frames.
        second: (T, W, W, 3) uint8, the frames K later.
        indices: (T,) int64 frame indices of ``first``.
        timestamps: (T,) float64 seconds of ``first``.
        clip: the positions' clip as ``read_clip`` returned it (fps, decoder, warnings).
    """

    first: np.ndarray
    second: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    clip: Clip


def read_frame_pairs(
    path: Path, sampling: SamplingConfig, size: int, gap: int, *, num_threads: int = 0,
    **options: Any,
) -> FramePairs:
    """The sampled positions' frame pairs of one video, at working size ``size``.

    Args:
        path: the video file.
        sampling: the positions t (as the RGB stream samples them).
        size: working side W (shorter side resized, centre-cropped square).
        gap: K.
        num_threads: decoding threads.
        **options: passed on to ``read_clip`` (e.g. the decoder).

    Returns:
        The pairs (:func:`pair_indices` of the positions).

    Raises:
        VideoError: the video cannot be decoded, or the frames the pairs need do not.
    """
    path = Path(path)
    positions = read_clip(path, sampling, size, num_threads=num_threads, **options)
    first, second = pair_indices(positions.indices, positions.total_frames, gap)
    last = int(max(first.max(), second.max()))
    every = SamplingConfig(mode="stride", stride=1, max_frames=last + 1)
    clip = read_clip(path, every, size, num_threads=num_threads, **options)
    where = {int(index): row for row, index in enumerate(clip.indices)}
    missing = sorted({int(i) for i in (*first, *second)} - set(where))
    if missing:
        raise VideoError(f"cannot decode video {path}: frames {missing[:5]} that the flow "
                         "pairs need do not decode")
    rows = [where[int(i)] for i in first]
    return FramePairs(first=clip.frames[rows],
                      second=clip.frames[[where[int(i)] for i in second]],
                      indices=first, timestamps=np.asarray(clip.timestamps)[rows],
                      clip=positions)
