"""The train stage's configs: the optimizer and everything else a run needs (no torch here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from s2vt.errors import ConfigError
from s2vt.models.config import ModelConfig

# Validation runs without Java, so METEOR is not available per epoch.
ValMetric = Literal["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"]


@dataclass
class OptimizerConfig:
    """Adam / AdamW settings; ``schedule: cosine`` lowers the learning rate from ``lr`` to 0
    along a half cosine over every step of the run (``constant`` keeps ``lr``).

    Raises:
        ConfigError: a value out of range; the message names its key.
    """

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: Literal["constant", "cosine"] = "constant"

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ConfigError(f"optimizer.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ConfigError(f"optimizer.weight_decay must be >= 0, got {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optimizer.betas must be two numbers in [0, 1), "
                              f"got {self.betas}")


@dataclass
class TrainConfig:
    """Everything the train stage needs besides its input and output paths.

    Attributes:
        model: the architecture (feature_dim 0 = from the store; vocab_size is set).
        optimizer: Adam settings.
        epochs: total epochs (a resumed run continues up to this number).
        batch_size: video-caption pairs per step (per process in distributed runs).
        captions_per_video: how many captions of one video share a batch. S2VT's frame phase
            depends on the video alone, so it runs once for them: 2 makes an epoch about
            1.6x faster (the batch then holds batch_size / 2 videos). 1 = plainly shuffled
            pairs. Every pair is still used once per epoch.
        grad_clip: max gradient norm (0 = no clipping).
        label_smoothing: cross-entropy label smoothing.
        seed: seeds the weights, the per-epoch sample order and dropout.
        min_word_count: words rarer than this in the training captions become <unk>.
        max_caption_len: words kept per training caption; also the validation max length.
        precision: auto (fp32 on CPU, bf16/fp16 autocast on CUDA), fp32, bf16, fp16 (CUDA).
        device: auto (CUDA when available, else CPU), cpu, cuda, cuda:N.
        train_split / val_split: annotation splits used for training and validation.
        val_metric: the validation metric that picks the best model and drives early stopping.
        val_beam_size: beam size for validation captions (1 = greedy).
        patience: stop after this many epochs without improvement (0 = never stop early).
        save_every_steps: also save the training state every N steps (0 = per epoch only).
        init_from: a model dir to fine-tune (its architecture, vocabulary and weights).
        vocab_from: a model dir whose vocabulary this run uses instead of building one from
            the training captions (words it lacks become ``<unk>``), so that two models,
            e.g. an RGB and a flow stream, can be fused (``s2vt fuse``).

    Raises:
        ConfigError: a value out of range; the message names its key.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    epochs: int = 30
    batch_size: int = 64
    captions_per_video: int = 1
    grad_clip: float = 5.0
    label_smoothing: float = 0.0
    seed: int = 0
    min_word_count: int = 1
    max_caption_len: int = 20
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    train_split: str = "train"
    val_split: str = "val"
    val_metric: ValMetric = "CIDEr"
    val_beam_size: int = 1
    patience: int = 5
    save_every_steps: int = 100
    init_from: str | None = None
    vocab_from: str | None = None

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "captions_per_video", "min_word_count",
                    "max_caption_len", "val_beam_size")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("grad_clip", "patience", "save_every_steps"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.vocab_from and self.init_from:
            raise ConfigError("vocab_from and init_from are both set; init_from already brings "
                              "its model dir's vocabulary")
