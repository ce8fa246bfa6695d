"""Frame pairs of a video through :mod:`s2vt.video`, the one decoding package.

Two calls: :func:`s2vt.video.read_clip` with the clip's own sampling gives the positions t
(exactly the RGB stream's, with the decoder's handling of damaged files) and their frames,
which are the pairs' first frames; :func:`s2vt.video.read_frames` then decodes only the
other frames the pairs need (t+K, and the end's last-K), with the backend that read the
positions. At most two frames per position are held, whatever the clip's length.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2vt.video import Clip, SamplingConfig, read_clip, read_frames


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
        **options: passed on to ``read_clip`` (e.g. the decoder); the pairs' other frames
            are read with the decoder that read the positions.

    Returns:
        The pairs (:func:`pair_indices` of the positions).

    Raises:
        VideoError: the video cannot be decoded, or a frame the pairs need does not.
    """
    path = Path(path)
    positions = read_clip(path, sampling, size, num_threads=num_threads, **options)
    first, second = pair_indices(positions.indices, positions.total_frames, gap)
    # frame index -> (clip, row) of the frame, from the positions where they have it
    where: dict[int, tuple[Clip, int]] = {}
    for row, index in enumerate(positions.indices.tolist()):
        where.setdefault(int(index), (positions, row))
    others = sorted({*first.tolist(), *second.tolist()} - set(where))
    if others:
        rest = {key: value for key, value in options.items() if key != "decoder"}
        more = read_frames(path, others, size, num_threads=num_threads,
                           decoder=positions.decoder or options.get("decoder", "auto"), **rest)
        for row, index in enumerate(others):
            where[index] = (more, row)
        if more.warning and more.warning not in (positions.warning or ""):
            # Damage met only past the positions is still reported with the video.
            notes = [note for note in (positions.warning, more.warning) if note]
            positions = dataclasses.replace(positions, warning="; ".join(notes))

    def gather(indices: np.ndarray, field: str) -> np.ndarray:
        return np.stack([getattr(where[i][0], field)[where[i][1]] for i in indices.tolist()])

    return FramePairs(first=gather(first, "frames"), second=gather(second, "frames"),
                      indices=first, timestamps=gather(first, "timestamps"), clip=positions)
