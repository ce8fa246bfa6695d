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

Modules: :mod:`~s2vt.training.config` (the configs), :mod:`~s2vt.training.state` (what is
saved for resume and how it is checked), :mod:`~s2vt.training.batching` (the data in memory
and each epoch's batches), :mod:`~s2vt.training.optim` (optimizer, schedule, precision),
:mod:`~s2vt.training.objectives` (what a step minimises: cross-entropy, optionally with
scheduled sampling, or self-critical training; a registry)
:mod:`~s2vt.training.trainer` (the loop and :func:`train`).
"""

from __future__ import annotations

from s2vt.training.batching import epoch_batches, grouped_pair_order, shard_batches
from s2vt.training.config import (
    OptimizerConfig,
    ScheduledSamplingConfig,
    ScstConfig,
    TrainConfig,
    ValMetric,
)
from s2vt.training.optim import build_optimizer
from s2vt.training.state import (
    CONFIG_FILE,
    LAST_DIR,
    METRICS_FILE,
    STATE_FILE,
    STATE_FORMAT_VERSION,
    check_store_matches,
    has_saved_state,
    load_train_state,
)
from s2vt.training.trainer import SampleHook, TrainResult, train

__all__ = [
    "CONFIG_FILE",
    "LAST_DIR",
    "METRICS_FILE",
    "STATE_FILE",
    "STATE_FORMAT_VERSION",
    "OptimizerConfig",
    "SampleHook",
    "ScheduledSamplingConfig",
    "ScstConfig",
    "TrainConfig",
    "TrainResult",
    "ValMetric",
    "build_optimizer",
    "check_store_matches",
    "epoch_batches",
    "grouped_pair_order",
    "has_saved_state",
    "load_train_state",
    "shard_batches",
    "train",
]
