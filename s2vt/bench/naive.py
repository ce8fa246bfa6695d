"""``naive`` stage: the baseline ``extract`` is compared with, extracting features the way
reimplementations do: PyAV decodes every frame in order into RGB images, PIL resizes the
sampled ones, and the network runs one frame at a time in fp32 (a plain module call).

Two rows, in alternating rounds on the same clips:

- ``same_process`` (the main comparison): in the bench's own process, so under the same
  conditions as s2vt's extract: the same allocator set-up
  (:func:`s2vt.runtime.keep_freed_memory`), the same torch threads and the same network as
  s2vt builds it (BatchNorm folded into the convolutions);
- ``separate_process``: in a spawned interpreter, as an outside naive script runs it:
  the C library's default allocator and the network as loaded (BatchNorm not folded).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from s2vt.bench.timing import alternate, figure, rate_figure, timed


def naive_features(path: Path, encoder: Any, sampling: Any, net: Any) -> Any:
    """The usual reimplementation: every frame decoded in order and converted to an RGB PIL
    image, the sampled ones resized and centre-cropped with PIL, normalised with
    ``encoder``'s mean and std and run through ``net`` one at a time in fp32.

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
        images = [frame.to_image() for frame in container.decode(stream)]
    rows = []
    with torch.inference_mode():
        for i in sample_indices(len(images), fps, sampling):
            image = images[i]
            scale = size / min(image.size)
            image = image.resize((max(size, round(image.width * scale)),
                                  max(size, round(image.height * scale))), Image.BILINEAR)
            left, top = (image.width - size) // 2, (image.height - size) // 2
            image = image.crop((left, top, left + size, top + size))
            pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0
            rows.append(net((pixels.unsqueeze(0) - encoder.mean) / encoder.std))
    return torch.cat(rows).float().numpy()


def bench_naive(paths: list[Path], encoder: Any, sampling: Any, threads: int | None,
                repeats: int, allocator: bool) -> dict[str, Any]:
    """:func:`naive_features` on every clip, in this process and in a spawned one.

    Args:
        paths: the clips.
        encoder: s2vt's fp32 torch encoder (:func:`s2vt.encoders.build_encoder`): the
            same-process row runs its network (``encoder.net``) and both rows use its
            image size and normalisation.
        sampling: a :class:`s2vt.video.SamplingConfig`.
        threads: torch threads in the spawned process (None: torch's default); this
            process keeps its own setting.
        repeats: timed passes over the clips per row.
        allocator: whether this process runs with :func:`s2vt.runtime.keep_freed_memory`.

    Returns:
        ``{"clips", "frames", "precision", "batch_size", "same_process": {...},
        "separate_process": {...}}``; each row has ``seconds``, ``frames_per_s`` and
        ``videos_per_s`` figures and says how it ran.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    import torch

    fp32 = dataclasses.replace(encoder.spec, precision="fp32", runtime="torch")
    frames = len(paths) * sampling.num_frames

    def here() -> float:
        seconds, _ = timed(lambda: [naive_features(p, encoder, sampling, encoder.net)
                                    for p in paths])
        return seconds

    naive_features(paths[0], encoder, sampling, encoder.net)  # warm up
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        # Warm up (and learn the spawned process's torch threads).
        _, spawned_threads = pool.submit(_naive_pass, paths[:1], fp32, sampling,
                                         threads).result()
        seconds = alternate({
            "same_process": here,
            "separate_process": lambda: pool.submit(_naive_pass, paths, fp32, sampling,
                                                    threads).result()[0],
        }, repeats)

    def row(name: str, **how: Any) -> dict[str, Any]:
        return {"seconds": figure(seconds[name], "s"),
                "frames_per_s": rate_figure(frames, seconds[name], "frames/s"),
                "videos_per_s": rate_figure(len(paths), seconds[name], "videos/s"), **how}

    return {"clips": len(paths), "frames": frames, "precision": "fp32", "batch_size": 1,
            "decoder": "pyav, every frame", "resize": "PIL, sampled frames",
            "same_process": row("same_process", process="same", batchnorm_folded=True,
                                keep_freed_memory=allocator,
                                torch_threads=torch.get_num_threads()),
            "separate_process": row("separate_process", process="separate (spawned)",
                                    batchnorm_folded=False, keep_freed_memory=False,
                                    torch_threads=spawned_threads)}


# The spawned process's encoder and unfolded network, built on its first pass.
_WORKER: dict[str, Any] = {}


def _naive_pass(paths: list[Path], spec: Any, sampling: Any,
                threads: int | None) -> tuple[float, int]:
    """One pass of the separate-process row, in its spawned process: (seconds for every
    clip, its torch threads); the first call also builds the network, outside the timed
    part."""
    import torch

    from s2vt.encoders import build_encoder
    from s2vt.encoders.efficientnet import frame_network

    if not _WORKER:
        if threads is not None:
            torch.set_num_threads(threads)
        _WORKER["encoder"] = build_encoder(spec)  # for its image size and normalisation
        _WORKER["net"] = frame_network(spec, fold_batchnorm=False)
    encoder, net = _WORKER["encoder"], _WORKER["net"]
    seconds, _ = timed(lambda: [naive_features(p, encoder, sampling, net) for p in paths])
    return seconds, torch.get_num_threads()
