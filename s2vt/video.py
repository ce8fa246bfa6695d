"""Video decoding and frame sampling with decord: the only module that opens videos.

Only the sampled frames are decoded (decord seeks to the nearest key frame and decodes
forward to each wanted frame), resized by FFmpeg while decoding so that the shorter side
becomes ``size``, then centre-cropped to ``size x size``. A long clip is therefore never
held in memory: sampling 32 frames from a 10-minute clip keeps at most one chunk of
``_DECODE_CHUNK`` small frames plus decord's packet index.

Short videos: ``uniform`` always returns ``num_frames`` frames (evenly spaced with
``np.linspace`` and rounded, so frames repeat when the video has fewer than asked);
``stride`` and ``fps`` return the frames that exist, at least one, and keep the first
``max_frames`` when there are more (S2VT: every 10th frame, at most 80).

decord must be imported lazily: importing it before PyAV in one process breaks PyAV's
VP9 encoder, and ``import s2vt`` must stay cheap.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from s2vt.errors import ConfigError, VideoError

logger = logging.getLogger(__name__)

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

# Frames decoded per get_batch call: bounds the peak memory of one read to a few MB
# whatever the number of sampled frames, at no measurable cost in speed.
_DECODE_CHUNK = 16

# decord 0.6.0 resizes to these output widths into a wrongly sized buffer and fails
# ("DECORDArrayCopyFromTo: The size must exactly match"), whatever the source; a pixel
# wider decodes fine, and the extra column goes in the centre crop.
_BAD_DECORD_WIDTHS = frozenset({2, 3, 4, 6, 8, 12, 16, 24, 48, 72})

# decord prefixes its errors with a time and a source location of its own build.
_DECORD_PREFIX = re.compile(r"^\[[0-9:]+\]\s+\S+:\d+:\s+(Check failed:\s+)?(Error:\s+)?")

# Used only when a container reports no usable frame rate.
_FALLBACK_FPS = 25.0


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


@dataclass
class Clip:
    """Sampled frames of one video.

    Attributes:
        frames: (T, S, S, 3) uint8 RGB, resized and centre-cropped to S.
        indices: (T,) int64 frame indices in the source video.
        timestamps: (T,) float64 presentation times in seconds.
        fps: average frame rate of the source.
        total_frames: number of frames in the source.
    """

    frames: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    fps: float
    total_frames: int


def _round_half_up(values: np.ndarray) -> np.ndarray:
    # np.rint rounds halves to even, which makes repeats of a short video uneven.
    return np.floor(values + 0.5)


def _uniform(total_frames: int, fps: float, sampling: SamplingConfig) -> np.ndarray:
    return _round_half_up(np.linspace(0, total_frames - 1, sampling.num_frames))


def _stride(total_frames: int, fps: float, sampling: SamplingConfig) -> np.ndarray:
    return np.arange(0, total_frames, sampling.stride)[: sampling.max_frames]


def _fps(total_frames: int, fps: float, sampling: SamplingConfig) -> np.ndarray:
    # Frame k/r seconds in: index round(k * fps / r). Asking for more frames per second
    # than the source has would only repeat frames, so repeats are dropped.
    step = fps / sampling.fps
    count = max(1, math.ceil(total_frames / step))
    indices = _round_half_up(np.arange(count) * step)
    indices = np.unique(indices[indices < total_frames])
    return indices[: sampling.max_frames]


# mode -> function(total_frames, fps, sampling) -> indices
_SAMPLERS = {"uniform": _uniform, "stride": _stride, "fps": _fps}


def sample_indices(total_frames: int, fps: float, sampling: SamplingConfig) -> np.ndarray:
    """Frame indices to take from a video of ``total_frames`` frames at ``fps``.

    Args:
        total_frames: frames in the video (>= 1).
        fps: its average frame rate (used by ``fps`` mode only).
        sampling: the sampling settings.

    Returns:
        (T,) int64 indices in ``[0, total_frames)``, non-decreasing; T >= 1.
    """
    if total_frames < 1:
        raise ValueError(f"total_frames must be >= 1, got {total_frames}")
    if sampling.mode == "fps" and not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps mode needs a positive source frame rate, got {fps}")
    indices = _SAMPLERS[sampling.mode](total_frames, fps, sampling).astype(np.int64)
    if indices.size == 0:
        indices = np.zeros(1, dtype=np.int64)
    return np.clip(indices, 0, total_frames - 1)


def _resized_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) with the shorter side equal to ``size`` and the aspect ratio kept."""
    if width <= height:
        return size, max(size, round(height * size / width))
    return max(size, round(width * size / height)), size


