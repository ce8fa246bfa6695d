"""Decode rate of a decoder on a set of clips, for the benchmark (``s2vt bench``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s2vt.errors import VideoError
from s2vt.video.reader import read_clip
from s2vt.video.sampling import SamplingConfig


def decode_rate(
    paths: Sequence[Path],
    sampling: SamplingConfig,
    size: int,
    decoder: str,
    *,
    num_threads: int = 1,
    repeats: int = 1,
) -> dict[str, Any]:
    """Sampled frames per second that ``decoder`` delivers on ``paths`` (one process).

    The first clip is read once before timing (library loading, page cache). Clips that
    fail to decode are counted, not timed.

    Args:
        paths: video files.
        sampling: which frames to take from each.
        size: output side in pixels.
        decoder: a decoder name or ``auto``.
        num_threads: FFmpeg threads per read (1: what each extract worker uses).
        repeats: passes over ``paths``; the fastest pass is reported.

    Returns:
        ``{"decoder", "videos", "failed", "frames", "seconds", "frames_per_second",
        "per_video"}``; ``per_video`` maps each path to its sampled frames per second in
        the fastest pass.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("decode_rate needs at least one video")
    for path in paths:  # warm up: library load, page cache
        try:
            read_clip(path, sampling, size, num_threads=num_threads, decoder=decoder)
            break
        except VideoError:  # a broken clip only warms nothing up
            continue
    best: dict[str, Any] | None = None
    for _ in range(max(1, repeats)):
        frames, failed, seconds, per_video = 0, 0, 0.0, {}
        for path in paths:
            start = time.perf_counter()
            try:
                clip = read_clip(path, sampling, size, num_threads=num_threads, decoder=decoder)
            except VideoError:  # counted, reported as failed
                failed += 1
                continue
            elapsed = time.perf_counter() - start
            seconds += elapsed
            frames += len(clip.indices)
            per_video[str(path)] = len(clip.indices) / elapsed if elapsed > 0 else 0.0
        if best is None or seconds < best["seconds"]:
            best = {"frames": frames, "failed": failed, "seconds": seconds,
                    "per_video": per_video}
    assert best is not None
    rate = best["frames"] / best["seconds"] if best["seconds"] > 0 else 0.0
    return {"decoder": decoder, "videos": len(paths), "failed": best["failed"],
            "frames": best["frames"], "seconds": best["seconds"],
            "frames_per_second": rate, "per_video": best["per_video"]}
