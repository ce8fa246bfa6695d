"""``encoder`` stage: the frame encoder alone on the same decoded frames, on every encoder
runtime at the same precision (fp32; and bf16 where the CPU has fast bf16), in alternating
rounds (:func:`s2vt.encoders.runtimes.timing.encoder_throughput`), at ``extract``'s batch
size."""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from s2vt.bench.config import BenchConfig

logger = logging.getLogger(__name__)

# Images per timed round at least (rounds of a few batches: long enough to time, short
# enough for several rounds).
ROUND_IMAGES = 128


def cpu_precisions() -> tuple[list[str], dict[str, str]]:
    """The precisions worth timing on this CPU, and why the others are not timed."""
    from s2vt.encoders.base import cpu_has_fast_bf16

    if cpu_has_fast_bf16():
        return ["fp32", "bf16"], {}
    return ["fp32"], {"bf16": "this CPU has no fast bf16 (AMX or AVX512-BF16): bf16 is "
                              "emulated, slower than fp32, and precision auto never picks it"}


def cpu_runtimes() -> tuple[list[str], dict[str, str]]:
    """The CPU encoder runtimes installed here, and why the others are not timed."""
    from s2vt.encoders import runtimes

    names, missing = [], {}
    for name, runtime in runtimes.RUNTIMES.items():
        if "cpu" not in runtime.devices:
            continue
        if runtimes.is_installed(name):
            names.append(name)
        else:
            missing[name] = f"{runtime.distribution} is not installed"
    return names, missing


def chosen(spec: Any) -> dict[str, str]:
    """What ``extract`` with ``spec`` runs on this CPU: its runtime and precision."""
    import torch

    from s2vt.encoders import runtimes
    from s2vt.encoders.base import resolve_precision

    return {"runtime": runtimes.resolve_runtime(spec.runtime, "cpu"),
            "precision": resolve_precision(spec.precision, torch.device("cpu"))}


def bench_encoder(spec: Any, frames: Any, config: BenchConfig) -> dict[str, Any]:
    """Every CPU runtime at every timed precision, on the same frames.

    Args:
        spec: the encoder (its runtime and precision are replaced per measure).
        frames: (N, S, S, 3) uint8 decoded frames (cycled to fill a batch).
        config: batch size, repeats and threads.

    Returns:
        ``{"batch_size", "images_per_round", "threads", "frames", "chosen": {"runtime",
        "precision"}, "skipped": {name: reason}, "<precision>": {<runtime>: {"runtime",
        "version", "images_per_s": figure, "build_seconds"}}}``; ``runtime`` is the one
        that ran (a runtime that fell back to torch says torch).
    """
    from s2vt.encoders.runtimes.timing import encoder_throughput

    names, skipped = cpu_runtimes()
    precisions, skipped_precisions = cpu_precisions()
    batches = max(1, math.ceil(ROUND_IMAGES / config.batch_size))
    out: dict[str, Any] = {"batch_size": config.batch_size,
                           "images_per_round": batches * config.batch_size,
                           "frames": int(len(frames)), "chosen": chosen(spec),
                           "skipped": {**skipped, **skipped_precisions}}
    for precision in precisions:
        logger.info("encoder alone, %s: %s", precision, ", ".join(names))
        result = encoder_throughput(dataclasses.replace(spec, precision=precision), names,
                                    frames=frames, batch_size=config.batch_size,
                                    batches=batches, repeats=config.repeats,
                                    threads=config.threads)
        out["threads"] = result["threads"]
        out[precision] = {
            name: {"runtime": row["runtime"], "version": row["version"],
                   "images_per_s": {**{k: round(v, 2)
                                       for k, v in row["images_per_second"].items()},
                                    "repeats": result["repeats"], "unit": "images/s"},
                   "build_seconds": round(row["build_seconds"], 3)}
            for name, row in result["runtimes"].items()}
    return out
