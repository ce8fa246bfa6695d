"""What every training objective shares: the context it is built from, the protocol the
trainer calls, and the words no objective feeds back or samples."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch
from torch import nn

from s2vt.text import BOS_ID, PAD_ID, UNK_ID
from s2vt.training.batching import TrainData
from s2vt.training.config import TrainConfig

if TYPE_CHECKING:
    from s2vt.models.base import CaptionModel
    from s2vt.text import Vocabulary

# Never fed back or sampled: padding and <bos> are not words, and the searches never emit
# <unk>, so the model would never meet its own <unk> at test time either.
BLOCKED = (PAD_ID, BOS_ID, UNK_ID)


@dataclass
class ObjectiveContext:
    """What an objective is built from (the trainer's data, vocabulary and device)."""

    config: TrainConfig
    data: TrainData
    references: dict[str, list[str]]     # the training split's captions per video id
    vocab: Vocabulary
    device: torch.device
    autocast: Callable[[], AbstractContextManager]
    model: CaptionModel


class Objective(Protocol):
    """One training objective (see the module docstring)."""

    # metrics.jsonl key of the epoch mean of what :meth:`loss` adds up, and its short name.
    summary_key: str
    summary_label: str

    def epoch_batches(self, epoch: int, rank: int, world_size: int) -> list[list[int]]:
        """This process's batches for the 0-based ``epoch`` (a pure function of it)."""
        ...

    def network(self, model: CaptionModel) -> nn.Module:
        """The module whose ``forward`` runs everything with gradients (wrapped by DDP)."""
        ...

    def loss(self, net: nn.Module, batch: list[int], epoch: int,
             ) -> tuple[torch.Tensor, float, int]:
        """-> (loss to minimise, sum to log, count it sums over) for one batch."""
        ...


def blocked_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """(N, V) logits -> float32 log-probabilities with :data:`BLOCKED` at -inf (out of
    place, so gradients flow)."""
    blocked = torch.zeros(logits.shape[-1], dtype=torch.bool, device=logits.device)
    blocked[list(BLOCKED)] = True
    return torch.log_softmax(logits.float(), dim=-1).masked_fill(blocked, float("-inf"))


def caption_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                          label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean cross-entropy of teacher-forced ``logits`` (B, L, V) against ``targets`` (B, L),
    padding ignored, computed in fp32 (logits may come from autocast)."""
    import torch.nn.functional as F

    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1),
                           ignore_index=PAD_ID, label_smoothing=label_smoothing)
