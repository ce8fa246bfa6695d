"""``caption`` stage: :meth:`s2vt.captioner.Captioner.caption_features` with beam search, a
whole batch at once versus one video per call, for the paper-sized S2VT (``caption``) and
for the demo-sized one (``caption_demo_size``); and the random-weight model dirs it and
``caption_cli`` caption with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from s2vt.bench.config import BenchConfig
from s2vt.bench.timing import alternate, rate_figure, wall
from s2vt.bench.words import vocabulary_words

# (frames, feature dim, embed, hidden, vocabulary) of the models the caption stage times.
PAPER_SIZES = (80, 4096, 500, 1000, 3000)
DEMO_SIZES = (8, 5120, 128, 256, 120)


def caption_model_dir(folder: Path, feature_dim: int, vocab_size: int, frames: int,
                      encoder_spec: dict, sampling: dict, embed: int = 500,
                      hidden: int = 1000) -> Path:
    """Write a model dir with random S2VT weights (paper sizes by default), loadable by
    :class:`s2vt.captioner.Captioner` and ``s2vt caption``, for the caption measures.

    The weights are seeded (the same arguments give the same model); the captions it
    writes are random words, but every step of captioning runs as for a trained model.

    Args:
        folder: the model dir to write.
        feature_dim: the feature size D the model reads.
        vocab_size: vocabulary size, special tokens included.
        frames: the most frames the model reads (its ``max_frames``).
        encoder_spec: the encoder spec recorded in ``config.json`` (as a dict; ``{}``
            for a model that captions feature arrays only).
        sampling: the frame sampling recorded in ``config.json`` (as a dict).
        embed / hidden: word embedding and LSTM sizes.

    Returns:
        ``folder``.
    """
    import torch

    from s2vt.checkpoint import save_model_dir
    from s2vt.models import build_model
    from s2vt.models.config import ModelConfig
    from s2vt.text import Vocabulary

    vocab = Vocabulary(vocabulary_words(vocab_size - 4))
    model_config = ModelConfig(name="s2vt", feature_dim=feature_dim, vocab_size=len(vocab),
                               embed_size=embed, hidden_size=hidden, max_frames=frames)
    torch.manual_seed(0)
    save_model_dir(folder, build_model(model_config), model_config, vocab, encoder_spec,
                   sampling, features={"feature_dim": feature_dim, "image_size": 224,
                                       "dtype": "float16"})
    return folder


def bench_caption(folder: Path, config: BenchConfig,
                  sizes: tuple[int, int, int, int, int] = PAPER_SIZES) -> dict[str, Any]:
    """Beam search through the Captioner: one batch of videos vs one video per call, in
    alternating rounds (``config.repeats`` each).

    ``sizes`` = (frames, feature dim, embed, hidden, vocabulary): the paper's S2VT by
    default, :data:`DEMO_SIZES` for the model ``s2vt demo`` trains.
    """
    import numpy as np

    from s2vt.captioner import Captioner

    frames, dim, embed, hidden, vocab_size = sizes
    model_dir = caption_model_dir(folder, dim, vocab_size, frames, {}, {}, embed, hidden)
    captioner = Captioner.from_pretrained(model_dir, beam_size=config.beam_size,
                                          batch_size=config.caption_videos)
    rng = np.random.default_rng(1)
    features = [rng.standard_normal((frames, dim), dtype=np.float32).astype(np.float16)
                for _ in range(config.caption_videos)]
    captioner.caption_features(features[:2])  # warm up
    single_count = min(config.single_videos, len(features))
    seconds = alternate({
        "batched": wall(lambda: captioner.caption_features(features)),
        "single": wall(lambda: [captioner.caption_features([f])
                                for f in features[:single_count]]),
    }, config.repeats)
    return {"videos": len(features), "beam_size": config.beam_size, "frames": frames,
            "feature_dim": dim, "hidden": hidden, "embed": embed, "vocab": vocab_size,
            "batched_videos_per_s": rate_figure(len(features), seconds["batched"],
                                                "videos/s"),
            "single_videos": single_count,
            "single_videos_per_s": rate_figure(single_count, seconds["single"], "videos/s")}
