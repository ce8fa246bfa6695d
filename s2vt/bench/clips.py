"""The benchmark's generated clips: textured scenes with a moving box, encoded with H.264.

Generated rather than downloaded so every machine measures the same inputs; textured so
the encoder has real work (a flat frame would compress to nothing and decode too fast).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2vt.bench.config import BenchConfig
from s2vt.videowriter import write_video


def scene_frames(index: int, count: int, width: int, height: int) -> Any:
    """(T, H, W, 3) uint8 frames: a moving coloured box over a textured gradient.

    Args:
        index: the scene (its colours and texture follow from it).
        count: frames T.
        width / height: frame size W and H.
    """
    import numpy as np

    rng = np.random.default_rng(index)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([(xs * 255 // max(1, width - 1)), (ys * 255 // max(1, height - 1)),
                     np.full_like(xs, 40 * (index % 6))], axis=-1).astype(np.int16)
    base += rng.integers(-12, 12, size=base.shape, dtype=np.int16)  # texture to encode
    colour = rng.integers(0, 256, size=3)
    side = height // 3
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        frame = base.copy()
        x = int((width - side) * t / max(1, count - 1))
        y = int((height - side) * (0.5 + 0.4 * np.sin(t / 7.0 + index)) / 1.0) // 2
        frame[y : y + side, x : x + side] = colour
        frames[t] = np.clip(frame, 0, 255)
    return frames


def write_clips(folder: Path, config: BenchConfig, count: int | None = None,
                seconds: float | None = None, prefix: str = "clip") -> list[Path]:
    """Encode H.264 clips of ``config``'s size and rate into ``folder`` as
    ``<prefix>000.mp4``, ``<prefix>001.mp4``, ...

    Args:
        folder: where to write them.
        config: size, rate, and by default how many (``clips``) and how long (``seconds``).
        count: clips to write instead of ``config.clips``.
        seconds: length of each instead of ``config.seconds``.
        prefix: the file names' stem before the number.

    Returns:
        The clips' paths, in order.
    """
    count = config.clips if count is None else count
    frames = max(1, round((config.seconds if seconds is None else seconds) * config.fps))
    return [write_video(folder / f"{prefix}{index:03d}.mp4",
                        scene_frames(index, frames, config.width, config.height), config.fps,
                        options={"preset": "veryfast", "crf": "23"})
            for index in range(count)]


def write_long_clip(path: Path, minutes: float, width: int = 160, height: int = 120,
                    fps: int = 10) -> Path:
    """A long H.264 clip (``minutes`` long, small and fast to write) for the memory check.

    One moving-box cycle of 250 frames repeats, generated frame by frame, so writing a long
    clip never holds it in memory.

    Returns:
        ``path``.
    """
    count = max(1, round(minutes * 60 * fps))
    scene = scene_frames(0, 250, width, height)
    frames = (scene[index % len(scene)] for index in range(count))
    return write_video(path, frames, fps, options={"preset": "ultrafast"})
