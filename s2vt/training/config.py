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
class ScheduledSamplingConfig:
    """Scheduled sampling (Bengio et al. 2015) for cross-entropy training.

    At each decoding step of a training caption, each caption's previous word is, with
    probability p, replaced by a word sampled from the model's own prediction at the step
    before (teacher forcing otherwise), so the model learns to continue from its own words
    as it must at test time. p rises with the epoch (1-based ``E``)::

        p = 0                                                  for E < start_epoch
        p = min(max_prob, step * (1 + (E - start_epoch) // increase_every))   otherwise

    The defaults follow the common captioning recipe: +0.05 every 5 epochs up to 0.25 (with
    ``start_epoch: 6``, exactly its schedule: 0 for epochs 1-5, 0.05 for 6-10, ...). An epoch
    with p > 0 steps the model word by word through its decoding hooks, which costs more
    than the teacher-forced pass (and has the dropout of the model's decoding path).

    Raises:
        ConfigError: a value out of range; the message names its key.
    """

    start_epoch: int = 1
    increase_every: int = 5
    step: float = 0.05
    max_prob: float = 0.25

    def __post_init__(self) -> None:
        for key in ("start_epoch", "increase_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"scheduled_sampling.{key} must be >= 1, "
                                  f"got {getattr(self, key)}")
        for key in ("step", "max_prob"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"scheduled_sampling.{key} must be in [0, 1], "
                                  f"got {getattr(self, key)}")

    def probability(self, epoch: int) -> float:
        """p for the 1-based ``epoch``."""
        if epoch < self.start_epoch:
            return 0.0
        return min(self.max_prob, self.step * (1 + (epoch - self.start_epoch)
                                               // self.increase_every))


@dataclass
class ScstConfig:
    """Self-critical sequence training (Rennie et al. 2017) with a CIDEr-D reward.

    Each step samples ``num_samples`` captions per video from the model (multinomial, at
    temperature 1, word by word through the model's decoding hooks, with gradients). The
    reward of a caption is its CIDEr-D against the training references of its video, with
    document frequencies from the training split (:class:`s2vt.cider.CiderD`). The loss is
    ``-(reward - baseline) * sum log p(caption)`` (words and <eos>; nothing after it).

    Attributes:
        num_samples: captions sampled per video and step (5 is the common choice; more
            lowers the variance of the baseline at a proportional cost).
        max_len: the most words per sampled caption (None: ``max_caption_len``).
        baseline: ``mean`` (default): the mean reward of the *other* samples of the same
            video (Luo 2020, "a better variant of self-critical sequence training"): no
            extra decoding pass, and a lower-variance, unbiased baseline than one greedy
            caption; needs ``num_samples`` >= 2. ``greedy``: the reward of the model's
            greedy caption (the original SCST), one more decoding pass per step.
        xe_weight: lambda of a mixed objective, ``scst_loss + lambda * xe_loss``, with
            ``xe_loss`` the token cross-entropy (teacher forcing) of every training reference
            of the step's videos: the common regulariser that keeps a policy-gradient run near
            the references' language while it chases the reward (0: plain SCST).

    Raises:
        ConfigError: a value out of range; the message names its key.
    """

    num_samples: int = 5
    max_len: int | None = None
    baseline: Literal["mean", "greedy"] = "mean"
    xe_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.xe_weight < 0:
            raise ConfigError(f"scst.xe_weight must be >= 0, got {self.xe_weight}")
        if self.num_samples < 1:
            raise ConfigError(f"scst.num_samples must be >= 1, got {self.num_samples}")
        if self.baseline == "mean" and self.num_samples < 2:
            raise ConfigError("scst.num_samples must be >= 2 with scst.baseline 'mean' (the "
                              f"other samples are the baseline), got {self.num_samples}")
        if self.max_len is not None and self.max_len < 1:
            raise ConfigError(f"scst.max_len must be >= 1, got {self.max_len}")


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
        init_from: a model dir to fine-tune (its architecture, vocabulary and weights). A
            ``model`` section, when given, must match the model dir's architecture.
        vocab_from: a model dir whose vocabulary this run uses instead of building one from
            the training captions (words it lacks become ``<unk>``), so that two models,
            e.g. an RGB and a flow stream, can be fused (``s2vt fuse``).
        objective: ``xe`` (cross-entropy, teacher forcing) or ``scst`` (self-critical
            training; needs ``init_from``, a cross-entropy model dir with the vocabulary of
            this training split). With ``scst``, ``batch_size`` counts videos per step (each
            with ``scst.num_samples`` sampled captions) and ``train_reward`` (the mean
            CIDEr-D of the samples) replaces ``train_loss`` in metrics.jsonl.
        scheduled_sampling: feed the model its own words in cross-entropy training
            (:class:`ScheduledSamplingConfig`); None (the default) = teacher forcing only.
        scst: self-critical settings (:class:`ScstConfig`), read with ``objective: scst``.

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
    objective: Literal["xe", "scst"] = "xe"
    scheduled_sampling: ScheduledSamplingConfig | None = None
    scst: ScstConfig = field(default_factory=ScstConfig)

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
        if self.objective == "scst" and self.scheduled_sampling is not None:
            raise ConfigError("scheduled_sampling applies to objective xe only; remove it "
                              "with objective scst")
