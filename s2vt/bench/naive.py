"""``naive`` stage: the baseline ``extract`` is compared with, extracting features the way
reimplementations do, in a separate process: PyAV decodes every frame in order, PIL
resizes each one, and the same network (as loaded: BatchNorm not folded) runs one frame at
a time in fp32."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from s2vt.bench.timing import rate, timed


def naive_features(path: Path, encoder: Any, sampling: Any, net: Any) -> Any:
    """The usual reimplementation: every frame decoded in order and converted to an RGB PIL
    image, each resized with PIL, the sampled ones normalised with ``encoder``'s mean and
    std and run through ``net`` one at a time in fp32, a plain module call.

    Returns:
        (T, D) float32 features.
    """
    import av
    import numpy as np
    import torch
    from PIL import Image

    from s2vt.video import sample_indices

    size = encoder.image_size
    images = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        for frame in container.decode(stream):
            image = frame.to_image()
            scale = size / min(image.size)
            image = image.resize((max(size, round(image.width * scale)),
                                  max(size, round(image.height * scale))), Image.BILINEAR)
            left, top = (image.width - size) // 2, (image.height - size) // 2
            images.append(image.crop((left, top, left + size, top + size)))
    wanted = sample_indices(len(images), fps, sampling)
    rows = []
    with torch.inference_mode():
        for i in wanted:
            pixels = torch.from_numpy(np.array(images[i])).permute(2, 0, 1).float() / 255.0
            rows.append(net((pixels.unsqueeze(0) - encoder.mean) / encoder.std))
    return torch.cat(rows).float().numpy()


def bench_naive(paths: list[Path], spec: Any, sampling: Any,
                threads: int | None) -> dict[str, Any]:
    """:func:`naive_features` on every clip, as a separate naive script runs it.

    A fresh interpreter (so without :func:`s2vt.runtime.keep_freed_memory`), the encoder's
    network as loaded (BatchNorm not folded into the convs, NCHW), fp32, one frame per call.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    fp32 = dataclasses.replace(spec, precision="fp32")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        seconds = pool.submit(_naive_run, paths, fp32, sampling, threads).result()
    frames = len(paths) * sampling.num_frames
    return {"seconds": round(seconds, 3), "frames": frames,
            "frames_per_s": rate(frames, seconds), "videos_per_s": rate(len(paths), seconds),
            "precision": "fp32", "batch_size": 1, "batchnorm_folded": False,
            "process": "separate"}


def _naive_run(paths: list[Path], spec: Any, sampling: Any, threads: int | None) -> float:
    """:func:`bench_naive`'s measure, in its spawned process: seconds for every clip."""
    import torch

    from s2vt.encoders import build_encoder
    from s2vt.encoders.efficientnet import frame_network

    if threads is not None:
        torch.set_num_threads(threads)
    encoder = build_encoder(spec)  # for its image size and normalisation
    net = frame_network(spec, fold_batchnorm=False)
    naive_features(paths[0], encoder, sampling, net)  # warm up
    seconds, _ = timed(lambda: [naive_features(p, encoder, sampling, net) for p in paths])
    return seconds