def _centre_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) -> (T, size, size, 3), cut from the middle."""
    height, width = frames.shape[1:3]
    top = (height - size) // 2
    left = (width - size) // 2
    return frames[:, top : top + size, left : left + size]


def _first_line(error: BaseException) -> str:
    """The first line of an exception's text (decord's run to many lines), or its type.

    decord's own ``[12:00:00] /src/file.cc:61: Check failed:`` prefix is dropped.
    """
    lines = str(error).strip().splitlines()
    text = _DECORD_PREFIX.sub("", lines[0]).strip() if lines else ""
    return text[:200] or type(error).__name__


def _probe_size(path: Path) -> tuple[int, int]:
    """(width, height) of the first video stream, read from the container header.

    PyAV reads only the header (about a millisecond), so the reader can be opened once,
    already resizing; its errors also say more than decord's ("Error reading ...").
    """
    import av  # before decord, always: decord's FFmpeg loaded first breaks PyAV's VP9 encoder

    if not path.exists():
        raise VideoError(f"cannot decode video {path}: file not found")
    if path.is_dir():
        raise VideoError(f"cannot decode video {path}: is a directory")
    if path.stat().st_size == 0:
        raise VideoError(f"cannot decode video {path}: empty file (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"cannot decode video {path}: no video stream (audio-only?)")
            context = container.streams.video[0].codec_context
            width, height = int(context.width), int(context.height)
    except VideoError:
        raise
    except Exception as error:  # av.error.FFmpegError and friends
        reason = getattr(error, "strerror", None) or _first_line(error)
        raise VideoError(f"cannot decode video {path}: not a readable video ({reason})") from error
    if width < 1 or height < 1:
        raise VideoError(f"cannot decode video {path}: video stream has no frame size")
    return width, height


def _open_reader(path: Path, size: int, num_threads: int):
    """Open ``path`` with decord, resizing while decoding so the shorter side is ``size``."""
    width, height = _probe_size(path)
    new_width, new_height = _resized_shape(width, height, size)
    while new_width in _BAD_DECORD_WIDTHS:
        new_width += 1

    import decord

    try:
        return decord.VideoReader(
            str(path), width=new_width, height=new_height, num_threads=num_threads
        )
    except Exception as error:  # RuntimeError, DECORDError, or its frame-count assert
        # The header was readable (PyAV), so the frame data is what is broken: typically
        # an mp4 whose index is up front but whose data was cut off (partial download).
        raise VideoError(f"cannot decode video {path}: corrupt or truncated video data "
                         f"({_first_line(error)})") from error


def read_clip(path: Path, sampling: SamplingConfig, size: int, *, num_threads: int = 0) -> Clip:
    """Decode the sampled frames of a video, resized and centre-cropped to ``size``.

    Args:
        path: the video file.
        sampling: which frames to take.
        size: output side S in pixels.
        num_threads: FFmpeg decoding threads (0: FFmpeg's choice; 1 when several
            decoding processes already share the cores).

    Returns:
        A :class:`Clip` with frames (T, S, S, 3) uint8.

    Raises:
        VideoError: ``cannot decode video <path>: <reason>`` for a missing, empty, corrupt,
            truncated, audio-only or frameless file.
    """
    return read_frames(
        path, lambda total, fps: sample_indices(total, fps, sampling), size,
        num_threads=num_threads,
    )


def read_frames(
    path: Path,
    pick: Callable[[int, float], np.ndarray],
    size: int,
    *,
    num_threads: int = 0,
) -> Clip:
    """Decode the frames that ``pick`` chooses once the video's length is known.

    What :func:`read_clip` does, for callers that need frames other than one sampling's,
    e.g. the optical-flow stream (each sampled frame and the frame K later).

    Args:
        path: the video file.
        pick: ``(total_frames, fps) -> (T,) indices`` in ``[0, total_frames)``, any order,
            repeats allowed; the clip's frames follow that order.
        size: output side S in pixels.
        num_threads: FFmpeg decoding threads, as in :func:`read_clip`.

    Returns:
        A :class:`Clip` with frames (T, S, S, 3) uint8, in the order of ``pick``'s indices.

    Raises:
        VideoError: as :func:`read_clip`.
    """
    path = Path(path)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    reader = _open_reader(path, size, num_threads)
    total = len(reader)
    if total < 1:
        raise VideoError(f"cannot decode video {path}: no frames")
    fps = float(reader.get_avg_fps())
    if not (math.isfinite(fps) and fps > 0):
        logger.warning("%s reports no frame rate; assuming %.0f fps", path, _FALLBACK_FPS)
        fps = _FALLBACK_FPS
    indices = np.asarray(pick(total, fps), dtype=np.int64).reshape(-1)
    if indices.size == 0 or indices.min() < 0 or indices.max() >= total:
        raise ValueError(f"frame indices must lie in [0, {total}), got {indices.tolist()[:8]}")
    # Decode each distinct frame once, in order (decord seeks forward efficiently),
    # then expand back to the requested order with repeats.
    unique, inverse = np.unique(indices, return_inverse=True)
    chunks = []
    try:
        for start in range(0, len(unique), _DECODE_CHUNK):
            batch = reader.get_batch(unique[start : start + _DECODE_CHUNK].tolist()).asnumpy()
            chunks.append(np.ascontiguousarray(_centre_crop(batch, size)))
        stamps = reader.get_frame_timestamp(unique.tolist())
    except Exception as error:
        raise VideoError(
            f"cannot decode video {path}: decoding failed ({_first_line(error)})"
        ) from error
    frames = np.concatenate(chunks)[inverse]
    timestamps = np.asarray(stamps, dtype=np.float64).reshape(len(unique), -1)[:, 0]
    if not np.all(np.isfinite(timestamps)) or np.any(timestamps < 0):
        timestamps = unique / fps
    if frames.shape[1:] != (size, size, 3):
        raise VideoError(f"cannot decode video {path}: decoded frames have shape {frames.shape}")
    return Clip(
        frames=frames,
        indices=indices,
        timestamps=timestamps[inverse].astype(np.float64),
        fps=fps,
        total_frames=total,
    )
