"""Flow images of one video: decode frame pairs, compute flow, render, resize.

For each position t of the frame sampling, the flow runs from frame t to frame t+K
(K = ``gap``). Where t+K would pass the last frame, the pair (last-K, last) is used instead,
so every position gets a flow over exactly K frames (a video shorter than K+1 frames gets
the pair (0, last)); the recorded index is the pair's first frame, which equals t
everywhere except at such an end. Frames are decoded at the working size (shorter side ->
``size``, centre crop), see :mod:`s2vt.flow.frames`.

:func:`read_flow_clip` is what a decode worker (``s2vt extract --stream flow``) and the
captioner (a flow model dir) both call, so a raw video gets exactly its stored features.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from s2vt.flow.config import FlowConfig
from s2vt.flow.frames import pair_indices, read_frame_pairs
from s2vt.flow.registry import build_flow_method, method_info
from s2vt.flow.render import flow_to_image
from s2vt.video import Clip, SamplingConfig

__all__ = ["flow_images", "flow_method", "pair_indices", "read_flow_clip"]

# Built methods of this process, by (config, device): a decode worker builds its method
# (a network, for RAFT) once, not once per video.
_BUILT: dict[tuple[str, str], Any] = {}


def flow_method(config: FlowConfig, device: Any = "cpu") -> Any:
    """The built method of ``config`` on ``device``, built once per process."""
    key = (json.dumps(config.__dict__, sort_keys=True), str(device))
    if key not in _BUILT:
        _BUILT[key] = build_flow_method(config, device)
    return _BUILT[key]


def flow_images(
    first: np.ndarray, second: np.ndarray, config: FlowConfig, size: int, method: Any
) -> np.ndarray:
    """Flow images of frame pairs, resized to the encoder's input side.

    Args:
        first, second: (N, W, W, 3) uint8 frames at the working size W.
        config: the flow settings (bound).
        size: S, the encoder's input side.
        method: a built flow method (:func:`flow_method`).

    Returns:
        (N, S, S, 3) uint8 flow images.
    """
    images = flow_to_image(method.compute(first, second), config.bound)
    if images.shape[1:3] == (size, size):
        return images
    import cv2

    # INTER_AREA averages when shrinking (no aliasing of fine flow texture).
    interpolation = cv2.INTER_AREA if size < images.shape[1] else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (size, size), interpolation=interpolation)
                     for image in images])


def read_flow_clip(
    path: Path,
    sampling: SamplingConfig,
    size: int,
    *,
    num_threads: int = 0,
    flow: FlowConfig | dict[str, Any] | None = None,
    device: str = "cpu",
    **options: Any,
) -> Clip:
    """Decode a video's frame pairs and return its flow images in place of frames.

    The signature of :func:`s2vt.video.read_clip` plus the flow settings, so the decode
    pool runs it in its workers (crashes, hangs and bad files stay per-video failures).

    Args:
        path: the video file.
        sampling: which positions t to take (as the RGB stream).
        size: S, side of the returned images (the encoder's input size).
        num_threads: decoding threads, and OpenCV's threads when > 0 (1 in decode workers,
            which share the cores with the encoder).
        flow: the flow settings (a :class:`FlowConfig` or its fields).
        device: where a network method runs (``cpu``, ``cuda``, ``auto``).
        **options: passed on to :func:`s2vt.video.read_clip` (e.g. the decoder).

    Returns:
        A :class:`s2vt.video.Clip` whose frames are (T, S, S, 3) uint8 flow images and
        whose indices / timestamps are those of each pair's first frame.

    Raises:
        VideoError: the video cannot be decoded. S2VTError: the method cannot be built.
    """
    config = flow if isinstance(flow, FlowConfig) else FlowConfig(**(flow or {}))
    method = flow_method(config, device)  # a missing package fails before any decoding
    pairs = read_frame_pairs(Path(path), sampling, config.size, config.gap,
                             num_threads=num_threads, **options)
    if num_threads > 0 and not method_info(config.method).needs_weights:
        import cv2

        cv2.setNumThreads(num_threads)
    images = flow_images(pairs.first, pairs.second, config, size, method)
    return dataclasses.replace(pairs.clip, frames=images, indices=pairs.indices,
                               timestamps=pairs.timestamps)
