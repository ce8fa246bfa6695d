"""``extract`` stage: :func:`s2vt.extraction.extract` end to end, start-up included (decode
workers, encoder build, writing the store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2vt.bench.config import BenchConfig
from s2vt.bench.timing import rate, timed


def bench_extract(paths: list[Path], out: Path, config: BenchConfig, sampling: Any,
                  spec: Any) -> dict[str, Any]:
    """``s2vt.extraction.extract`` end to end, start-up and writes included.

    Args:
        paths: the clips.
        out: the feature store to write (must not hold these clips yet, or extract skips).
        config: batch size, workers and threads.
        sampling: a :class:`s2vt.video.SamplingConfig`.
        spec: the :class:`s2vt.encoders.EncoderSpec`.
    """
    from s2vt.extraction import ExtractConfig, VideoInput, default_workers, extract

    extract_config = ExtractConfig(encoder=spec, sampling=sampling,
                                   batch_size=config.batch_size, workers=config.workers,
                                   threads=config.threads)
    inputs = [VideoInput(path.stem, path) for path in paths]
    seconds, result = timed(lambda: extract(inputs, out, extract_config, progress=False))
    if result.failed:
        raise RuntimeError(f"extract failed on {result.failed[0]}")
    frames = len(paths) * sampling.num_frames
    return {"seconds": round(seconds, 3), "frames": frames,
            "frames_per_s": rate(frames, seconds), "videos_per_s": rate(len(paths), seconds),
            "workers": config.workers or default_workers(), "batch_size": config.batch_size}
