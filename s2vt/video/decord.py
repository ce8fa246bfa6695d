"""The ``decord`` decoder (the default where it installs): seeks to the key frame before
each sampled frame and decodes forward to it, resizing inside FFmpeg while decoding.

decord applies the rotation metadata itself and resizes to the displayed shape it is
given. It builds its own frame index; when that disagrees with the probed stream (a frame
count it cannot measure) the video is refused rather than sampled at shifted positions.

decord must be imported lazily and after PyAV: importing it before PyAV in one process
breaks PyAV's VP9 encoder, and ``import s2vt`` must stay cheap.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from s2vt.video.clip import decoder_reason
from s2vt.video.probe import StreamInfo
from s2vt.video.registry import DecodeFailed, Decoder, module_installed, register_decoder

# Frames decoded per get_batch call: bounds the peak memory of one read to a few MB
# whatever the number of sampled frames, at no measurable cost in speed.
DECODE_CHUNK = 16


def _seekable(times: np.ndarray) -> bool:
    """Whether decord's own frame times are usable; its seeks rely on them. In AVI files
    (no stored times) it holds garbage and lands on wrong frames after a seek: the
    original MSVD clips return frame 1 for frame 60 and frame 0 for frame 90."""
    return bool(np.all(np.isfinite(times)) and np.all(times >= 0) and np.all(np.diff(times) >= 0))


def _batches(reader, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Seek and decode each chunk of sampled frames."""
    for start in range(0, len(indices), DECODE_CHUNK):
        chunk = indices[start : start + DECODE_CHUNK]
        batch = reader.get_batch(chunk.tolist()).asnumpy()
        yield from zip(chunk.tolist(), batch, strict=True)


def _in_order(reader, indices: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """Decode every frame up to the last sampled one, without seeking (decord converts
    each; its ``skip_frames`` seeks and is as wrong as ``get_batch``)."""
    wanted = set(indices.tolist())
    for index in range(int(indices[-1]) + 1):
        frame = reader.next()
        if index in wanted:
            yield index, frame.asnumpy()


@register_decoder
class DecordDecoder(Decoder):
    """decord 0.6 (its own FFmpeg build); wheels for Linux x86_64 and macOS x86_64 only."""

    name = "decord"
    summary = "decord: seeks per sampled frame, resizes while decoding (default)"

    def unavailable(self) -> str | None:
        if not module_installed("decord"):
            return ("decord is not installed (it has wheels only for Linux x86_64 and macOS "
                    "x86_64); use --decoder pyav or auto")
        return None

    def frames(
        self,
        info: StreamInfo,
        indices: np.ndarray,
        shape: tuple[int, int],
        num_threads: int,
        problems: list[str],
    ) -> Iterator[tuple[int, np.ndarray]]:
        import av  # noqa: F401  (before decord, always: see the module docstring)

        try:
            import decord
        except (ImportError, OSError) as error:  # a wheel whose native library cannot load
            raise DecodeFailed(f"decord cannot be imported ({decoder_reason(error)})") from error

        width, height = shape
        try:
            reader = decord.VideoReader(
                str(info.path), width=width, height=height, num_threads=num_threads
            )
        except Exception as error:  # RuntimeError, DECORDError, or its frame-count assert
            # The header was readable (PyAV), so the frame data is what is broken: typically
            # an mp4 whose index is up front but whose data was cut off (partial download).
            raise DecodeFailed(
                f"corrupt or truncated video data ({decoder_reason(error)})"
            ) from error
        try:
            if len(reader) != info.total_frames:
                raise DecodeFailed(f"cannot measure the stream: counts {len(reader)} frames "
                                   f"where it holds {info.total_frames}")
            times = reader.get_frame_timestamp(list(range(len(reader))))[:, 0]
            if _seekable(times):
                yield from _batches(reader, indices)
            else:
                yield from _in_order(reader, indices)
        except DecodeFailed:
            raise
        except Exception as error:
            raise DecodeFailed(f"decoding failed ({decoder_reason(error)})") from error
        finally:
            del reader
