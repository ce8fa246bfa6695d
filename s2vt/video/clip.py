"""What a decoder returns (:class:`Clip`) and the frame geometry every decoder shares."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from s2vt.errors import one_line

# decord 0.6.0 resizes to these output widths into a wrongly sized buffer and fails
# ("DECORDArrayCopyFromTo: The size must exactly match"), whatever the source; a pixel
# wider decodes fine, and the extra column goes in the centre crop. Every decoder resizes
# to the same widened shape so that all of them return the same pixels.
_BAD_DECORD_WIDTHS = frozenset({2, 3, 4, 6, 8, 12, 16, 24, 48, 72})

# decord prefixes its errors with a time and a source location of its own build, once per
# level of its call stack ("[12:00:00] /src/a.cc:292: [12:00:00] /src/b.cc:218: ...").
_DECORD_PREFIX = re.compile(r"^(\[[0-9:]+\]\s+\S+:\d+:\s+)+(Check failed:\s+)?(Error:\s+)?")
# What is left of a failed decord check: "expr >= 0 (-1094995529 vs. 0) Thread worker: ...",
# the number being an FFmpeg error code.
_DECORD_CHECK = re.compile(r"^(?P<expr>.+?) \((?P<code>-\d+) vs\. -?\d+\)\s*(?P<message>.*)$")
# ... or "av_read_frame failed with 1094995529": the code without its minus sign.
_DECORD_FAILED = re.compile(r"^(?P<call>\w+) failed with (?P<code>-?\d+)$")


@dataclass
class Clip:
    """Sampled frames of one video.

    Attributes:
        frames: (T, S, S, 3) uint8 RGB, resized and centre-cropped to S, as displayed
            (rotation metadata applied).
        indices: (T,) int64 frame indices in the source video (presentation order).
        timestamps: (T,) float64 presentation times in seconds from the first frame.
        fps: average frame rate of the source.
        total_frames: number of frames in the source's stream.
        decoder: the backend that decoded the frames (``decord``, ``pyav``...).
        partial: True when some frames of the source could not be decoded; the frames
            were then sampled over the ``decoded_frames`` that could.
        decoded_frames: frames of the source that decoded (``total_frames`` unless partial).
        warning: one line saying what went wrong on the way (partial decoding, a decoder
            that failed before another succeeded), or None.
    """

    frames: np.ndarray
    indices: np.ndarray
    timestamps: np.ndarray
    fps: float
    total_frames: int
    decoder: str = ""
    partial: bool = False
    decoded_frames: int | None = None
    warning: str | None = None

    def __post_init__(self) -> None:
        if self.decoded_frames is None:
            self.decoded_frames = self.total_frames


def resized_shape(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) every decoder resizes a ``width x height`` frame to.

    The shorter side becomes ``size`` and the aspect ratio is kept; widths decord cannot
    produce are widened by a pixel (the centre crop removes it).
    """
    if width <= height:
        new_width, new_height = size, max(size, round(height * size / width))
    else:
        new_width, new_height = max(size, round(width * size / height)), size
    while new_width in _BAD_DECORD_WIDTHS:
        new_width += 1
    return new_width, new_height


def centre_crop(frames: np.ndarray, size: int) -> np.ndarray:
    """(..., H, W, 3) -> (..., size, size, 3), cut from the middle."""
    height, width = frames.shape[-3:-1]
    top = (height - size) // 2
    left = (width - size) // 2
    return frames[..., top : top + size, left : left + size, :]


def _ffmpeg_error_text(code: int) -> str | None:
    """FFmpeg's text for a negative error code (``Invalid data found...``), if it has one."""
    import av.error

    try:
        av.error.err_check(code)
    except av.error.FFmpegError as error:
        return error.strerror
    except Exception:  # noqa: BLE001 - an unknown code has no text
        return None
    return None


def decoder_reason(error: BaseException) -> str:
    """An exception of any decoding library as one short line for a user.

    FFmpeg errors raised by PyAV give FFmpeg's text (``Invalid data found when processing
    input``); decord's ``[12:00:00] /src/file.cc:61: Check failed: expr (code vs. 0)``
    wrapping is reduced to its message and the FFmpeg meaning of the code.
    """
    strerror = getattr(error, "strerror", None)
    if isinstance(strerror, str) and strerror.strip():
        return one_line(strerror, limit=200)
    text = _DECORD_PREFIX.sub("", one_line(error, limit=1000)).strip()
    check = _DECORD_CHECK.match(text)
    if check:
        message = check["message"].rstrip(". ") or check["expr"]
        meaning = _ffmpeg_error_text(int(check["code"]))
        text = f"{message} ({meaning})" if meaning else message
    failed = _DECORD_FAILED.match(text)
    if failed:
        meaning = _ffmpeg_error_text(-abs(int(failed["code"])))
        text = f"{failed['call']} failed ({meaning})" if meaning else text
    return text[:200] or type(error).__name__
