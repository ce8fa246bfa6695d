"""Encoder throughput per runtime, measured the way a reviewer can trust a ratio.

Every runtime encodes the same frames, in the same process, in alternating rounds (torch,
openvino, torch, openvino, ...), so a machine that gets busier or quieter during the run
moves all runtimes alike; each figure is the median of the rounds, with min and max.
Used by the benchmark (``s2vt bench``) and for quick A/B checks.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from s2vt.encoders.spec import EncoderSpec
from s2vt.runtime import torch_threads


def encoder_throughput(
    spec: EncoderSpec,
    runtimes: Sequence[str] = ("torch", "openvino"),
    *,
    frames: np.ndarray | None = None,
    batch_size: int = 16,
    batches: int = 3,
    repeats: int = 5,
    threads: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """Images per second of ``spec``'s encoder on each runtime, in paired alternating rounds.

    Args:
        spec: the encoder (its ``runtime`` is replaced by each of ``runtimes``).
        runtimes: runtime names to compare (each must be available for ``device``).
        frames: (N, S, S, 3) uint8 frames to encode (cycled to fill a batch); None = seeded
            random frames at the encoder's image size.
        batch_size: frames per ``encode`` call.
        batches: ``encode`` calls per timed round.
        repeats: timed rounds per runtime (the median is reported; at least 3 is sensible).
        threads: torch (and OpenVINO) threads; None keeps the current setting.
        device: where the encoders run.

    Returns:
        ``{"spec": ..., "batch_size", "batches", "repeats", "threads", "runtimes": {name:
        {"runtime", "version", "precision", "images_per_second": {"median", "min", "max"},
        "build_seconds"}}}``. A runtime that fell back to torch says so in ``runtime``.
    """
    import torch

    from s2vt.encoders.registry import build_encoder

    if repeats < 1 or batches < 1 or batch_size < 1:
        raise ValueError("repeats, batches and batch_size must be >= 1")
    with torch_threads(threads):
        encoders, built = {}, {}
        for name in runtimes:
            start = time.perf_counter()
            encoders[name] = build_encoder(dataclasses.replace(spec, runtime=name), device=device)
            built[name] = time.perf_counter() - start
        size = next(iter(encoders.values())).image_size
        if frames is None:
            frames = np.random.default_rng(0).integers(0, 256, (batch_size, size, size, 3),
                                                       dtype=np.uint8)
        batch = frames[np.arange(batch_size) % len(frames)]
        for encoder in encoders.values():  # warm-up: compiles, caches, allocator
            encoder.encode(batch)
        rates: dict[str, list[float]] = {name: [] for name in encoders}
        for _ in range(repeats):
            for name, encoder in encoders.items():
                start = time.perf_counter()
                for _ in range(batches):
                    encoder.encode(batch)
                rates[name].append(batch_size * batches / (time.perf_counter() - start))
        results = {}
        for name, encoder in encoders.items():
            values = rates[name]
            results[name] = {
                "runtime": encoder.runtime,
                "version": encoder.runtime_version,
                "precision": encoder.precision,
                "images_per_second": {"median": statistics.median(values), "min": min(values),
                                      "max": max(values)},
                "build_seconds": built[name],
            }
        return {"spec": dataclasses.asdict(spec), "image_size": int(size),
                "batch_size": batch_size, "batches": batches, "repeats": repeats,
                "threads": torch.get_num_threads(), "runtimes": results}
