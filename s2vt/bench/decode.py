"""``decode`` stage: every registered decoder alone (:func:`s2vt.video.decode_rate`, one
process, one FFmpeg thread, sampled frames per second), on the generated clips and on the
real clips of ``../shared/real/videos`` (``clips/`` and ``benchmark/``) when present.

A decoder that cannot run here (not installed, torchcodec without loadable FFmpeg
libraries, no CUDA device) is reported with its one-line reason instead of a figure; so
is a set of clips that is absent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s2vt.bench.timing import alternate, rate_figure

logger = logging.getLogger(__name__)

# The sub-folders of the real videos folder whose clips are timed.
REAL_SUBFOLDERS = ("clips", "benchmark")


def default_real_videos() -> list[Path]:
    """Where the real clips may be: ``../shared/real/videos`` beside the project checkout
    (this file's), then beside the working directory."""
    project = Path(__file__).resolve().parents[2]
    return [project.parent / "shared" / "real" / "videos",
            Path.cwd().parent / "shared" / "real" / "videos"]


def real_clip_paths(folder: str | Path | None) -> tuple[list[Path], str, str | None]:
    """The real clips to time, or why there are none.

    Args:
        folder: the real videos folder; None: the first of :func:`default_real_videos`
            that exists.

    Returns:
        (clip paths sorted by name, the folder looked in, None or the reason for none).
    """
    from s2vt.video import VIDEO_EXTENSIONS

    candidates = [Path(folder)] if folder is not None else default_real_videos()
    root = next((c for c in candidates if c.is_dir()), candidates[0])
    if not root.is_dir():
        return [], str(root), f"real videos folder not found: {root} (../shared is absent)"
    paths = sorted(p for sub in REAL_SUBFOLDERS if (root / sub).is_dir()
                   for p in (root / sub).iterdir()
                   if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS)
    if not paths:
        return [], str(root), f"no video files in {root}/{{{','.join(REAL_SUBFOLDERS)}}}"
    return paths, str(root), None


def decoder_reasons() -> dict[str, str | None]:
    """Every registered decoder (aliases excluded) -> None, or why it cannot run here."""
    from s2vt.video import backend_names, get_decoder

    return {name: get_decoder(name).unavailable() for name in backend_names()}


def bench_decode(sets: dict[str, list[Path]], skipped: dict[str, str], sampling: Any,
                 size: int, repeats: int) -> dict[str, Any]:
    """Each decoder alone on each set of clips, in alternating rounds.

    Args:
        sets: set name -> its clips (sets to time).
        skipped: set name -> why it is not timed (reported as such).
        sampling: a :class:`s2vt.video.SamplingConfig` (extract's).
        size: the side frames are resized to (the encoder's image size).
        repeats: timed passes over every set per decoder.

    Returns:
        ``{"sampling", "size", "threads", "processes", "sets": {set: {"clips",
        "decoders": {name: {"frames_per_s": figure, "videos_per_s": figure, "frames",
        "failed": [clip names]} | {"skipped": reason}}} | {"skipped": reason}}}``.
    """
    import dataclasses

    reasons = decoder_reasons()
    out: dict[str, Any] = {"sampling": dataclasses.asdict(sampling), "size": size,
                           "threads": 1, "processes": 1, "sets": {}}
    for name, reason in skipped.items():
        out["sets"][name] = {"skipped": reason}
    for set_name, paths in sets.items():
        runnable = [d for d, reason in reasons.items() if reason is None]
        last: dict[str, dict[str, Any]] = {}

        logger.info("decode: %s clips, decoders %s", set_name, ", ".join(runnable))
        seconds = alternate({d: _decode_pass(paths, sampling, size, d, last)
                             for d in runnable}, repeats)
        decoders: dict[str, Any] = {}
        for name, reason in reasons.items():
            if reason is not None:
                decoders[name] = {"skipped": reason}
                continue
            result = last[name]
            decoded = set(result["per_video"])
            failed = [p.name for p in paths if str(p) not in decoded]
            if not result["frames"]:
                decoders[name] = {"skipped": f"{name} decoded none of these clips",
                                  "failed": failed}
                continue
            decoders[name] = {
                "frames_per_s": rate_figure(result["frames"], seconds[name], "frames/s"),
                "videos_per_s": rate_figure(len(decoded), seconds[name], "videos/s"),
                "frames": result["frames"], "failed": failed}
        out["sets"][set_name] = {"clips": len(paths), "decoders": decoders}
    return out


def _decode_pass(paths: list[Path], sampling: Any, size: int, decoder: str,
                 last: dict[str, dict[str, Any]]) -> Callable[[], float]:
    """One timed pass of ``decoder`` over ``paths`` for :func:`alternate`; its
    :func:`s2vt.video.decode_rate` result is kept in ``last[decoder]``."""

    def run() -> float:
        from s2vt.video import decode_rate

        result = decode_rate(paths, sampling, size, decoder, num_threads=1, repeats=1)
        last[decoder] = result
        return float(result["seconds"])

    return run


def decoded_frames(paths: list[Path], sampling: Any, size: int, count: int) -> Any:
    """(N, size, size, 3) uint8 frames of the first clips (N <= ``count``, all clips'
    frames when they hold fewer), decoded the default way: the encoder-alone frames."""
    import numpy as np

    from s2vt.video import read_clip

    frames: list[Any] = []
    total = 0
    for path in paths:
        clip = read_clip(path, sampling, size, num_threads=1).frames
        frames.append(clip)
        total += len(clip)
        if total >= count:
            break
    return np.concatenate(frames)[:count]
