"""``decode`` stage: :func:`s2vt.video.read_clip` on every clip, one process, one FFmpeg
thread (sampled frames per second)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from s2vt.bench.timing import rate


def bench_decode(paths: list[Path], sampling: Any, size: int) -> tuple[dict[str, Any], list]:
    """Decode the sampled frames of every clip in this process (one FFmpeg thread).

    Args:
        paths: the clips.
        sampling: a :class:`s2vt.video.SamplingConfig`.
        size: the shorter side frames are resized to (the encoder's image size).

    Returns:
        (the stage's figures, the decoded frames of each clip, ``(T, size, size, 3)``
        uint8 arrays, for the encoder-alone measure).
    """
    from s2vt.video import read_clip

    read_clip(paths[0], sampling, size, num_threads=1)  # warm up: library load, page cache
    started = time.perf_counter()
    clips = [read_clip(path, sampling, size, num_threads=1).frames for path in paths]
    seconds = time.perf_counter() - started
    frames = sum(len(c) for c in clips)
    return {"seconds": round(seconds, 3), "frames": frames,
            "frames_per_s": rate(frames, seconds), "videos_per_s": rate(len(paths), seconds),
            "threads": 1}, clips
