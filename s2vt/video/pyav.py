"""The ``pyav`` decoder (PyAV, a required dependency): runs wherever s2vt installs, and is
what ``auto`` falls back to when decord fails.

- **Only sampled frames are converted.** Frames are decoded in order; before a sampled
  frame that lies past the next key frame the reader seeks to that key frame. Each
  sampled frame goes through one FFmpeg filter graph (rotation, ``scale`` with bilinear
  filtering, ``rgb24``): the chain decord builds, so both give identical pixels; all other
  frames are dropped undecoded to RGB. The graph gets the decoder's thread count: left to
  FFmpeg, every graph (one per video) starts threads on every core. On the demo's small
  clips (160-320 px, 2-core machine; a scratch timing when this changed, not a committed
  script) that cost 0.8 ms per graph and 0.3-0.4 ms per frame, against 0.3 and 0.24 ms
  with one thread; a decode worker (one thread) read the 1,800 clips in 7.0 s of CPU
  instead of 8.1-8.7 s.
- **Frames are identified by their pts** (looked up in the probed stream), so a frame a
  damaged packet never produced is simply missing, and the frames after it keep their
  indices. Where pts cannot be trusted (AVI with B-frames) frames are counted from the
  start instead, and counting stops at the first damaged packet.
- **Damage is skipped, not fatal:** undecodable packets are recorded in ``problems``;
  the reader then asks :meth:`PyAVDecoder.decodable` which frames exist and samples over
  those.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from s2vt.video.clip import decoder_reason
from s2vt.video.probe import StreamInfo
from s2vt.video.registry import DecodeFailed, Decoder, register_decoder

# rotation (counter-clockwise degrees) -> FFmpeg filters that apply it
_ROTATION_FILTERS: dict[int, tuple[tuple[str, str | None], ...]] = {
    0: (),
    90: (("transpose", "cclock"),),
    180: (("hflip", None), ("vflip", None)),
    270: (("transpose", "clock"),),
}


class _Reordered(Exception):
    """Decoded frames carry pts the probe did not see: count frames instead."""


class _Converter:
    """Rotate, resize and convert decoded frames to RGB with one FFmpeg filter graph."""

    def __init__(self, shape: tuple[int, int], rotation: int, time_base, threads: int) -> None:
        self._shape = shape
        self._rotation = rotation
        self._time_base = time_base
        self._threads = threads  # 0: FFmpeg's choice
        self._graph = None
        self._key: tuple | None = None

    def _build(self, frame) -> None:
        import av.filter

        graph = av.filter.Graph()
        graph.threads = self._threads
        last = graph.add_buffer(width=frame.width, height=frame.height, format=frame.format,
                                time_base=self._time_base)
        width, height = self._shape
        filters = (*_ROTATION_FILTERS[self._rotation],
                   ("scale", f"{width}:{height}:flags=bilinear"), ("format", "rgb24"))
        for name, args in filters:
            node = graph.add(name, args) if args else graph.add(name)
            last.link_to(node)
            last = node
        sink = graph.add("buffersink")
        last.link_to(sink)
        graph.configure()
        self._graph = graph

    def __call__(self, frame) -> np.ndarray:
        # A stream may change frame size or pixel format mid-way: rebuild for it.
        key = (frame.width, frame.height, frame.format.name)
        if key != self._key:
            self._build(frame)
            self._key = key
        self._graph.push(frame)
        return self._graph.pull().to_ndarray()


def _open(info: StreamInfo, num_threads: int):
    import av

    container = av.open(str(info.path))
    stream = container.streams[info.stream_index]
    stream.thread_type = "AUTO"
    stream.thread_count = num_threads
    return container, stream


def _decoded(container, stream, problems: list[str]) -> Iterator:
    """Frames of ``stream`` from the container's current position; damaged packets are
    recorded in ``problems`` and skipped."""
    import av

    demuxer = container.demux(stream)
    while True:
        try:
            packet = next(demuxer)
        except StopIteration:
            return
        except av.error.FFmpegError as error:
            problems.append(f"the file is damaged ({decoder_reason(error)})")
            return
        try:
            frames = stream.decode(packet)
        except av.error.FFmpegError as error:
            where = ""
            if packet.pts is not None:
                where = f"at {float(packet.pts * stream.time_base):.2f} s "
            problems.append(f"a packet {where}does not decode ({decoder_reason(error)})")
            continue
        yield from frames


def _by_pts(container, stream, info: StreamInfo, wanted: list[int], problems: list[str],
            convert, seek: bool) -> list[tuple[int, np.ndarray]]:
    index_of = {int(p): i for i, p in enumerate(info.pts)}
    found: list[tuple[int, np.ndarray]] = []
    remaining = list(wanted)
    position = -1  # presentation index of the last frame decoded
    run = None
    while remaining:
        key = info.keyframe_before(remaining[0]) if seek else 0
        if run is None or key > position:
            if key > 0:
                container.seek(int(info.pts[key]), stream=stream, backward=True)
                stream.codec_context.flush_buffers()
            run = _decoded(container, stream, problems)
            last = -1
        for frame in run:
            index = index_of.get(frame.pts)
            if index is None:
                raise _Reordered
            if index < key:
                continue  # leading frames of an open GOP refer to frames not decoded
            if index <= last:
                raise _Reordered
            last = position = index
            while remaining and remaining[0] < index:
                remaining.pop(0)  # never came out: missing
            if remaining and remaining[0] == index:
                remaining.pop(0)
                found.append((index, convert(frame)))
            if not remaining or (seek and info.keyframe_before(remaining[0]) > position):
                break
        else:
            break  # end of the stream: whatever is left is missing
    return found


def _by_count(container, stream, wanted: list[int], problems: list[str],
              convert) -> Iterator[tuple[int, np.ndarray]]:
    remaining = list(wanted)
    seen = len(problems)
    for index, frame in enumerate(_decoded(container, stream, problems)):
        if len(problems) > seen:
            return  # a damaged packet: later frames can no longer be told apart
        if remaining and remaining[0] == index:
            remaining.pop(0)
            yield index, convert(frame)
        if not remaining:
            return


@register_decoder
class PyAVDecoder(Decoder):
    """PyAV (FFmpeg bundled in its wheel): decodes what FFmpeg can, skipping damage."""

    name = "pyav"
    summary = "PyAV: installs everywhere, skips damaged packets"
    can_skip_damage = True

    def frames(
        self,
        info: StreamInfo,
        indices: np.ndarray,
        shape: tuple[int, int],
        num_threads: int,
        problems: list[str],
        *,
        seek: bool = True,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """See :meth:`Decoder.frames`; ``seek=False`` decodes from the start without
        seeking (the reader's second pass over a damaged file)."""
        wanted = sorted(set(int(i) for i in indices))
        try:
            if info.pts_trusted:
                # Collected before yielding: if the frames' pts turn out not to be the
                # stream's, nothing identified by them has been handed out yet.
                attempt: list[str] = []
                container, stream = _open(info, num_threads)
                try:
                    convert = _Converter(shape, info.rotation, stream.time_base, num_threads)
                    found = _by_pts(container, stream, info, wanted, attempt, convert, seek)
                except _Reordered:
                    found = None
                finally:
                    container.close()
                if found is not None:
                    problems.extend(attempt)
                    yield from found
                    return
            container, stream = _open(info, num_threads)
            try:
                convert = _Converter(shape, info.rotation, stream.time_base, num_threads)
                yield from _by_count(container, stream, wanted, problems, convert)
            finally:
                container.close()
        except DecodeFailed:
            raise
        except Exception as error:  # av.error.FFmpegError, filter graph errors
            raise DecodeFailed(f"decoding failed ({decoder_reason(error)})") from error

    def decodable(self, info: StreamInfo, num_threads: int) -> np.ndarray:
        problems: list[str] = []
        try:
            container, stream = _open(info, num_threads)
            try:
                if info.pts_trusted:
                    index_of = {int(p): i for i, p in enumerate(info.pts)}
                    found = {index_of.get(f.pts) for f in _decoded(container, stream, problems)}
                    found.discard(None)
                    return np.asarray(sorted(found), dtype=np.int64)
                count = 0
                for _ in _decoded(container, stream, problems):
                    if problems:
                        break
                    count += 1
                return np.arange(count, dtype=np.int64)
            finally:
                container.close()
        except Exception as error:
            raise DecodeFailed(f"decoding failed ({decoder_reason(error)})") from error
