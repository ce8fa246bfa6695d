"""Video decoding and frame sampling: the only package that opens videos.

One API, :func:`read_clip` (a frame sampling) and :func:`read_frames` (frame indices the
caller chose), over a registry of decoders (``--decoder NAME``):

- ``decord`` (default where it installs): seeks per sampled frame, resizes in FFmpeg;
- ``pyav``: PyAV, installs everywhere, skips damaged packets;
- ``torchcodec`` / ``torchcodec-cuda``: optional extra, CPU or NVIDIA NVDEC;
- ``auto``: decord where installed, PyAV behind it (a video decord cannot open, measure
  or decode is retried with PyAV).

Every decoder samples from one probe of the stream (:mod:`s2vt.video.probe`), so all of
them return the same frame indices and timestamps for a video, with rotation metadata
applied; decord and PyAV return identical pixels, torchcodec's resize differs by a few
levels (docs/reliability.md). Only sampled frames are converted and resized: sampling 32
frames of a 10-minute clip holds at most one chunk of small frames plus an index.

Modules: ``sampling`` (which frames), ``clip`` (the result, geometry), ``probe`` (the
stream), ``registry`` (the decoder interface), one module per decoder, ``reader``
(:func:`read_clip`, :func:`read_frames`), ``rate`` (decode rate for the benchmark).
"""

from s2vt.video import auto as _auto  # noqa: F401  (registers "auto")
from s2vt.video import decord as _decord  # noqa: F401  (registers "decord")
from s2vt.video import pyav as _pyav  # noqa: F401  (registers "pyav")
from s2vt.video import torchcodec as _torchcodec  # noqa: F401  (registers the torchcodec pair)
from s2vt.video.auto import auto_chain
from s2vt.video.clip import Clip
from s2vt.video.decord import DECODE_CHUNK as _DECODE_CHUNK
from s2vt.video.probe import StreamInfo, probe
from s2vt.video.rate import decode_rate
from s2vt.video.reader import DEFAULT_DECODER, read_clip, read_frames
from s2vt.video.registry import (
    Decoder,
    backend_names,
    decoder_chain,
    decoder_names,
    get_decoder,
    register_decoder,
)
from s2vt.video.sampling import SAMPLING_MODES, VIDEO_EXTENSIONS, SamplingConfig, sample_indices

DECODER_HELP = ("video decoder: auto (default: decord where installed, PyAV when decord "
                "fails or is missing), decord, pyav, torchcodec, torchcodec-cuda")

__all__ = [
    "DECODER_HELP",
    "DEFAULT_DECODER",
    "SAMPLING_MODES",
    "VIDEO_EXTENSIONS",
    "Clip",
    "Decoder",
    "SamplingConfig",
    "StreamInfo",
    "_DECODE_CHUNK",
    "auto_chain",
    "backend_names",
    "decode_rate",
    "decoder_chain",
    "decoder_names",
    "get_decoder",
    "probe",
    "read_clip",
    "read_frames",
    "register_decoder",
    "sample_indices",
]
