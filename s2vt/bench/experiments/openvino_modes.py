"""How should OpenVINO run the frame encoder? (``s2vt bench --experiment openvino_modes``)

The default encoder (EfficientNet-Lite0) on OpenVINO in each candidate :class:`Mode`
(``THROUGHPUT``: one single-threaded stream per thread, chunks in flight together;
``LATENCY``: one stream on every thread; each at a few chunk sizes), at 128 px (the
demo's size) and 224 px, in fp32 and (where the CPU has fast bf16) bf16, through
``FrameEncoder.encode`` on uint8 frames at the encoder's size, as ``extract`` feeds it.
Beside them: torch eager, and the chosen mode fed float images preprocessed in torch
(what the in-graph preprocessing saves). Every row is timed idle and again with one core
kept busy by another process (what ``extract``'s decode worker does to the encoder).

The answer sets ``s2vt.encoders.runtimes.openvino_cpu.DEFAULT_MODE``; this experiment is
how it was chosen and how to check it on another machine.
"""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2vt.bench.config import BenchConfig
from s2vt.bench.timing import alternate, rate_figure

logger = logging.getLogger(__name__)

SIZES = (128, 224)
# (hint, chunk) candidates.
MODES = (("THROUGHPUT", 4), ("THROUGHPUT", 8), ("THROUGHPUT", 16), ("LATENCY", 16),
         ("LATENCY", 64))
BATCH = 64  # frames per encode call: extract's batch
BATCHES = 2  # calls per timed round


@contextmanager
def busy_core(busy: bool) -> Iterator[None]:
    """While inside, another process spins on one core (when ``busy``)."""
    if not busy:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def _variants(size: int, precision: str) -> dict[str, Callable[[Any], Any]]:
    """name -> encode function for one size and precision."""
    from s2vt.encoders import EncoderSpec, build_encoder
    from s2vt.encoders.runtimes.openvino_cpu import DEFAULT_MODE, Mode, OpenVINONetwork

    spec = EncoderSpec(image_size=size, precision=precision)
    torch_encoder = build_encoder(dataclasses.replace(spec, runtime="torch"))
    encoder = build_encoder(dataclasses.replace(spec, runtime="openvino"))
    if encoder.runtime != "openvino":
        raise RuntimeError("the default encoder did not convert to OpenVINO here")
    compiled = encoder._compiled
    variants: dict[str, Callable[[Any], Any]] = {"torch": torch_encoder.encode}
    for hint, chunk in MODES:
        network = OpenVINONetwork(compiled._model, size, encoder.precision, compiled.mean,
                                  compiled.std, Mode(hint, chunk))
        variants[f"{hint.lower()}_b{chunk}"] = network.encode_uint8
    default = OpenVINONetwork(compiled._model, size, encoder.precision, compiled.mean,
                              compiled.std, DEFAULT_MODE)
    name = f"{DEFAULT_MODE.hint.lower()}_b{DEFAULT_MODE.chunk}_float_input"
    variants[name] = lambda frames: default(encoder.preprocess(frames))
    return variants


def _timed_round(encode: Callable[[Any], Any], frames: Any) -> Callable[[], float]:
    """One timed round for :func:`alternate`: ``BATCHES`` calls of ``encode(frames)``."""

    def run() -> float:
        start = time.perf_counter()
        for _ in range(BATCHES):
            encode(frames)
        return time.perf_counter() - start

    return run


def bench_openvino_modes(folder: Path, config: BenchConfig) -> dict[str, Any]:
    """Images/s of every mode, size and precision, idle and beside a busy core.

    Args:
        folder: unused (nothing is written).
        config: ``repeats`` (rounds) and ``threads``.

    Returns:
        ``{"batch", "images_per_round", "threads", "default_mode", "rows": {"<size>px
        <precision> <idle|one core busy>": {variant: figure}}}``.
    """
    import numpy as np
    import torch

    from s2vt.bench.encoder import cpu_precisions
    from s2vt.encoders.runtimes.openvino_cpu import DEFAULT_MODE

    del folder
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    precisions, _ = cpu_precisions()
    rows: dict[str, Any] = {}
    for size in SIZES:
        frames = np.random.default_rng(0).integers(0, 256, (BATCH, size, size, 3),
                                                   dtype=np.uint8)
        for precision in precisions:
            variants = _variants(size, precision)
            for encode in variants.values():  # warm-up: compiles every shape
                encode(frames)
            for busy in (False, True):
                label = f"{size}px {precision} {'one core busy' if busy else 'idle'}"
                logger.info("openvino modes: %s", label)

                with busy_core(busy):
                    seconds = alternate({name: _timed_round(encode, frames)
                                         for name, encode in variants.items()}, config.repeats)
                rows[label] = {name: rate_figure(BATCH * BATCHES, values, "images/s")
                               for name, values in seconds.items()}
    return {"batch": BATCH, "images_per_round": BATCH * BATCHES,
            "threads": torch.get_num_threads(),
            "default_mode": dataclasses.asdict(DEFAULT_MODE), "rows": rows}
