"""The train stage: feature store + annotations + config -> model dirs, state and metrics.

Outputs in ``out/``:

- ``out/`` itself is the best model dir (what ``s2vt caption --model`` takes);
- ``out/last/``: the model dir after the latest epoch;
- ``out/train_state.pt``: everything ``--resume`` needs (model, optimizer, step, epoch,
  position in the epoch, RNG states, early-stopping state), loaded with
  ``torch.load(weights_only=True)`` so a pickle payload planted there cannot run;
- ``out/metrics.jsonl``: one JSON line per epoch; ``out/train_config.yaml``: the resolved config.

Resume is exact on CPU: each epoch's sample order is derived from (seed, epoch), and the
state (saved every ``save_every_steps`` steps and after each epoch) carries the RNG states,
so a run killed at any moment and resumed ends with the same weights as an uninterrupted one.

Data-parallel training (``torchrun --nproc-per-node N -m s2vt train ...``) shards the caption
pairs of each epoch with a ``DistributedSampler`` (or, with ``captions_per_video`` > 1, deals
out whole batches, see :func:`shard_batches`); only rank 0 writes files and progress.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from s2vt import distributed
from s2vt.config import config_to_dict, save_config
from s2vt.errors import S2VTError
from s2vt.models.config import ModelConfig

if TYPE_CHECKING:
    import torch

    from s2vt.features import FeatureStore
    from s2vt.models.base import CaptionModel

logger = logging.getLogger(__name__)

STATE_FORMAT_VERSION = 1
# train_state.pt keys -> accepted types (checked on load; bool is only accepted where listed).
_STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "model": (dict,), "optimizer": (dict,), "epoch": (int,), "batch_in_epoch": (int,),
    "step": (int,), "loss_sum": (int, float), "loss_tokens": (int,),
    "epoch_seconds": (int, float), "best_score": (int, float, type(None)),
    "best_epoch": (int, type(None)), "bad_epochs": (int,), "stopped_early": (bool,),
    "rng": (list, tuple), "vocab": (dict,), "model_config": (dict,), "store": (dict,),
}
STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "train_config.yaml"
LAST_DIR = "last"
# Validation runs without Java, so METEOR is not available per epoch.
ValMetric = Literal["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"]
# Encoder settings that change the features; "precision" only changes rounding.
_ENCODER_KEYS = ("name", "weights", "pool", "image_size")
_VAL_BATCH = 64

SampleHook = Callable[[int, int, list[int]], None]


def has_saved_state(out: Path) -> bool:
    """Whether ``out`` holds a training state to ``--resume`` from (a run stopped before
    its first saved state has nothing to resume and starts anew)."""
    return (Path(out) / STATE_FILE).is_file()


@dataclass
class OptimizerConfig:
    """Adam / AdamW settings; ``schedule: cosine`` lowers the learning rate from ``lr`` to 0
    along a half cosine over every step of the run (``constant`` keeps ``lr``)."""

    name: Literal["adam", "adamw"] = "adam"
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    schedule: Literal["constant", "cosine"] = "constant"

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.weight_decay < 0:
            raise ValueError(f"optimizer.lr must be > 0 and weight_decay >= 0, got "
                             f"{self.lr}, {self.weight_decay}")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise ValueError(f"optimizer.betas must be two numbers in [0, 1), got {self.betas}")


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
        device: auto, cpu, cuda, cuda:N.
        train_split / val_split: annotation splits used for training and validation.
        val_metric: the validation metric that picks the best model and drives early stopping.
        val_beam_size: beam size for validation captions (1 = greedy).
        patience: stop after this many epochs without improvement (0 = never stop early).
        save_every_steps: also save the training state every N steps (0 = per epoch only).
        init_from: a model dir to fine-tune (its architecture, vocabulary and weights).
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

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "captions_per_video", "min_word_count",
                    "max_caption_len", "val_beam_size")
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("grad_clip", "patience", "save_every_steps"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


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


@dataclass
class _Data:
    """Features and caption pairs in memory."""

    video_ids: list[str]
    features: list[torch.Tensor]          # per video (T, D) float16
    samples: list[tuple[int, list[int]]]  # (video index, <bos> w1 .. wn <eos>)


# ---------------------------------------------------------------------------- helpers
def _resolve_device(name: str) -> torch.device:
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise S2VTError(f"unknown device '{name}' (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise S2VTError(f"device '{name}' requested but CUDA is not available here")
    return device


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain fp32)."""
    import torch

    if precision == "auto":
        if device.type != "cuda":
            return None     # measured: bf16 autocast does not speed up LSTMs on our CPU
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise S2VTError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def _store_info(store: FeatureStore) -> dict[str, Any]:
    """What a model dir / training state records about its features."""
    return {
        "feature_dim": store.feature_dim,
        "encoder": dict(store.meta.get("encoder") or {}),
        "sampling": dict(store.meta.get("sampling") or {}),
        "image_size": store.meta.get("image_size"),
        "dtype": store.meta.get("dtype"),
    }


