"""What a video stream holds, read once with PyAV before any decoder runs.

Every decoder samples from this one description, so all of them agree on how many frames
a video has, which frame an index means and when it is shown:

- **frames** are the stream's packets (each one frame), in presentation order: sorted by
  presentation timestamp (pts), the order every decoder returns them in;
- **timestamps** are the stream's own presentation times in seconds from the first frame
  (variable and odd frame rates keep their real times), except in containers that store
  no times (AVI: FFmpeg makes pts up from the packet order, wrongly once B-frames reorder
  frames), where frame ``i`` is at ``i / fps``;
- **rotation** is the display matrix of the stream (phones store portrait video as
  landscape plus a rotation), read from the first decoded frame: decoders return frames
  as displayed.

Only packet headers are read (no frame is decoded but the first), so probing costs a few
milliseconds per clip, about what decord spends building its own index.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from s2vt.errors import VideoError
from s2vt.video.clip import decoder_reason

logger = logging.getLogger(__name__)

# Used only when a container reports no usable frame rate.
_FALLBACK_FPS = 25.0
# Containers that store no presentation time per frame: FFmpeg numbers the packets in
# decode order, so with B-frames a frame's pts is not when it is shown.
_FORMATS_WITHOUT_PTS = frozenset({"avi", "h264", "hevc", "m4v", "mpegvideo", "rawvideo"})
# Packets decoded while looking for the first frame (its rotation) before giving up.
_FIRST_FRAME_PACKETS = 64


@dataclass(frozen=True)
class StreamInfo:
    """The video stream of one file, as every decoder samples it.

    Attributes:
        path: the file.
        stream_index: index of the video stream in the container (FFmpeg's best stream).
        container: container format name (``mov,mp4,...``, ``avi``, ``matroska,webm``).
        codec: codec name (``h264``, ``vp9``...).
        coded_width: frame width as stored.
        coded_height: frame height as stored.
        rotation: counter-clockwise degrees (0, 90, 180, 270) that turn a stored frame
            into the displayed one (``np.rot90(frame, rotation // 90)``).
        fps: average frame rate.
        time_base: the stream's time base (seconds per pts unit).
        pts: (N,) int64 presentation timestamps in presentation order.
        timestamps: (N,) float64 seconds from the first frame.
        keyframes: (K,) int64 sorted presentation indices of key frames (seek points).
        pts_trusted: whether decoded frames carry these pts (False for AVI with B-frames:
            frames must then be counted from the start).
        header_frames: frame count in the container header (0 when it has none).
        problem: one line when the file holds less than its header promises or its
            packets stop with an error (frames are then sampled over what is there).
    """

    path: Path
    stream_index: int
    container: str
    codec: str
    coded_width: int
    coded_height: int
    rotation: int
    fps: float
    time_base: Fraction
    pts: np.ndarray
    timestamps: np.ndarray
    keyframes: np.ndarray
    pts_trusted: bool
    header_frames: int
    problem: str | None = None

    @property
    def total_frames(self) -> int:
        """Frames in the stream."""
        return len(self.pts)

    @property
    def width(self) -> int:
        """Displayed width (rotation applied)."""
        return self.coded_height if self.rotation % 180 else self.coded_width

    @property
    def height(self) -> int:
        """Displayed height (rotation applied)."""
        return self.coded_width if self.rotation % 180 else self.coded_height

    def keyframe_before(self, index: int) -> int:
        """The last key frame at or before presentation index ``index`` (0 if none)."""
        position = np.searchsorted(self.keyframes, index, side="right") - 1
        return int(self.keyframes[position]) if position >= 0 else 0


def _check_file(path: Path) -> None:
    if not path.exists():
        raise VideoError(f"cannot decode video {path}: file not found")
    if path.is_dir():
        raise VideoError(f"cannot decode video {path}: is a directory")
    if path.stat().st_size == 0:
        raise VideoError(f"cannot decode video {path}: empty file (0 bytes)")


def _first_rotation(stream, packet, state: dict) -> None:
    """Decode ``packet`` while no frame has come out yet; record the frame's rotation."""
    import av

    try:
        frames = stream.decode(packet)
    except av.error.FFmpegError:
        frames = []
    if frames:
        state["rotation"] = int(round(frames[0].rotation / 90.0)) % 4 * 90
    else:
        state["tries"] += 1


def _frame_rate(rates: tuple, timestamps: np.ndarray) -> float:
    """The stream's average frame rate: its header's, unless the timestamps say the header
    is off by more than 5% (variable-rate Matroska files declare a nominal rate)."""
    measured = 0.0
    if len(timestamps) > 1 and timestamps[-1] > timestamps[0]:
        measured = (len(timestamps) - 1) / float(timestamps[-1] - timestamps[0])
    for rate in rates:
        if rate and math.isfinite(float(rate)) and float(rate) > 0:
            if measured and abs(float(rate) - measured) > 0.05 * measured:
                return measured
            return float(rate)
    return measured


def probe(path: Path) -> StreamInfo:
    """Read the video stream of ``path``: frame count, timestamps, key frames, rotation.

    Args:
        path: a video file.

    Returns:
        Its :class:`StreamInfo`.

    Raises:
        VideoError: ``cannot decode video <path>: <reason>`` for a missing, empty,
            unreadable, audio-only or frameless file.
    """
    import av  # before decord, always: decord's FFmpeg loaded first breaks PyAV's VP9 encoder

    path = Path(path)
    _check_file(path)
    pts: list[int | None] = []
    keys: list[bool] = []
    problem = None
    state = {"rotation": None, "tries": 0}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.best("video")
            if stream is None:
                raise VideoError(f"cannot decode video {path}: no video stream (audio-only?)")
            context = stream.codec_context
            width, height = int(context.width), int(context.height)
            if width < 1 or height < 1:
                raise VideoError(f"cannot decode video {path}: video stream has no frame size")
            stream.thread_type = "SLICE"  # the first frame out of the first packet
            stream.thread_count = 1  # one frame: FFmpeg's default would start a thread per core
            reorders = bool(context.has_b_frames)
            demuxer = container.demux(stream)
            while True:
                try:
                    packet = next(demuxer)
                except StopIteration:
                    break
                except av.error.FFmpegError as error:
                    if not pts:
                        raise
                    problem = (f"the file is damaged after frame {len(pts)} "
                               f"({decoder_reason(error)})")
                    break
                if packet.size == 0 or packet.is_discard:
                    continue
                pts.append(packet.pts if packet.pts is not None else packet.dts)
                keys.append(bool(packet.is_keyframe))
                if state["rotation"] is None and state["tries"] < _FIRST_FRAME_PACKETS:
                    _first_rotation(stream, packet, state)
            time_base = stream.time_base or Fraction(1, 1)
            header_frames = int(stream.frames or 0)
            container_name = container.format.name
            codec = context.name
            index = stream.index
            rates = (stream.average_rate, stream.guessed_rate)
    except VideoError:
        raise
    except Exception as error:  # av.error.FFmpegError and friends
        reason = getattr(error, "strerror", None) or decoder_reason(error)
        raise VideoError(f"cannot decode video {path}: not a readable video ({reason})") from error
    if not pts:
        raise VideoError(f"cannot decode video {path}: no frames")
    if header_frames > len(pts) and problem is None:
        problem = (f"the header lists {header_frames} frames, the file holds {len(pts)} "
                   "(truncated?)")
    known = [p is not None for p in pts]
    trusted = (all(known) and len(set(pts)) == len(pts)
               and not (reorders and container_name in _FORMATS_WITHOUT_PTS))
    if trusted:
        raw = np.asarray(pts, dtype=np.int64)
        order = np.argsort(raw, kind="stable")
        sorted_pts = raw[order]
        key_pts = raw[np.asarray(keys, dtype=bool)]
        keyframes = np.searchsorted(sorted_pts, key_pts)
        times = (sorted_pts - sorted_pts[0]).astype(np.float64) * float(time_base)
    else:
        # Decode order is presentation order for the seek points of such files; frames
        # are counted, so pts only say where to seek.
        sorted_pts = np.asarray([p if p is not None else -1 for p in pts], dtype=np.int64)
        keyframes = np.flatnonzero(np.asarray(keys, dtype=bool))
        times = None
    fps = _frame_rate(rates, times if times is not None else np.zeros(0))
    if not fps > 0:
        logger.warning("%s reports no frame rate; assuming %.0f fps", path, _FALLBACK_FPS)
        fps = _FALLBACK_FPS
    if times is None:
        times = np.arange(len(pts), dtype=np.float64) / fps
    keyframes = np.unique(np.concatenate([[0], keyframes])).astype(np.int64)
    return StreamInfo(
        path=path, stream_index=index, container=container_name, codec=codec,
        coded_width=width, coded_height=height, rotation=state["rotation"] or 0, fps=fps,
        time_base=Fraction(time_base), pts=sorted_pts, timestamps=times, keyframes=keyframes,
        pts_trusted=trusted, header_frames=header_frames, problem=problem,
    )
