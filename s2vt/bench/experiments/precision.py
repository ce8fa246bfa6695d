"""Does bf16 autocast train as well as fp32? (``s2vt bench --experiment precision``)

A demo-sized S2VT is trained on the synthetic benchmark in fp32 and with bf16 autocast, two
seeds each, side by side. The verdict compares the gap between the precisions' mean best
validation CIDEr with the spread between seeds of one precision (the noise): bf16 is "the
same within noise" when the gap is no larger than that spread. An accuracy question, not a
speed figure, so it is reported apart from the benchmark's stages and ratios.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from s2vt.bench.config import BenchConfig

# (precision, seed) of the four training runs.
RUNS: tuple[tuple[str, int], ...] = (("fp32", 0), ("fp32", 1), ("bf16", 0), ("bf16", 1))
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
# The figure of each run the verdict compares.
COMPARED = "val_CIDEr"


def run_folder(folder: Path, precision: str, seed: int) -> Path:
    """The output folder (model dir, metrics log) of one training run under ``folder``."""
    return folder / f"{precision}-seed{seed}"


def bench_precision(folder: Path, config: BenchConfig) -> dict[str, Any]:
    """bf16 autocast vs fp32 training on the synthetic benchmark, two seeds each.

    Synthesises ``config.precision_videos`` clips, extracts EfficientNet-Lite0 2x2-grid
    features (128 px, 8 frames, as the demo), and trains the demo's S2VT (hidden 256,
    embed 128) for ``config.precision_epochs`` epochs per run, two runs at a time on half
    the cores each.

    Returns:
        ``{"videos", "epochs", "runs": [per-run figures, see best_figures], **verdict}``.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from s2vt.config import load_config
    from s2vt.datasets import load_annotations
    from s2vt.extraction import ExtractConfig, VideoInput, extract
    from s2vt.runtime import prepare_worker
    from s2vt.synth import synthesize

    data, features = folder / "data", folder / "features"
    synthesize(data, config.precision_videos, seed=0)
    extract_config = load_config(ExtractConfig, None, [
        "encoder.name=efficientnet_lite0", "encoder.pool=grid2", "encoder.image_size=128",
        "sampling.mode=uniform", "sampling.num_frames=8"])
    videos = load_annotations(data / "annotations.json").videos
    extract([VideoInput(v.video_id, v.path) for v in videos], features, extract_config,
            progress=False)
    jobs = [(precision, seed, features, data / "annotations.json",
             run_folder(folder, precision, seed), config.precision_epochs)
            for precision, seed in RUNS]
    threads = max(1, (os.cpu_count() or 1) // 2)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                             initializer=prepare_worker, initargs=(threads,)) as pool:
        runs = list(pool.map(train_run, jobs))
    return {"videos": config.precision_videos, "epochs": config.precision_epochs,
            "runs": runs, **verdict(runs)}


def verdict(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Compare the precisions' mean :data:`COMPARED` figure with the spread between seeds.

    Args:
        runs: per-run figures, each with ``precision`` (one of :data:`PRECISIONS`) and
            :data:`COMPARED`; every precision needs at least one run.

    Returns:
        ``mean_val_CIDEr`` (per precision), ``gap`` (between the two means),
        ``seed_spread`` (the largest max - min within one precision) and
        ``same_within_noise`` (gap <= seed_spread).
    """
    by_precision = {p: [r[COMPARED] for r in runs if r["precision"] == p] for p in PRECISIONS}
    means = {p: sum(v) / len(v) for p, v in by_precision.items()}
    noise = max(max(v) - min(v) for v in by_precision.values())
    gap = abs(means["bf16"] - means["fp32"])
    return {"mean_val_CIDEr": {p: round(m, 4) for p, m in means.items()},
            "gap": round(gap, 4), "seed_spread": round(noise, 4),
            "same_within_noise": gap <= noise}


def best_figures(history: list[dict[str, Any]], best_epoch: int) -> dict[str, Any]:
    """A run's reported figures: the validation scores of its best epoch.

    Args:
        history: the rows of the run's metrics log (``metrics.jsonl``), each with
            ``epoch`` and ``val`` (metric name -> score).
        best_epoch: the epoch training kept as best.

    Returns:
        ``{"best_epoch", "val_CIDEr", "val_BLEU-4"}``, scores rounded to 4 decimals.
    """
    best = next(row for row in history if row["epoch"] == best_epoch)
    return {"best_epoch": best_epoch, "val_CIDEr": round(best["val"]["CIDEr"], 4),
            "val_BLEU-4": round(best["val"]["BLEU-4"], 4)}


def train_run(job: tuple[str, int, Path, Path, Path, int]) -> dict[str, Any]:
    """One training run of :func:`bench_precision` (run in a spawned process).

    Args:
        job: (precision, seed, feature store, annotations file, output folder, epochs).

    Returns:
        ``{"precision", "seed", **best_figures(...), "seconds"}``.
    """
    from s2vt.config import load_config
    from s2vt.training import TrainConfig, train

    precision, seed, features, annotations, out, epochs = job
    train_config = load_config(TrainConfig, None, [
        # configs/demo/s2vt.yaml's model and optimisation, fewer epochs.
        "model.name=s2vt", "model.embed_size=128", "model.hidden_size=256",
        "model.dropout=0.3", "optimizer.lr=0.001", "optimizer.schedule=cosine",
        "batch_size=32", "captions_per_video=2",
        f"epochs={epochs}", "patience=0", f"seed={seed}", f"precision={precision}",
        "device=cpu"])
    started = time.perf_counter()
    result = train(train_config, features, annotations, out, progress=False)
    return {"precision": precision, "seed": seed,
            **best_figures(result.history, result.best_epoch),
            "seconds": round(time.perf_counter() - started, 1)}