def check_store_matches(store: FeatureStore, recorded: dict[str, Any], source: str) -> None:
    """Refuse a feature store whose dim, encoder or sampling differ from ``recorded``.

    Args:
        store: the feature store about to be used.
        recorded: ``feature_dim``, ``encoder``, ``sampling`` as recorded by ``source``.
        source: what recorded them, for the message (a model dir, a training state).
    Raises:
        S2VTError: naming the setting and both values.
    """
    where = f"feature store {store.root} does not match {source}"
    if recorded.get("feature_dim") not in (None, store.feature_dim):
        raise S2VTError(f"{where}: feature_dim is {store.feature_dim} in the store but "
                        f"{recorded['feature_dim']} in {source}")
    mine = store.meta.get("encoder") or {}
    theirs = recorded.get("encoder") or {}
    for key in _ENCODER_KEYS:
        if key in mine and key in theirs and mine[key] != theirs[key]:
            raise S2VTError(f"{where}: encoder.{key} is {mine[key]!r} in the store but "
                            f"{theirs[key]!r} in {source}")
    mine_s = store.meta.get("sampling") or {}
    theirs_s = recorded.get("sampling") or {}
    for key in sorted(set(mine_s) & set(theirs_s)):
        if mine_s[key] != theirs_s[key]:
            raise S2VTError(f"{where}: sampling.{key} is {mine_s[key]!r} in the store but "
                            f"{theirs_s[key]!r} in {source}")


def _load_features(store: FeatureStore, video_ids: list[str], max_frames: int,
                   what: str) -> tuple[list[str], list[torch.Tensor]]:
    """Read the videos the store has (once, into memory); log the ones it lacks."""
    import torch

    from s2vt.features import fit_frames

    kept, arrays, missing = [], [], []
    for video_id in video_ids:
        if not store.has(video_id):
            missing.append(video_id)
            continue
        array = fit_frames(store.read(video_id).features, max_frames)
        arrays.append(torch.from_numpy(array.astype("float16", copy=False)).contiguous())
        kept.append(video_id)
    if missing:
        logger.warning("%d %s video(s) have no features in %s and are skipped (first: %r)",
                       len(missing), what, store.root, missing[0])
    return kept, arrays


