"""Small real encoded videos for tests, written with PyAV (never downloaded)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from s2vt import videowriter as writer

CODECS = {".mp4": "libx264", ".avi": "mpeg4", ".webm": "libvpx-vp9", ".mkv": "libx264"}


def moving_square_frames(num_frames: int, width: int, height: int) -> np.ndarray:
    """Frames (T, H, W, 3) uint8: a white square moving left to right on grey.

    Each frame's first column of pixels encodes nothing; the square position encodes time,
    so tests can tell frames apart.
    """
    frames = np.full((num_frames, height, width, 3), 60, dtype=np.uint8)
    side = max(2, min(width, height) // 4)
    for t in range(num_frames):
        x = int((width - side) * t / max(1, num_frames - 1))
        y = (height - side) // 2
        frames[t, y : y + side, x : x + side] = 255
    return frames


def write_video(
    path: Path,
    num_frames: int = 30,
    fps: int = 25,
    width: int = 160,
    height: int = 120,
    frames: np.ndarray | None = None,
    *,
    codec: str | None = None,
    pix_fmt: str = "yuv420p",
    faststart: bool = False,
) -> Path:
    """Encode ``frames`` (or a moving square) to ``path`` with :func:`s2vt.videowriter.write_video`.

    What it adds for tests: a moving square by default, the codec chosen from the suffix
    unless given, and x264's fastest preset. x264 needs ``pix_fmt="yuv444p"`` for odd
    sizes; ``faststart`` moves an mp4's index to the front.
    """
    if frames is None:
        frames = moving_square_frames(num_frames, width, height)
    codec = codec or CODECS.get(Path(path).suffix, "libx264")
    options = {"preset": "ultrafast"} if codec == "libx264" else None
    return writer.write_video(Path(path), frames, fps, codec=codec, pix_fmt=pix_fmt,
                              options=options, faststart=faststart)


def extract_job(root: Path, clips: int) -> tuple[Path, list[str]]:
    """``clips`` 60-frame mp4s in ``root/videos`` and an ``s2vt extract`` command line that
    encodes every frame of them with the tiny encoder into ``root/out`` (slow enough to be
    killed part-way). Returns (out, command)."""
    videos, out = root / "videos", root / "out"
    for i in range(clips):
        write_video(videos / f"clip{i}.mp4", num_frames=60, fps=30, width=64, height=48)
    command = [sys.executable, "-m", "s2vt", "extract", str(videos), "--out", str(out),
               "--encoder", "tiny", "--sampling", "stride", "--stride", "1",
               "--batch-size", "16", "--workers", "1", "--no-progress"]
    return out, command


def faulty_decode(path: Path, sampling: Any, size: int, **kwargs: Any) -> Any:
    """Fault injection for decode workers (they import it as ``videos:faulty_decode``):
    segfault on files named 'crash*', hang on 'hang*', else decode normally."""
    from s2vt.video import read_clip

    if path.name.startswith("crash"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if path.name.startswith("hang"):
        time.sleep(600)
    return read_clip(path, sampling, size, **kwargs)
