"""The ``torchcodec`` decoders (optional: ``pip install "s2vt[torchcodec]"``): the PyTorch
project's decoder, on the CPU (``torchcodec``) and on NVIDIA GPUs with NVDEC
(``torchcodec-cuda``).

torchcodec loads the FFmpeg shared libraries of the system (major versions 4 to 8:
``apt install ffmpeg``, ``brew install ffmpeg`` or ``conda install ffmpeg``); PyAV's and
decord's bundled copies are not visible to it, so ``pip install torchcodec`` alone gives
a decoder that cannot load. It applies rotation metadata itself and resizes inside its
decoder (``torchcodec.transforms.Resize``), with its own scaler settings: its pixels
differ from decord's and PyAV's by a few levels (see docs/reliability.md).

It finds frames by their pts, which AVI files with B-frames do not have (FFmpeg numbers
their packets in decode order): such files are refused rather than decoded into
shuffled frames.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

import numpy as np

from s2vt.video.clip import decoder_reason
from s2vt.video.probe import StreamInfo
from s2vt.video.registry import DecodeFailed, Decoder, module_installed, register_decoder

# Frames decoded per call: bounds the memory of one read, as for decord.
DECODE_CHUNK = 16
# A returned frame may differ from the probed time by float rounding only.
_PTS_TOLERANCE = 1e-3


def _import_failure() -> str | None:
    """Why torchcodec cannot load here (one line), or None."""
    if not module_installed("torchcodec"):
        return 'torchcodec is not installed (pip install "s2vt[torchcodec]")'
    try:
        import av  # noqa: F401  (PyAV first: see s2vt.video.decord)
        import torchcodec.decoders  # noqa: F401
    except Exception as error:  # RuntimeError/OSError: no loadable FFmpeg libraries
        text = decoder_reason(error)
        if "FFmpeg" in str(error) or "libav" in str(error):
            text = ("torchcodec cannot load the system's FFmpeg libraries (install FFmpeg 4-8 "
                    "shared libraries, e.g. apt install ffmpeg)")
        return text
    return None


class _TorchcodecDecoder(Decoder):
    device: ClassVar[str]

    def unavailable(self) -> str | None:
        return _import_failure()

    def refuses(self, info: StreamInfo) -> str | None:
        if not info.pts_trusted:
            return (f"{self.name} cannot index this {info.container} stream (B-frames without "
                    "presentation times); use decord or pyav")
        return None

    def frames(
        self,
        info: StreamInfo,
        indices: np.ndarray,
        shape: tuple[int, int],
        num_threads: int,
        problems: list[str],
    ) -> Iterator[tuple[int, np.ndarray]]:
        refusal = self.refuses(info)
        if refusal is not None:
            raise DecodeFailed(refusal)
        reason = _import_failure()
        if reason is not None:
            raise DecodeFailed(reason)
        from torchcodec.decoders import VideoDecoder
        from torchcodec.transforms import Resize

        width, height = shape
        try:
            decoder = VideoDecoder(
                str(info.path), stream_index=info.stream_index, dimension_order="NHWC",
                num_ffmpeg_threads=num_threads, device=self.device, seek_mode="exact",
                transforms=[Resize((height, width))],
            )
            count = len(decoder)
            # torchcodec's times are absolute; in AVI it counts from 0 where FFmpeg's pts
            # start at 1, so times are compared from each one's first frame.
            begin = float(decoder.metadata.begin_stream_seconds_from_content or 0.0)
        except Exception as error:
            raise DecodeFailed(f"cannot open the video ({decoder_reason(error)})") from error
        if count != info.total_frames:
            raise DecodeFailed(f"cannot measure the stream: counts {count} frames where it "
                               f"holds {info.total_frames}")
        for offset in range(0, len(indices), DECODE_CHUNK):
            chunk = indices[offset : offset + DECODE_CHUNK]
            try:
                batch = decoder.get_frames_at(chunk.tolist())
                frames = batch.data.cpu().numpy()
                times = batch.pts_seconds.cpu().numpy()
            except Exception as error:
                raise DecodeFailed(f"decoding failed ({decoder_reason(error)})") from error
            times = times - begin
            expected = info.timestamps[chunk]
            if not np.allclose(times, expected, atol=_PTS_TOLERANCE):
                raise DecodeFailed(f"returned frames at {times[:3].round(3).tolist()} s where "
                                   f"the stream shows them at {expected[:3].round(3).tolist()} s")
            yield from zip(chunk.tolist(), frames, strict=True)


@register_decoder
class TorchcodecCPU(_TorchcodecDecoder):
    """torchcodec on the CPU."""

    name = "torchcodec"
    summary = "torchcodec on the CPU (optional extra; needs the system's FFmpeg)"
    device = "cpu"


@register_decoder
class TorchcodecCUDA(_TorchcodecDecoder):
    """torchcodec decoding on an NVIDIA GPU (NVDEC), frames copied back to the CPU."""

    name = "torchcodec-cuda"
    summary = "torchcodec on an NVIDIA GPU with NVDEC (optional extra)"
    device = "cuda"

    def unavailable(self) -> str | None:
        reason = _import_failure()
        if reason is not None:
            return reason
        import torch

        if not torch.cuda.is_available():
            return "no CUDA device is available (use --decoder torchcodec for the CPU)"
        return None
