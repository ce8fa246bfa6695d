"""The trainer loop: one training run from its inputs to the model dirs (:func:`train`)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt import distributed
from s2vt.config import config_from_dict, config_to_dict, save_config
from s2vt.devices import resolve_device
from s2vt.errors import S2VTError, one_line
from s2vt.models.config import ModelConfig
from s2vt.training.batching import (
    TrainData,
    feature_stats,
    load_features,
)
from s2vt.training.config import TrainConfig
from s2vt.training.optim import autocast_dtype, build_optimizer, scheduled_lr
from s2vt.training.state import (
    CONFIG_FILE,
    LAST_DIR,
    METRICS_FILE,
    STATE_FILE,
    check_store_matches,
    config_difference,
    load_train_state,
    read_metrics,
    rng_state,
    save_train_state,
    set_rng_state,
    store_info,
    write_metrics,
)

if TYPE_CHECKING:
    import torch

    from s2vt.features import FeatureStore
    from s2vt.models.base import CaptionModel

logger = logging.getLogger(__name__)

_VAL_BATCH = 64

SampleHook = Callable[[int, int, list[int]], None]


@dataclass
class TrainResult:
    """What a training run produced."""

    out: Path
    best_epoch: int | None
    best_score: float | None
    epochs_completed: int
    steps: int
    stopped_early: bool
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """One training run; built and driven by :func:`train`."""

    def __init__(self, config: TrainConfig, features: Path, annotations: Path, out: Path,
                 resume: bool, ctx: distributed.DistContext, device: torch.device,
                 sample_hook: SampleHook | None, progress: bool = True,
                 annotation_format: str | None = None) -> None:
        self.config = config
        self.annotation_format = annotation_format
        self.progress = progress
        self.out = Path(out)
        self.ctx = ctx
        self.device = device
        self.sample_hook = sample_hook
        self.state_path = self.out / STATE_FILE
        self._prepare(Path(features), Path(annotations), resume)

    # -- setup ---------------------------------------------------------------------------
    def _prepare(self, features_path: Path, annotations_path: Path, resume: bool) -> None:
        import torch

        from s2vt.datasets import load_annotations
        from s2vt.features import FeatureStore
        from s2vt.modelcard import card_data
        from s2vt.text import Vocabulary, tokenize
        from s2vt.training.objectives import (
            ObjectiveContext,
            build_objective,
            check_init_model,
            check_init_vocab,
        )

        config = self.config
        if config.objective == "scst" and not config.init_from:
            # Checked here, not in TrainConfig, so that a config file can leave it to the CLI.
            raise S2VTError("objective scst needs init_from: the model dir of a cross-entropy "
                            "run to start from (--init-from MODEL_DIR)")
        if not resume and self.state_path.exists():
            raise S2VTError(f"{self.out} already holds a training run ({STATE_FILE}); pass "
                            "--resume to continue it, or choose another --out")
        state = load_train_state(self.state_path) if resume else None
        store = FeatureStore.open(features_path)
        annotations = load_annotations(annotations_path, self.annotation_format,
                                       keep_missing=True)
        train_split = annotations.split(config.train_split)
        self.store = store
        self.store_info = store_info(store)

        loaded = None
        if state is not None:
            check_store_matches(store, state["store"], f"training state {self.state_path}")
            vocab = Vocabulary.from_dict(state["vocab"], source=str(self.state_path))
        elif config.init_from:
            from s2vt.checkpoint import load_model_dir

            loaded = load_model_dir(Path(config.init_from), device="cpu")
            recorded = {"feature_dim": loaded.config.feature_dim,
                        "encoder": loaded.encoder_spec, "sampling": loaded.sampling,
                        "stream": loaded.stream}
            check_store_matches(store, recorded, f"model dir {config.init_from}")
            vocab = loaded.vocab
            check_init_model(config.model, loaded.config, f"model dir {config.init_from}")
            if config.objective == "scst":
                # Built as the model dir's was (its min count), from this training split.
                built = Vocabulary.build((c.text for c in train_split.captions),
                                         min_count=vocab.min_count)
                check_init_vocab(vocab, built, f"model dir {config.init_from}",
                                 config.train_split)
        elif config.vocab_from:
            from s2vt.checkpoint import read_vocab

            vocab = read_vocab(Path(config.vocab_from))
            unknown = {word for c in train_split.captions for word in tokenize(c.text)
                       if word not in vocab}
            self._info("vocabulary of %s: %d words (%d words of split '%s' are not in it and "
                       "read as <unk>)", config.vocab_from, len(vocab), len(unknown),
                       config.train_split)
        else:
            vocab = Vocabulary.build((c.text for c in train_split.captions),
                                     min_count=config.min_word_count)
        self.vocab = vocab
        from_dir = loaded.config if loaded else None
        if state is not None and config.init_from:
            # The architecture came from the model dir: resume it, whatever the model section.
            from_dir = config_from_dict(ModelConfig, state["model_config"], where="model")
            check_init_model(config.model, from_dir, f"the run being resumed ({self.state_path})")
        self.model_config = self._resolve_model_config(from_dir)
        if state is not None:
            old = state["model_config"]
            key = config_difference(old, config_to_dict(self.model_config))
            if key is not None:
                raise S2VTError(f"model.{key} is {getattr(self.model_config, key)!r} now but "
                                f"{old.get(key)!r} in the run being resumed "
                                f"({self.state_path})")

        max_frames = self.model_config.max_frames
        train_ids = [v.video_id for v in train_split.videos]
        self.train = self._build_data(store, train_split, train_ids, max_frames)
        self.val_refs: dict[str, list[str]] = {}
        self.val_ids: list[str] = []
        self.val_features: list[torch.Tensor] = []
        if config.val_split in annotations.splits():
            val_split = annotations.split(config.val_split)
            refs = {k: v for k, v in val_split.references().items() if v}
            self.val_ids, self.val_features = load_features(
                store, [v for v in refs], max_frames, config.val_split)
            self.val_refs = {k: refs[k] for k in self.val_ids}
        if not self.val_ids:
            self._info("no '%s' split with features: no validation; the best model is the "
                       "last one", config.val_split)
        # What the model card says about the training data (the videos and captions used).
        self.card_data = card_data(annotations.source or annotations_path, self.annotation_format, {
            config.train_split: (len(self.train.video_ids), len(self.train.samples)),
            config.val_split: (len(self.val_ids), sum(map(len, self.val_refs.values())))})

        torch.manual_seed(config.seed)
        from s2vt.models import build_model

        self.model: CaptionModel = build_model(self.model_config)
        if loaded is not None:
            self.model.load_state_dict(loaded.model.state_dict())
        elif state is None:
            mean, std = feature_stats(self.train.features)
            self.model.set_feature_stats(mean, std)
        self.model.to(self.device)
        self.optimizer = build_optimizer(self.model.parameters(), config.optimizer,
                                         self.device)
        self.autocast_dtype = autocast_dtype(config.precision, self.device)
        use_scaler = self.autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

        # Counters; overwritten from the state on resume.
        self.epoch = 0                # the epoch in progress (0-based)
        self.batch_in_epoch = 0       # batches of it already done
        self.step = 0
        self.loss_sum = 0.0           # token-weighted loss of the epoch so far (this rank)
        self.loss_tokens = 0
        self.epoch_seconds = 0.0
        self.best_score: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0
        self.stopped_early = False
        if state is not None:
            self._restore(state)
        elif self.ctx.enabled:
            # Same initial weights everywhere (DDP also broadcasts them), different dropout.
            torch.manual_seed(config.seed + 1_000_003 * self.ctx.rank)

        self.history = read_metrics(self.out / METRICS_FILE, self.epoch) if state else []
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            resolved = replace(config, model=self.model_config)
            save_config(resolved, self.out / CONFIG_FILE)
            write_metrics(self.out / METRICS_FILE, self.history)
        distributed.barrier(self.ctx)

        self.objective = build_objective(ObjectiveContext(
            config, self.train, train_split.references(), self.vocab, self.device,
            self._autocast, self.model))
        self.net = self.objective.network(self.model)
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.net, device_ids=ids)

    def _resolve_model_config(self, from_dir: ModelConfig | None) -> ModelConfig:
        from s2vt.models import check_model_name

        if from_dir is not None:
            return from_dir
        model = self.config.model
        check_model_name(model.name)
        if model.feature_dim not in (0, self.store.feature_dim):
            raise S2VTError(f"config model.feature_dim is {model.feature_dim} but feature store "
                            f"{self.store.root} has feature_dim {self.store.feature_dim} "
                            "(set model.feature_dim=0 to take it from the store)")
        return replace(model, feature_dim=self.store.feature_dim, vocab_size=len(self.vocab))

    def _build_data(self, store: FeatureStore, split, ids: list[str],
                    max_frames: int) -> TrainData:
        kept, arrays = load_features(store, ids, max_frames, self.config.train_split)
        index = {video_id: i for i, video_id in enumerate(kept)}
        samples = []
        for caption in split.captions:      # every reference of every video
            if caption.video_id not in index:
                continue
            ids_ = self.vocab.encode(caption.text, add_bos=True, add_eos=True,
                                     max_len=self.config.max_caption_len)
            if len(ids_) > 2:
                samples.append((index[caption.video_id], ids_))
        if not samples:
            raise S2VTError(f"no training samples: split '{self.config.train_split}' has "
                            f"{len(split.videos)} video(s), {len(kept)} with features in "
                            f"{store.root}, and no usable caption among them")
        self._info("training on %d caption pairs of %d videos; vocabulary %d words",
                   len(samples), len(kept), len(self.vocab))
        return TrainData(kept, arrays, samples)

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise S2VTError(f"training state {self.state_path} does not fit this model: "
                            f"{one_line(error, limit=200)}") from None
        for key in ("epoch", "batch_in_epoch", "step", "loss_sum", "loss_tokens",
                    "epoch_seconds", "best_score", "best_epoch", "bad_epochs", "stopped_early"):
            setattr(self, key, state[key])
        saved_world = state.get("world_size", 1)
        if saved_world != self.ctx.world_size:
            logger.warning("resuming with %d process(es) instead of %d: the data order "
                           "changes, so weights will not match an uninterrupted run",
                           self.ctx.world_size, saved_world)
        rngs = state["rng"]
        try:
            set_rng_state(rngs[self.ctx.rank % len(rngs)], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError,
                ZeroDivisionError) as error:
            raise S2VTError(f"training state {self.state_path} has a malformed RNG state "
                            f"({type(error).__name__})") from None
        if self.ctx.rank != 0:
            # The saved partial epoch loss is the sum over ranks, kept by rank 0 only.
            self.loss_sum, self.loss_tokens = 0.0, 0
        self._info("resuming %s at epoch %d, batch %d (step %d)", self.out, self.epoch + 1,
                   self.batch_in_epoch, self.step)

    def _autocast(self):
        import torch

        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def _info(self, message: str, *args: Any) -> None:
        if self.ctx.is_main:
            logger.info(message, *args)

    # -- saving --------------------------------------------------------------------------
    def _save_state(self) -> None:
        """Every rank calls this (it gathers RNG states and losses); rank 0 writes."""
        rngs = distributed.all_gather_object(self.ctx, rng_state(self.device))
        losses = distributed.all_gather_object(self.ctx, (self.loss_sum, self.loss_tokens))
        if not self.ctx.is_main:
            return
        save_train_state(self.state_path, {
            "model": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "step": self.step,
            "loss_sum": float(sum(s for s, _ in losses)),
            "loss_tokens": int(sum(n for _, n in losses)),
            "epoch_seconds": self.epoch_seconds,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "bad_epochs": self.bad_epochs,
            "stopped_early": self.stopped_early,
            "rng": rngs,
            "world_size": self.ctx.world_size,
            "vocab": self.vocab.to_dict(),
            "model_config": config_to_dict(self.model_config),
            "store": {k: self.store_info[k]
                      for k in ("feature_dim", "encoder", "sampling", "stream")},
        })

    def _save_model_dir(self, directory: Path, info: dict[str, Any]) -> None:
        from s2vt.checkpoint import save_model_dir
        from s2vt.modelcard import write_model_card

        save_model_dir(directory, self.model, self.model_config, self.vocab,
                       self.store_info["encoder"], self.store_info["sampling"],
                       features={k: self.store_info[k]
                                 for k in ("feature_dim", "image_size", "dtype", "decoder")},
                       info=info, stream=self.store_info["stream"])
        write_model_card(directory, data=self.card_data)

    # -- the loop ------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches for ``epoch`` (caption pairs, or videos for scst)."""
        return self.objective.epoch_batches(epoch, self.ctx.rank, self.ctx.world_size)

    def _set_learning_rate(self, step: int, total_steps: int) -> None:
        lr = scheduled_lr(self.config.optimizer, step, total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _train_step(self, batch: list[int]) -> None:
        import torch

        loss, total, count = self.objective.loss(self.net, batch, self.epoch)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.loss_sum += total
        self.loss_tokens += count

    def _validate(self) -> dict[str, float]:
        """Caption the val videos (sharded over ranks, gathered) and score them."""
        from s2vt.metrics import score
        from s2vt.models.inputs import pad_frames

        mine = list(range(self.ctx.rank, len(self.val_ids), self.ctx.world_size))
        predictions: dict[str, str] = {}
        for start in range(0, len(mine), _VAL_BATCH):
            chunk = mine[start:start + _VAL_BATCH]
            features, mask = pad_frames([self.val_features[i] for i in chunk], self.device)
            with self._autocast():
                out = self.model.generate(features, mask, beam_size=self.config.val_beam_size,
                                          max_len=self.config.max_caption_len)
            for i, ids in zip(chunk, out, strict=True):
                predictions[self.val_ids[i]] = self.vocab.decode(ids)
        merged: dict[str, str] = {}
        for part in distributed.all_gather_object(self.ctx, predictions):
            merged.update(part)
        return score(merged, self.val_refs, java=False)

    def run(self) -> TrainResult:
        """Train up to ``config.epochs`` (or early stopping) from where the run stands."""
        from tqdm import tqdm

        config = self.config
        if self.stopped_early:
            self._info("early stopping already ended this run (best epoch %s)", self.best_epoch)
        while self.epoch < config.epochs and not self.stopped_early:
            batches = self._epoch_batches(self.epoch)
            if self.sample_hook is not None:
                self.sample_hook(self.epoch, self.ctx.rank, [i for b in batches for i in b])
            started = time.perf_counter() - self.epoch_seconds
            self.net.train()
            bar = tqdm(total=len(batches), initial=self.batch_in_epoch, unit="batch",
                       desc=f"epoch {self.epoch + 1}/{config.epochs}", leave=False,
                       disable=not (self.ctx.is_main and self.progress),
                       dynamic_ncols=True)
            with bar:
                while self.batch_in_epoch < len(batches):
                    self._set_learning_rate(self.step, config.epochs * len(batches))
                    self._train_step(batches[self.batch_in_epoch])
                    self.batch_in_epoch += 1
                    self.step += 1
                    bar.update(1)
                    if self.loss_tokens:
                        bar.set_postfix({self.objective.summary_label:
                                         f"{self.loss_sum / self.loss_tokens:.3f}"})
                    if (config.save_every_steps and self.step % config.save_every_steps == 0
                            and self.batch_in_epoch < len(batches)):
                        self.epoch_seconds = time.perf_counter() - started
                        self._save_state()
            self._end_epoch(time.perf_counter() - started)
        return TrainResult(out=self.out, best_epoch=self.best_epoch, best_score=self.best_score,
                           epochs_completed=self.epoch, steps=self.step,
                           stopped_early=self.stopped_early, history=self.history)

    def _end_epoch(self, seconds: float) -> None:
        losses = distributed.all_gather_object(self.ctx, (self.loss_sum, self.loss_tokens))
        total, tokens = sum(s for s, _ in losses), sum(n for _, n in losses)
        train_loss = total / tokens if tokens else math.nan
        epoch = self.epoch + 1
        val = self._validate() if self.val_ids else {}
        metric = self.config.val_metric
        current = val.get(metric) if val else None
        improved = current is None or self.best_score is None or current > self.best_score
        if improved:
            self.best_score, self.best_epoch, self.bad_epochs = current, epoch, 0
        else:
            self.bad_epochs += 1
            if self.config.patience and self.bad_epochs >= self.config.patience:
                self.stopped_early = True
        row = {"epoch": epoch, "step": self.step, self.objective.summary_key: train_loss,
               "val": val, "val_metric": metric, "best_epoch": self.best_epoch,
               "seconds": round(seconds, 3)}
        self.history.append(row)
        if self.ctx.is_main:
            info = {"epoch": epoch, "step": self.step, "val": val, "val_metric": metric}
            self._save_model_dir(self.out / LAST_DIR, info)
            if improved:
                self._save_model_dir(self.out, info)
            write_metrics(self.out / METRICS_FILE, self.history)
            shown = f"{metric} {current:.4f}" if current is not None else "no validation"
            logger.info("epoch %d/%d: train %s %.4f, %s%s (%.1fs)", epoch, self.config.epochs,
                        self.objective.summary_label, train_loss, shown,
                        " (best)" if improved else "", seconds)
            if self.stopped_early:
                logger.info("early stopping: no %s improvement for %d epochs (best epoch %d)",
                            metric, self.bad_epochs, self.best_epoch)
        self.epoch, self.batch_in_epoch = epoch, 0
        self.loss_sum, self.loss_tokens, self.epoch_seconds = 0.0, 0, 0.0
        self._save_state()
        distributed.barrier(self.ctx)


def train(config: TrainConfig, features: Path, annotations: Path, out: Path,
          resume: bool = False, *, sample_hook: SampleHook | None = None,
          progress: bool = True, format: str | None = None) -> TrainResult:
    """Train a caption model; see :mod:`s2vt.training` for what ``out`` receives.

    Args:
        config: the resolved training config.
        features: a feature store folder (``s2vt extract``).
        annotations: an annotation file or dataset folder (``load_annotations``).
        out: the output folder; it becomes the best model dir.
        resume: continue the run saved in ``out/train_state.pt``.
        sample_hook: called as ``hook(epoch, rank, sample_indices)`` at the start of every
            epoch with the caption pairs this process trains on (for tests and debugging).
        progress: show a tqdm progress bar (rank 0 only).
        format: annotation format name (``msvd``, ``msrvtt``, ``vatex``...); None detects it.
    Returns:
        A :class:`TrainResult`.
    Raises:
        S2VTError: missing inputs, empty split, feature/config/state mismatches, a refused
            training state, an unknown device, or ``out`` already holding a run without
            ``resume``.
    """
    import torch

    device = resolve_device(config.device)
    ctx = distributed.setup(device.type)
    try:
        if device.type == "cuda" and ctx.enabled:
            device = torch.device("cuda", ctx.local_rank)
        trainer = Trainer(config, Path(features), Path(annotations), Path(out), resume,
                          ctx, device, sample_hook, progress, format)
        return trainer.run()
    finally:
        distributed.teardown(ctx)
