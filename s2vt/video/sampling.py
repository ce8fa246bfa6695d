"""Which frames to take from a video: the sampling settings and the index arithmetic.

Short videos: ``uniform`` always returns ``num_frames`` frames (evenly spaced with
``np.linspace`` and rounded, so frames repeat when the video has fewer than asked);
``stride`` and ``fps`` return the frames that exist, at least one, and keep the first
``max_frames`` when there are more (S2VT: every 10th frame, at most 80).

``fps`` mode picks frames by the stream's own timestamps when they are given (the frame
nearest each sampling time), so a variable-frame-rate video is sampled at even times, not
at even frame numbers; on a constant-rate stream both give the same frames.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from s2vt.errors import ConfigError

VIDEO_EXTENSIONS: tuple[str, ...] = (
    ".mp4",
    ".avi",
    ".webm",
    ".mkv",
    ".mov",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".flv",
    ".wmv",
    ".3gp",
)

SAMPLING_MODES: tuple[str, ...] = ("uniform", "stride", "fps")

# Two times closer than this are one instant: timestamps come from integer pts times a
# time base, so a half-way tie between two frames must not be decided by float noise.
_TIME_EPS = 1e-6


@dataclass(frozen=True)
class SamplingConfig:
    """Which frames to take from a video.

    Attributes:
        mode: ``uniform`` (exactly ``num_frames`` evenly spaced frames), ``stride`` (every
            ``stride``-th frame) or ``fps`` (``fps`` frames per second of video).
        num_frames: frames returned by ``uniform``.
        stride: step between frames in ``stride`` mode.
        fps: frames per second in ``fps`` mode.
        max_frames: cap for ``stride`` and ``fps`` (the first ``max_frames`` are kept).
    """

    mode: Literal["uniform", "stride", "fps"] = "uniform"
    num_frames: int = 16
    stride: int = 10
    fps: float = 1.0
    max_frames: int = 80

    def __post_init__(self) -> None:
        if self.mode not in SAMPLING_MODES:
            raise ConfigError(
                f"unknown sampling mode {self.mode!r}; known modes: {', '.join(SAMPLING_MODES)}"
            )
        for key in ("num_frames", "stride", "max_frames"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"sampling {key} must be a positive integer, got {value!r}")
        if not isinstance(self.fps, (int, float)) or not math.isfinite(self.fps) or self.fps <= 0:
            raise ConfigError(f"sampling fps must be a positive number, got {self.fps!r}")


def _round_half_up(values: np.ndarray) -> np.ndarray:
    # np.rint rounds halves to even, which makes repeats of a short video uneven.
    return np.floor(values + 0.5)


def _uniform(total: int, fps: float, sampling: SamplingConfig, times: np.ndarray | None):
    return _round_half_up(np.linspace(0, total - 1, sampling.num_frames))


def _stride(total: int, fps: float, sampling: SamplingConfig, times: np.ndarray | None):
    return np.arange(0, total, sampling.stride)[: sampling.max_frames]


def _mean_interval(times: np.ndarray, fps: float) -> float:
    """Average seconds between frames: from the timestamps, else from the rate."""
    if len(times) > 1 and times[-1] > times[0]:
        return float(times[-1] - times[0]) / (len(times) - 1)
    return 1.0 / fps


def _fractional_index(times: np.ndarray, interval: float, wanted: np.ndarray) -> np.ndarray:
    """Where each wanted time falls between the frames' times, as a fractional index.

    Past the last frame, frames are taken to follow each other every ``interval``.
    """
    below = np.clip(np.searchsorted(times, wanted + _TIME_EPS, side="right") - 1, 0, None)
    start = times[below]
    last = len(times) - 1
    following = np.where(below < last, times[np.minimum(below + 1, last)], start + interval)
    span = np.maximum(following - start, _TIME_EPS)
    fraction = np.clip((wanted - start) / span, 0.0, None)
    # A wanted time exactly half-way (within float noise) goes to the later frame, as
    # rounding an exact k * fps / r would.
    fraction = np.where(np.abs(fraction - 0.5) * span < _TIME_EPS, 0.5, fraction)
    return below + fraction


def _fps(total: int, fps: float, sampling: SamplingConfig, times: np.ndarray | None):
    # Frame k/r seconds in: index round(k * fps / r). Asking for more frames per second
    # than the source has would only repeat frames, so repeats are dropped.
    if times is None:
        step = fps / sampling.fps
        positions = np.arange(max(1, math.ceil(total / step))) * step
    else:
        # By time: the video lasts from its first frame to the end of its last one.
        interval = _mean_interval(times, fps)
        duration = float(times[-1] - times[0]) + interval
        count = max(1, math.ceil(duration * sampling.fps - _TIME_EPS))
        wanted = times[0] + np.arange(count) / sampling.fps
        positions = _fractional_index(times, interval, wanted)
    indices = _round_half_up(positions)
    indices = np.unique(indices[indices < total])
    return indices[: sampling.max_frames]


# mode -> function(total_frames, fps, sampling, timestamps) -> indices
_SAMPLERS = {"uniform": _uniform, "stride": _stride, "fps": _fps}


def sample_indices(
    total_frames: int,
    fps: float,
    sampling: SamplingConfig,
    timestamps: np.ndarray | None = None,
) -> np.ndarray:
    """Frame indices to take from a video of ``total_frames`` frames at ``fps``.

    Args:
        total_frames: frames in the video (>= 1).
        fps: its average frame rate (used by ``fps`` mode only).
        sampling: the sampling settings.
        timestamps: optional (total_frames,) non-decreasing presentation times in seconds;
            ``fps`` mode then picks the frame nearest each sampling time (variable frame
            rates); without them it assumes a constant rate.

    Returns:
        (T,) int64 indices in ``[0, total_frames)``, non-decreasing; T >= 1.
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be >= 1, got {total_frames}")
    if sampling.mode == "fps" and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps mode needs a positive source frame rate, got {fps}")
    times = None
    if timestamps is not None:
        times = np.asarray(timestamps, dtype=np.float64)
        if times.shape != (total_frames,):
            raise ValueError(f"timestamps must have shape ({total_frames},), got {times.shape}")
        if not (np.all(np.isfinite(times)) and np.all(np.diff(times) >= 0)):
            times = None  # unusable times: fall back to the average rate
    indices = _SAMPLERS[sampling.mode](total_frames, fps, sampling, times).astype(np.int64)
    if indices.size == 0:
        indices = np.zeros(1, dtype=np.int64)
    return np.clip(indices, 0, total_frames - 1)
