"""``train`` stage: :func:`s2vt.training.train` on random features with the paper's sizes
(4096-d, 80 frames, hidden 1000, embed 500), caption pairs per second of the epoch loop.

One training run of ``repeats + 1`` epochs of ``train_steps`` steps: the first epoch is the
warm-up (allocations, first kernels), each later epoch one timed repeat (the trainer times
its epoch loop; saving the model dir is outside it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2vt.bench.config import BenchConfig
from s2vt.bench.timing import figure, rate_figure
from s2vt.bench.words import random_captions, vocabulary_words


def bench_train(folder: Path, config: BenchConfig) -> dict[str, Any]:
    """Paper-sized S2VT trained by :func:`s2vt.training.train` on random features."""
    import numpy as np

    from s2vt.features import FeatureStore
    from s2vt.fileio import atomic_write_json
    from s2vt.models.config import ModelConfig
    from s2vt.training import TrainConfig, train

    rng = np.random.default_rng(0)
    frames, dim, refs = 80, 4096, 4
    pairs = config.train_steps * config.train_batch
    videos = max(1, -(-pairs // refs))
    store = FeatureStore.create(folder / "features", {"feature_dim": dim})
    words = vocabulary_words(config.vocab_size)
    sentences = []
    for i in range(videos):
        video_id = f"v{i}"
        store.write(video_id, rng.standard_normal((frames, dim), dtype=np.float32),
                    np.arange(frames), np.arange(frames) / 25.0)
        # Every word at least once, so the vocabulary really has vocab_size entries.
        captions = random_captions(rng, words, refs)
        sentences += [{"video_id": video_id, "caption": c} for c in captions]
    sentences[0]["caption"] = " ".join(words)
    annotations = folder / "annotations.json"
    atomic_write_json(annotations, {
        "videos": [{"video_id": f"v{i}", "split": "train"} for i in range(videos)],
        "sentences": sentences[:pairs],
    })
    model = ModelConfig(name="s2vt", feature_dim=0, embed_size=500, hidden_size=1000,
                        max_frames=frames)
    train_config = TrainConfig(model=model, epochs=config.repeats + 1,
                               batch_size=config.train_batch, save_every_steps=0, patience=0)
    result = train(train_config, folder / "features", annotations, folder / "model",
                   progress=False)
    seconds = [float(row["seconds"]) for row in result.history[1:]]
    return {"seconds": figure(seconds, "s"), "warmup_epochs": 1,
            "steps_per_epoch": result.steps // len(result.history), "pairs": pairs,
            "captions_per_s": rate_figure(pairs, seconds, "captions/s"),
            "batch_size": config.train_batch,
            "frames": frames, "feature_dim": dim, "hidden": 1000, "embed": 500,
            "vocab": config.vocab_size, "precision": train_config.precision}
