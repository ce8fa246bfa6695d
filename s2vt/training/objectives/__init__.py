"""Training objectives: what one step computes, behind a registry (``objective`` in the config).

- ``xe``: cross-entropy with teacher forcing (:mod:`.crossentropy`), optionally with
  scheduled sampling (Bengio et al. 2015) on the schedule of ``scheduled_sampling``;
- ``scst``: self-critical training with a CIDEr-D reward (:mod:`.scst`).

An objective cuts each epoch into batches, says which module data-parallel training wraps
(everything with gradients has to run inside that module's ``forward`` for DDP to sync
them), and turns a batch into a loss. The trainer does the rest: the optimizer step,
clipping, precision, resume, validation. Objectives reach a model only through its
``forward`` and its decoding hooks (``init_decoding`` / ``decode_step``), so every
registered model trains with each of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from s2vt.errors import S2VTError
from s2vt.training.objectives.base import (
    BLOCKED,
    Objective,
    ObjectiveContext,
    blocked_log_probs,
)

if TYPE_CHECKING:
    from s2vt.models.config import ModelConfig
    from s2vt.text import Vocabulary

__all__ = ["BLOCKED", "OBJECTIVES", "Objective", "ObjectiveContext", "blocked_log_probs",
           "build_objective", "check_init_model", "check_init_vocab"]


def _build_cross_entropy(context: ObjectiveContext) -> Objective:
    from s2vt.training.objectives.crossentropy import CrossEntropy

    return CrossEntropy(context)


def _build_scst(context: ObjectiveContext) -> Objective:
    from s2vt.training.objectives.scst import SelfCritical

    return SelfCritical(context)


OBJECTIVES: dict[str, Callable[[ObjectiveContext], Objective]] = {
    "xe": _build_cross_entropy,
    "scst": _build_scst,
}


def build_objective(context: ObjectiveContext) -> Objective:
    """The objective ``context.config.objective`` names."""
    return OBJECTIVES[context.config.objective](context)


def check_init_model(configured: ModelConfig, recorded: ModelConfig, source: str) -> None:
    """Refuse a configured architecture that contradicts the one a run starts from.

    A ``model`` section left at its defaults means "take the architecture from ``source``";
    otherwise every key must match (``feature_dim`` and ``vocab_size`` 0 mean "unset").

    Raises:
        S2VTError: naming the first differing key and both values.
    """
    from dataclasses import fields

    from s2vt.models.config import ModelConfig

    if configured == ModelConfig():
        return
    for key in (f.name for f in fields(configured)):
        mine, theirs = getattr(configured, key), getattr(recorded, key)
        if key in ("feature_dim", "vocab_size") and mine == 0:
            continue
        if mine != theirs:
            raise S2VTError(f"model.{key} is {mine!r} in the config but {theirs!r} in {source}: "
                            "a run started from a model dir keeps its architecture (leave out "
                            "the model section or make it match)")


def check_init_vocab(vocab: Vocabulary, expected: Vocabulary, source: str, split: str) -> None:
    """Refuse a model dir whose vocabulary is not the one ``split`` gives (``expected``,
    built with the model dir's own min word count).

    Raises:
        S2VTError: with the sizes and the first word found on one side only.
    """
    if vocab == expected:
        return
    mine, theirs = set(vocab.itos), set(expected.itos)
    only = sorted(mine - theirs)[:1] or sorted(theirs - mine)[:1]
    where = ("only in the model dir" if only and only[0] in mine else "only in the split")
    example = f"; e.g. {only[0]!r} is {where}" if only else " (same words, other order)"
    raise S2VTError(f"the vocabulary of {source} ({len(vocab)} words) is not the one training "
                    f"split '{split}' gives with its min word count {vocab.min_count} "
                    f"({len(expected)} words){example}: self-critical training must start "
                    "from a cross-entropy model of the same data")