def _feature_stats(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (D,) over every frame of the training videos (float64 sums)."""

    total = sum(len(f) for f in features)
    s1 = sum(f.double().sum(0) for f in features)
    s2 = sum(f.double().pow(2).sum(0) for f in features)
    mean = s1 / total
    var = (s2 / total - mean.pow(2)).clamp_min(0.0)
    return mean.float(), var.sqrt().float().clamp_min(1e-6)


def _collate(data: _Data, batch: list[int], device: torch.device):
    """Indices -> features (V, T, D) float32 and mask (V, T) of the batch's distinct videos,
    video_index (B,) of each caption, inputs and targets (B, L)."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    from s2vt.text import PAD_ID

    rows: dict[int, int] = {}
    video_index = torch.tensor([rows.setdefault(data.samples[i][0], len(rows)) for i in batch])
    videos = [data.features[video] for video in rows]
    features = pad_sequence(videos, batch_first=True).float()
    lengths = torch.tensor([len(v) for v in videos])
    mask = torch.arange(features.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    tokens = pad_sequence([torch.tensor(data.samples[i][1]) for i in batch], batch_first=True,
                          padding_value=PAD_ID)
    return (features.to(device), mask.to(device), video_index.to(device),
            tokens[:, :-1].to(device), tokens[:, 1:].to(device))


def grouped_pair_order(samples: list[tuple[int, list[int]]], captions_per_video: int,
                       seed: int, epoch: int) -> list[int]:
    """Every caption pair once, ordered so that consecutive runs of ``captions_per_video``
    pairs share a video while neighbouring runs come from different, random videos.

    Each video's captions are shuffled and cut into runs; runs are ordered by round (a
    video's first run, then its second...) and randomly within a round, so a batch mixes
    many videos, as plainly shuffled pairs do, instead of drawing several batches in a row
    from the same few videos (which learnt much less per epoch).
    """
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    by_video: dict[int, list[int]] = {}
    for index, (video, _) in enumerate(samples):
        by_video.setdefault(video, []).append(index)
    runs: list[tuple[int, float, list[int]]] = []
    for pairs in by_video.values():
        shuffled = [pairs[i] for i in torch.randperm(len(pairs), generator=generator).tolist()]
        for round_, start in enumerate(range(0, len(shuffled), captions_per_video)):
            tie = float(torch.rand((), generator=generator))
            runs.append((round_, tie, shuffled[start:start + captions_per_video]))
    runs.sort(key=lambda run: run[:2])
    return [index for _, _, run in runs for index in run]


def shard_batches(order: list[int], batch_size: int, rank: int, world_size: int,
                  ) -> list[list[int]]:
    """Cut ``order`` into batches and deal them out to the ranks; every rank gets the same
    number of batches (the first ones are repeated to fill the last round)."""
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    padding = -len(batches) % world_size
    batches += [batches[i % len(batches)] for i in range(padding)]
    return batches[rank::world_size]


def _rng_state(device: torch.device) -> dict[str, Any]:
    """RNG states as plain tensors / ints (loadable with weights_only=True)."""
    import numpy as np
    import torch

    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def load_train_state(path: Path) -> dict[str, Any]:
    """Load ``train_state.pt`` with ``weights_only=True`` (a pickle payload is refused).

    Raises:
        S2VTError: missing, corrupt, carrying arbitrary objects, or of another format.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise S2VTError(f"nothing to resume: {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, TypeError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise S2VTError(f"refusing training state {path}: not a plain tensor/number file "
                        f"({first})") from None
    if not isinstance(state, dict) or state.get("format_version") != STATE_FORMAT_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise S2VTError(f"training state {path} has format_version {version!r}; expected "
                        f"{STATE_FORMAT_VERSION}")
    # A damaged or hand-made state must end in one clear line, not a KeyError deep in resume.
    for key, kinds in _STATE_FIELDS.items():
        if key not in state:
            raise S2VTError(f"training state {path} is malformed: no '{key}'")
        if not isinstance(state[key], kinds) or isinstance(state[key], bool) and bool not in kinds:
            raise S2VTError(f"training state {path} is malformed: '{key}' is a "
                            f"{type(state[key]).__name__}")
    return state


def _read_metrics(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    """Complete metric lines of epochs <= ``upto_epoch`` (drops a line cut by a kill)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and \
                row["epoch"] <= upto_epoch:
            rows.append(row)
    return rows


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    from s2vt.fileio import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def _config_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return key
    return None


# ---------------------------------------------------------------------------- the stage
class _Trainer:
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
        from s2vt.text import Vocabulary

        config = self.config
        if not resume and self.state_path.exists():
            raise S2VTError(f"{self.out} already holds a training run ({STATE_FILE}); pass "
                            "--resume to continue it, or choose another --out")
        state = load_train_state(self.state_path) if resume else None
        store = FeatureStore.open(features_path)
        annotations = load_annotations(annotations_path, self.annotation_format,
                                       keep_missing=True)
        train_split = annotations.split(config.train_split)
        self.store = store
        self.store_info = _store_info(store)

        loaded = None
        if state is not None:
            check_store_matches(store, state["store"], f"training state {self.state_path}")
            vocab = Vocabulary.from_dict(state["vocab"], source=str(self.state_path))
        elif config.init_from:
            from s2vt.checkpoint import load_model_dir

            loaded = load_model_dir(Path(config.init_from), device="cpu")
            recorded = {"feature_dim": loaded.config.feature_dim,
                        "encoder": loaded.encoder_spec, "sampling": loaded.sampling}
            check_store_matches(store, recorded, f"model dir {config.init_from}")
            vocab = loaded.vocab
        else:
            vocab = Vocabulary.build((c.text for c in train_split.captions),
                                     min_count=config.min_word_count)
        self.vocab = vocab
        self.model_config = self._resolve_model_config(loaded.config if loaded else None)
        if state is not None:
            old = state["model_config"]
            key = _config_difference(old, config_to_dict(self.model_config))
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
            self.val_ids, self.val_features = _load_features(
                store, [v for v in refs], max_frames, config.val_split)
            self.val_refs = {k: refs[k] for k in self.val_ids}
        if not self.val_ids:
            self._info("no '%s' split with features: no validation; the best model is the "
                       "last one", config.val_split)

        torch.manual_seed(config.seed)
        from s2vt.models import build_model

        self.model: CaptionModel = build_model(self.model_config)
        if loaded is not None:
            self.model.load_state_dict(loaded.model.state_dict())
        elif state is None:
            mean, std = _feature_stats(self.train.features)
            self.model.set_feature_stats(mean, std)
        self.model.to(self.device)
        opt = config.optimizer
        optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[opt.name]
        # fused=True: one kernel for all parameters instead of a loop of small ops per
        # tensor; a demo-sized S2VT step takes 54 instead of 68 ms on 2 CPU cores.
        self.optimizer = optimizer_class(self.model.parameters(), lr=opt.lr,
                                         betas=tuple(opt.betas), weight_decay=opt.weight_decay,
                                         fused=True)
        self.autocast_dtype = _autocast_dtype(config.precision, self.device)
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

        self.history = _read_metrics(self.out / METRICS_FILE, self.epoch) if state else []
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            resolved = replace(config, model=self.model_config)
            save_config(resolved, self.out / CONFIG_FILE)
            _write_metrics(self.out / METRICS_FILE, self.history)
        distributed.barrier(self.ctx)

        self.net = self.model
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)

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

    def _build_data(self, store: FeatureStore, split, ids: list[str], max_frames: int) -> _Data:
        kept, arrays = _load_features(store, ids, max_frames, self.config.train_split)
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
        return _Data(kept, arrays, samples)

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            if state.get("scaler"):
                self.scaler.load_state_dict(state["scaler"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            first = " ".join(str(error).split())[:200] or type(error).__name__
            raise S2VTError(f"training state {self.state_path} does not fit this model: "
                            f"{first}") from None
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
            _set_rng_state(rngs[self.ctx.rank % len(rngs)], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError,
                ZeroDivisionError) as error:
            raise S2VTError(f"training state {self.state_path} has a malformed RNG state "
                            f"({type(error).__name__})") from None
        if self.ctx.rank != 0:
            # The saved partial epoch loss is the sum over ranks, kept by rank 0 only.
            self.loss_sum, self.loss_tokens = 0.0, 0
        self._info("resuming %s at epoch %d, batch %d (step %d)", self.out, self.epoch + 1,
                   self.batch_in_epoch, self.step)

    def _info(self, message: str, *args: Any) -> None:
        if self.ctx.is_main:
            logger.info(message, *args)

    # -- saving --------------------------------------------------------------------------
    def _save_state(self) -> None:
        """Every rank calls this (it gathers RNG states and losses); rank 0 writes."""
        import torch

        from s2vt.fileio import atomic_write

        rngs = distributed.all_gather_object(self.ctx, _rng_state(self.device))
        losses = distributed.all_gather_object(self.ctx, (self.loss_sum, self.loss_tokens))
        if not self.ctx.is_main:
            return
        state = {
            "format_version": STATE_FORMAT_VERSION,
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
            "store": {k: self.store_info[k] for k in ("feature_dim", "encoder", "sampling")},
        }
        atomic_write(self.state_path, lambda handle: torch.save(state, handle))

    def _save_model_dir(self, directory: Path, info: dict[str, Any]) -> None:
        from s2vt.checkpoint import save_model_dir

        save_model_dir(directory, self.model, self.model_config, self.vocab,
                       self.store_info["encoder"], self.store_info["sampling"],
                       features={k: self.store_info[k]
                                 for k in ("feature_dim", "image_size", "dtype")},
                       info=info)

    # -- the loop ------------------------------------------------------------------------
    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        """This process's batches of caption-pair indices for ``epoch``: a pure function of
        (seed, epoch, rank, world size), so a mid-epoch resume continues the same order."""
        config = self.config
        if config.captions_per_video > 1:
            order = grouped_pair_order(self.train.samples, config.captions_per_video,
                                       seed=config.seed, epoch=epoch)
            return shard_batches(order, config.batch_size, self.ctx.rank, self.ctx.world_size)
        from torch.utils.data import DistributedSampler

        sampler = DistributedSampler(self.train.samples, num_replicas=self.ctx.world_size,
                                     rank=self.ctx.rank, shuffle=True, seed=config.seed)
        sampler.set_epoch(epoch)
        indices = list(sampler)
        return [indices[i:i + config.batch_size]
                for i in range(0, len(indices), config.batch_size)]

    def _set_learning_rate(self, step: int, total_steps: int) -> None:
        """The scheduled learning rate of ``step`` (a function of the step alone, so a
        resumed run follows the same schedule)."""
        opt = self.config.optimizer
        lr = opt.lr
        if opt.schedule == "cosine":
            lr = 0.5 * opt.lr * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _train_step(self, batch: list[int]) -> None:
        import torch
        import torch.nn.functional as F

        from s2vt.text import PAD_ID

        features, mask, video_index, inputs, targets = _collate(self.train, batch, self.device)
        with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                            enabled=self.autocast_dtype is not None):
            logits = self.net(features, mask, inputs, video_index)
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                               targets.reshape(-1), ignore_index=PAD_ID,
                               label_smoothing=self.config.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.config.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        tokens = int((targets != PAD_ID).sum())
        self.loss_sum += float(loss.detach()) * tokens
        self.loss_tokens += tokens

    def _validate(self) -> dict[str, float]:
        """Caption the val videos (sharded over ranks, gathered) and score them."""
        import torch
        from torch.nn.utils.rnn import pad_sequence

        from s2vt.metrics import score

        mine = list(range(self.ctx.rank, len(self.val_ids), self.ctx.world_size))
        predictions: dict[str, str] = {}
        for start in range(0, len(mine), _VAL_BATCH):
            chunk = mine[start:start + _VAL_BATCH]
            videos = [self.val_features[i] for i in chunk]
            features = pad_sequence(videos, batch_first=True).float().to(self.device)
            lengths = torch.tensor([len(v) for v in videos], device=self.device)
            mask = torch.arange(features.shape[1], device=self.device)[None] < lengths[:, None]
            with torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                enabled=self.autocast_dtype is not None):
                out = self.model.generate(features, mask, beam_size=self.config.val_beam_size,
                                          max_len=self.config.max_caption_len)
            for i, ids in zip(chunk, out, strict=True):
                predictions[self.val_ids[i]] = self.vocab.decode(ids)
        merged: dict[str, str] = {}
        for part in distributed.all_gather_object(self.ctx, predictions):
            merged.update(part)
        return score(merged, self.val_refs, java=False)

    def run(self) -> TrainResult:
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
                        bar.set_postfix(loss=f"{self.loss_sum / self.loss_tokens:.3f}")
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
        row = {"epoch": epoch, "step": self.step, "train_loss": train_loss,
               "val": val, "val_metric": metric, "best_epoch": self.best_epoch,
               "seconds": round(seconds, 3)}
        self.history.append(row)
        if self.ctx.is_main:
            info = {"epoch": epoch, "step": self.step, "val": val, "val_metric": metric}
            self._save_model_dir(self.out / LAST_DIR, info)
            if improved:
                self._save_model_dir(self.out, info)
            _write_metrics(self.out / METRICS_FILE, self.history)
            shown = f"{metric} {current:.4f}" if current is not None else "no validation"
            logger.info("epoch %d/%d: train loss %.4f, %s%s (%.1fs)", epoch, self.config.epochs,
                        train_loss, shown, " (best)" if improved else "", seconds)
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
    """Train a caption model; see the module docstring for what ``out`` receives.

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
            training state, or ``out`` already holding a run without ``resume``.
    """
    import torch

    device = _resolve_device(config.device)
    ctx = distributed.setup(device.type)
    try:
        if device.type == "cuda" and ctx.enabled:
            device = torch.device("cuda", ctx.local_rank)
        trainer = _Trainer(config, Path(features), Path(annotations), Path(out), resume,
                           ctx, device, sample_hook, progress, format)
        return trainer.run()
    finally:
        distributed.teardown(ctx)
