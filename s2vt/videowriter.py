"""Encoding frames to a video file with PyAV: the one writer of the synthetic benchmark,
the speed benchmark's clips and the tests' clips.

PyAV is imported only when a clip is written, so importing this module stays cheap (the
CLI's parser imports the benchmark, which imports this). In a process that also decodes
with decord, PyAV must load first: decord's bundled FFmpeg, loaded before it, breaks
PyAV's VP9 encoder (see :mod:`s2vt.video`); writing a clip before any decode does that.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def write_video(
    path: Path,
    frames: Iterable[Any],
    fps: int,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    bit_rate: int | None = None,
    threads: int | None = None,
    faststart: bool = False,
) -> Path:
    """Encode RGB frames to ``path``, written under a temporary name and renamed into place.

    The container follows the suffix of ``path``; the size follows the first frame. A
    killed run leaves no half file under ``path``, only a hidden ``.<stem>.tmp<suffix>``.

    Args:
        path: the video file to write (parent folders are created).
        frames: ``(H, W, 3)`` uint8 RGB arrays or RGB PIL images, all of one size; a
            generator is consumed once, so long clips never sit in memory.
        fps: frame rate.
        codec: FFmpeg encoder name (``libx264``, ``mpeg4``, ``libvpx-vp9``, ...).
        pix_fmt: the encoded pixel format (x264 needs ``yuv444p`` for odd sizes).
        options: encoder options, e.g. ``{"preset": "ultrafast", "crf": "20"}``; None
            keeps the encoder's defaults.
        bit_rate: target bits per second (codecs without a quality option); None: default.
        threads: encoder threads; None: FFmpeg's choice. One thread makes x264 and VP9
            output bit-for-bit reproducible.
        faststart: move an mp4's index to the front of the file.

    Returns:
        ``path``.

    Raises:
        ValueError: ``frames`` is empty.
    """
    import av
    import numpy as np

    path = Path(path)
    frames = iter(frames)
    first = next(frames, None)
    if first is None:
        raise ValueError(f"no frames to write to {path}")
    height, width = np.asarray(first).shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        container_options = {"movflags": "faststart"} if faststart else None
        with av.open(str(tmp), mode="w", options=container_options) as container:
            stream = container.add_stream(codec, rate=fps)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            if threads is not None:
                stream.codec_context.thread_count = threads
            if options:
                stream.options = dict(options)
            if bit_rate is not None:
                stream.bit_rate = bit_rate
            for image in itertools.chain([first], frames):
                rgb = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
                for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
