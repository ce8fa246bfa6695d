"""``projection``: how long extracting MSR-VTT and VATEX would take on this machine, from
rates measured in the same run.

What is measured here: the per-clip decode time of ``extract``'s decoder (auto, one
process, one FFmpeg thread) for each data set's frames per clip, on the bench's clips
(10 s by default) and on as many longer ones (30 s: MSR-VTT's longest), so decode cost
as a function of clip length is a line through two measured points.

What :func:`project` combines (nothing else is assumed): that line at the data set's mean
clip length (the mean of a linear cost is the cost at the mean length), the encoder-alone
rate of ``extract``'s runtime and precision, and the measured overlap of the two in
``extract`` (its steady rate over the smaller of decode alone and encoder alone): per clip
``max(decode seconds, encode seconds) / overlap``.

The clips are the bench's own 320x240 H.264 clips: MSR-VTT is distributed at 320x240;
VATEX clips are downloaded from YouTube at larger sizes, so its decode time is a lower
bound.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from s2vt.bench.timing import alternate, figure, median

logger = logging.getLogger(__name__)

# The data sets projected: clip count, mean / shortest / longest clip length, frames per
# clip (uniform sampling) and where the numbers come from.
DATASETS: dict[str, dict[str, Any]] = {
    "msrvtt": {"name": "MSR-VTT", "clips": 10_000, "mean_clip_seconds": 15.0,
               "clip_seconds_range": [10.0, 30.0], "frames_per_clip": 40,
               "assumed": "10,000 clips of 10-30 s, mean 15 s; 40 uniform frames per clip"},
    "vatex": {"name": "VATEX", "clips": 34_991, "mean_clip_seconds": 10.0,
              "clip_seconds_range": [10.0, 10.0], "frames_per_clip": 32,
              "assumed": "25,991 train + 3,000 val + 6,000 public test clips of 10 s; "
                         "32 uniform frames per clip (the common VATEX choice)"},
}


def frame_counts() -> list[int]:
    """The frames-per-clip values the data sets sample, in order."""
    return sorted({d["frames_per_clip"] for d in DATASETS.values()}, reverse=True)


def bench_clip_decode(short: list[Path], long: list[Path], short_seconds: float,
                      long_seconds: float, sampling: Any, size: int,
                      repeats: int) -> dict[str, Any]:
    """Per-clip decode seconds of the auto decoder, per data-set frame count and length.

    Args:
        short / long: clips of ``short_seconds`` and ``long_seconds`` (the same count).
        sampling: extract's sampling (its ``num_frames`` is replaced per frame count).
        size: the side frames are resized to.
        repeats: timed passes per (frames, length), alternating.

    Returns:
        ``{"decoder", "threads", "clips", "points": [{"frames_per_clip", "clip_seconds",
        "seconds_per_clip": figure}]}``.
    """
    from s2vt.video import decode_rate

    def one_pass(paths: list[Path], frames: int) -> float:
        chosen = dataclasses.replace(sampling, mode="uniform", num_frames=frames)
        result = decode_rate(paths, chosen, size, "auto", num_threads=1, repeats=1)
        if result["failed"]:
            raise RuntimeError(f"{result['failed']} projection clips failed to decode")
        return float(result["seconds"]) / len(paths)

    runs = {}
    for frames in frame_counts():
        for length, paths in ((short_seconds, short), (long_seconds, long)):
            runs[(frames, length)] = lambda p=paths, f=frames: one_pass(p, f)
    logger.info("projection: per-clip decode, %d and %g s clips", len(short), long_seconds)
    named = {f"{f}@{length}": run for (f, length), run in runs.items()}
    seconds = alternate(named, repeats)
    points = [{"frames_per_clip": f, "clip_seconds": length,
               "seconds_per_clip": figure(seconds[f"{f}@{length}"], "s/clip", digits=4)}
              for f, length in runs]
    return {"decoder": "auto", "threads": 1, "clips": len(short), "points": points}


def decode_seconds_per_clip(points: list[dict[str, Any]], frames: int,
                            clip_seconds: float) -> tuple[float, bool]:
    """The line through the two measured lengths at ``frames`` per clip, at
    ``clip_seconds``; and whether that is outside the measured lengths (extrapolated).

    Never below the faster measured point: a line that falls with clip length (timing
    noise on clips of nearly the same cost) must not extrapolate to free decoding."""
    measured = sorted((p["clip_seconds"], median(p["seconds_per_clip"]))
                      for p in points if p["frames_per_clip"] == frames)
    if len(measured) < 2:
        raise ValueError(f"need two clip lengths measured at {frames} frames per clip")
    (x1, y1), (x2, y2) = measured[0], measured[-1]
    slope = (y2 - y1) / (x2 - x1) if x2 != x1 else 0.0
    return max(y1 + slope * (clip_seconds - x1), min(y1, y2)), not x1 <= clip_seconds <= x2


def project(clip_decode: dict[str, Any], encoder_images_per_s: float,
            overlap: float) -> dict[str, Any]:
    """The projected extract time of each of :data:`DATASETS` on this machine.

    Args:
        clip_decode: :func:`bench_clip_decode`'s result.
        encoder_images_per_s: median encoder-alone rate of extract's runtime and precision.
        overlap: extract's steady rate / min(decode alone, encoder alone), as measured.

    Returns:
        data set -> ``{"name", "assumed", "clips", "mean_clip_seconds", "frames_per_clip",
        "decode_seconds_per_clip", "encode_seconds_per_clip", "bound", "overlap",
        "extrapolated", "decode_alone_hours", "encoder_alone_hours", "hours"}``.
    """
    out: dict[str, Any] = {}
    for key, data in DATASETS.items():
        frames, clips = data["frames_per_clip"], data["clips"]
        decode, extrapolated = decode_seconds_per_clip(clip_decode["points"], frames,
                                                       data["mean_clip_seconds"])
        encode = frames / encoder_images_per_s
        per_clip = max(decode, encode) / overlap
        out[key] = {
            "name": data["name"], "assumed": data["assumed"], "clips": clips,
            "mean_clip_seconds": data["mean_clip_seconds"], "frames_per_clip": frames,
            "decode_seconds_per_clip": round(decode, 4),
            "encode_seconds_per_clip": round(encode, 4),
            "bound": "decode" if decode >= encode else "encoder",
            "overlap": round(overlap, 3), "extrapolated": extrapolated,
            "decode_alone_hours": round(clips * decode / 3600, 2),
            "encoder_alone_hours": round(clips * encode / 3600, 2),
            "hours": round(clips * per_clip / 3600, 2)}
    return out
