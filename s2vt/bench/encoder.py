"""``encoder`` stage: the frame encoder alone on pre-decoded frames, in the same batches
``extract`` packs (images per second at the configured batch size and precision)."""

from __future__ import annotations

import time
from typing import Any

from s2vt.bench.timing import rate


def pack_batches(frames: list[Any], batch_size: int) -> list[Any]:
    """Concatenate clips and cut into ``batch_size`` batches, the last zero-padded.

    Args:
        frames: ``(T_i, H, W, 3)`` arrays, one per clip.
        batch_size: images per batch B.

    Returns:
        ``(B, H, W, 3)`` arrays.
    """
    import numpy as np

    stacked = np.concatenate(frames)
    batches = []
    for start in range(0, len(stacked), batch_size):
        batch = stacked[start : start + batch_size]
        if len(batch) < batch_size:
            pad = np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad])
        batches.append(batch)
    return batches


def bench_encoder(encoder: Any, clips: list, batch_size: int) -> dict[str, Any]:
    """The encoder alone on pre-decoded frames, in ``extract``'s packed batches.

    Args:
        encoder: a built frame encoder (:func:`s2vt.encoders.build_encoder`).
        clips: decoded frames per clip, as :func:`s2vt.bench.decode.bench_decode` returns.
        batch_size: images per encoder call.
    """
    batches = pack_batches(clips, batch_size)
    frames = sum(len(c) for c in clips)
    encoder.encode(batches[0])  # warm up (oneDNN primitive creation)
    started = time.perf_counter()
    for batch in batches:
        encoder.encode(batch)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "frames": frames,
            "images_per_s": rate(frames, seconds),
            "padded_images_per_s": rate(len(batches) * batch_size, seconds),
            "batch_size": batch_size, "precision": encoder.precision}
