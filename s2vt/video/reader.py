"""``read_clip``: the one way s2vt turns a video file into sampled, resized frames.

Steps, whatever the decoder: probe the stream (frame count, timestamps, rotation: shared
by every decoder, so all of them sample the same frames), pick the frame indices, have
the decoder decode only those, resized so the shorter displayed side is ``size``, and cut
the centre ``size x size``. A long clip is never held in memory: only sampled frames are
converted, in chunks.

A damaged file is read as far as it decodes: a decoder that cannot skip damage fails and
the next one of the chain (``auto``: decord, then PyAV) tries; PyAV skips undecodable
packets, and the frames are then sampled over those that decode, and the clip is marked
``partial`` with a one-line ``warning``. A file no decoder can read raises one
:class:`~s2vt.errors.VideoError` listing each decoder's reason.

``read_frames`` is the same path for frame indices the caller chose (the flow stream's
frame pairs): the same probe, the same decoder chain and fallback, each backend's own
index decoding (decord's in-order reading of AVI included); only those frames are kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from s2vt.video.clip import Clip, centre_crop, resized_shape
from s2vt.video.probe import StreamInfo, probe
from s2vt.video.registry import DecodeFailed, Decoder, decoder_chain
from s2vt.video.sampling import SamplingConfig, sample_indices

DEFAULT_DECODER = "auto"


def _decode(decoder: Decoder, info: StreamInfo, indices: np.ndarray, size: int,
            num_threads: int, problems: list[str], **options) -> dict[int, np.ndarray]:
    """Frames ``indices`` (sorted, unique), cropped to ``size``, by index."""
    width, height = resized_shape(info.width, info.height, size)
    frames: dict[int, np.ndarray] = {}
    for index, frame in decoder.frames(info, indices, (width, height), num_threads, problems,
                                       **options):
        if frame.shape != (height, width, 3):
            raise DecodeFailed(f"decoded frames have shape {frame.shape}, "
                               f"expected {(height, width, 3)}")
        frames[index] = np.ascontiguousarray(centre_crop(frame, size))
    return frames


def _read(decoder: Decoder, info: StreamInfo, sampling: SamplingConfig, size: int,
          num_threads: int) -> Clip:
    total = info.total_frames
    decodable = np.arange(total, dtype=np.int64)
    indices = sample_indices(total, info.fps, sampling, info.timestamps)
    unique = np.unique(indices)
    problems: list[str] = []
    frames = _decode(decoder, info, unique, size, num_threads, problems)
    if len(frames) < len(unique) or problems:
        if not decoder.can_skip_damage:
            raise DecodeFailed(problems[0] if problems else
                               f"{len(unique) - len(frames)} sampled frames did not decode")
        decodable = decoder.decodable(info, num_threads)
        if len(decodable) == 0:
            raise DecodeFailed(f"no frame decodes ({problems[0] if problems else 'no output'})")
        positions = sample_indices(len(decodable), info.fps, sampling,
                                   info.timestamps[decodable])
        indices = decodable[positions]
        unique = np.unique(indices)
        if not set(unique.tolist()) <= set(frames):
            # Sequentially this time: a seek that lands late looks like a missing frame.
            frames = _decode(decoder, info, unique, size, num_threads, [], seek=False)
        if len(frames) < len(unique) or not set(unique.tolist()) <= set(frames):
            raise DecodeFailed("frames decode only sometimes (the file is damaged)")
    partial = len(decodable) < total or info.problem is not None
    notes = [info.problem] if info.problem else []
    if len(decodable) < total:
        reason = f" ({problems[0]})" if problems else ""
        notes.append(f"only {len(decodable)} of {total} frames decode{reason}")
    elif problems:
        notes.append(problems[0])
    stack = np.stack([frames[i] for i in unique.tolist()])
    inverse = np.searchsorted(unique, indices)
    return Clip(
        frames=stack[inverse],
        indices=indices.astype(np.int64),
        timestamps=info.timestamps[indices].astype(np.float64),
        fps=float(info.fps),
        total_frames=total,
        decoder=decoder.name,
        partial=partial,
        decoded_frames=len(decodable),
        warning="; ".join(notes) or None,
    )


def read_clip(
    path: Path,
    sampling: SamplingConfig,
    size: int,
    *,
    num_threads: int = 0,
    decoder: str = DEFAULT_DECODER,
) -> Clip:
    """Decode the sampled frames of a video, resized and centre-cropped to ``size``.

    Args:
        path: the video file.
        sampling: which frames to take.
        size: output side S in pixels.
        num_threads: FFmpeg decoding threads (0: FFmpeg's choice; 1 when several
            decoding processes already share the cores).
        decoder: a decoder name (:func:`s2vt.video.decoder_names`) or ``auto`` (decord
            where installed, PyAV behind it).

    Returns:
        A :class:`Clip` with frames (T, S, S, 3) uint8.

    Raises:
        VideoError: ``cannot decode video <path>: <reason>`` for a missing, empty, corrupt,
            audio-only or frameless file, or one no decoder of the chain can decode
            (each decoder's reason, ``name: reason; name: reason``).
        ConfigError: an unknown decoder name, or one that cannot run on this machine.
    """
    path = Path(path)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    return _with_chain(path, decoder,
                       lambda member, info: _read(member, info, sampling, size, num_threads))


def _read_indices(decoder: Decoder, info: StreamInfo, indices: np.ndarray, size: int,
                  num_threads: int) -> Clip:
    """Frames ``indices`` (any order, repeats allowed) with one decoder: all of them, or
    :class:`DecodeFailed` naming those that do not decode."""
    unique = np.unique(indices)
    problems: list[str] = []
    frames = _decode(decoder, info, unique, size, num_threads, problems)
    if len(frames) < len(unique) and decoder.can_skip_damage:
        # Sequentially this time: a seek that lands late looks like a missing frame.
        frames = _decode(decoder, info, unique, size, num_threads, [], seek=False)
    missing = [i for i in unique.tolist() if i not in frames]
    if missing:
        shown = ", ".join(str(i) for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        reason = f" ({problems[0]})" if problems else ""
        raise DecodeFailed(f"frame{'s' if len(missing) > 1 else ''} {shown} "
                           f"{'do' if len(missing) > 1 else 'does'} not decode{reason}")
    notes = [note for note in (info.problem, *problems[:1]) if note]
    stack = np.stack([frames[i] for i in unique.tolist()])
    return Clip(
        frames=stack[np.searchsorted(unique, indices)],
        indices=indices,
        timestamps=info.timestamps[indices].astype(np.float64),
        fps=float(info.fps),
        total_frames=info.total_frames,
        decoder=decoder.name,
        warning="; ".join(notes) or None,
    )


def read_frames(
    path: Path,
    indices: Sequence[int] | np.ndarray,
    size: int,
    *,
    num_threads: int = 0,
    decoder: str = DEFAULT_DECODER,
) -> Clip:
    """Decode exactly the frames ``indices`` of a video, resized and centre-cropped to
    ``size`` as :func:`read_clip` does: the entry point for callers that choose frames
    themselves (the flow stream's frame pairs), holding only those frames.

    Args:
        path: the video file.
        indices: (N,) presentation indices in ``[0, total_frames)``, any order, repeats
            allowed (a repeated index is decoded once).
        size: output side S in pixels.
        num_threads: FFmpeg decoding threads (0: FFmpeg's choice).
        decoder: a decoder name or ``auto``; pass a clip's ``decoder`` to read more frames
            of it with the backend that read it.

    Returns:
        A :class:`Clip` with frames (N, S, S, 3) uint8 in the order of ``indices``, never
        ``partial`` (every frame asked for decoded); ``warning`` notes damage met on the
        way.

    Raises:
        VideoError: the video cannot be decoded, holds fewer frames than an index asks
            for, or an asked-for frame does not decode with any decoder of the chain
            (each decoder's reason).
        ConfigError: an unknown decoder name, or one that cannot run on this machine.
        ValueError: no index, a negative one, or ``size < 1``.
    """
    from s2vt.errors import VideoError

    path = Path(path)
    wanted = np.asarray(indices)
    if wanted.ndim != 1 or wanted.size == 0 or not np.issubdtype(wanted.dtype, np.integer):
        raise ValueError(f"indices must be a non-empty list of integers, got {indices!r}")
    wanted = wanted.astype(np.int64)
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    if wanted.min() < 0:
        raise ValueError(f"frame indices must be >= 0, got {int(wanted.min())}")

    def read(member: Decoder, info: StreamInfo) -> Clip:
        if wanted.max() >= info.total_frames:
            raise VideoError(f"cannot decode video {path}: frame {int(wanted.max())} asked "
                             f"for, but the video holds {info.total_frames} frames")
        return _read_indices(member, info, wanted, size, num_threads)

    return _with_chain(path, decoder, read)


def _with_chain(path: Path, decoder: str, read: Callable[[Decoder, StreamInfo], Clip]) -> Clip:
    """Probe ``path`` and ``read`` it with each decoder of the chain ``decoder`` until one
    succeeds; the clip's warning then names the decoders that failed before it."""
    from s2vt.errors import VideoError

    chain = decoder_chain(decoder)
    info = probe(path)
    failures: list[str] = []
    for member in chain:
        refusal = member.refuses(info)
        if refusal is not None:
            failures.append(f"{member.name}: {refusal}")
            continue
        try:
            clip = read(member, info)
        except DecodeFailed as failure:
            failures.append(f"{member.name}: {failure.reason}")
            continue
        if failures:
            notes = [*failures, *([clip.warning] if clip.warning else [])]
            clip.warning = f"{'; '.join(notes)}; decoded by {member.name}"
        return clip
    raise VideoError(f"cannot decode video {path}: {'; '.join(failures)}")
