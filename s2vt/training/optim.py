"""How the parameters are updated: the optimizer, its learning-rate schedule, the precision."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from s2vt.errors import S2VTError, one_line
from s2vt.training.config import OptimizerConfig

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None = plain fp32).

    Raises:
        S2VTError: fp16 asked for on a CPU.
    """
    import torch

    if precision == "auto":
        if device.type != "cuda":
            return None     # measured: bf16 autocast does not speed up LSTMs on our CPU
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if precision == "fp16" and device.type != "cuda":
        raise S2VTError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def fused_supported(optimizer_class: type, device: torch.device) -> bool:
    """Whether ``optimizer_class(..., fused=True)`` works for parameters on ``device``.

    Feature-detected rather than assumed from a version number: the class must take a
    ``fused`` argument (torch 2.0+), and one step of a one-element probe on ``device`` must
    run, because whether a device has the fused kernel depends on the torch build (CPU got
    one in torch 2.4; older ones raise when the step runs, or when the optimizer is built).
    """
    import inspect

    import torch

    try:
        if "fused" not in inspect.signature(optimizer_class).parameters:
            return False
    except (TypeError, ValueError):
        return False
    probe = torch.zeros(1, device=device, requires_grad=True)
    probe.grad = torch.zeros_like(probe)
    try:
        optimizer_class([probe], fused=True).step()
    except (RuntimeError, TypeError, ValueError, NotImplementedError) as error:
        logger.debug("no fused %s on %s (%s)", optimizer_class.__name__, device,
                     one_line(error))
        return False
    return True


def build_optimizer(parameters: Iterable[torch.nn.Parameter], config: OptimizerConfig,
                    device: torch.device) -> torch.optim.Optimizer:
    """Adam or AdamW over ``parameters`` (already on ``device``), fused where supported.

    A fused optimizer updates every parameter in one kernel instead of a loop of small
    ops per tensor (a demo-sized S2VT step took 54 instead of 68 ms on 2 CPU cores); the
    result is the same update, so a run may resume on a torch with or without it.
    """
    import torch

    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.name]
    kwargs: dict[str, Any] = {"lr": config.lr, "betas": tuple(config.betas),
                              "weight_decay": config.weight_decay}
    if fused_supported(optimizer_class, device):
        kwargs["fused"] = True
    return optimizer_class(list(parameters), **kwargs)


def scheduled_lr(config: OptimizerConfig, step: int, total_steps: int) -> float:
    """The learning rate of ``step`` of ``total_steps``: a function of the step alone, so a
    resumed run follows the same schedule (``cosine`` falls from ``lr`` to 0)."""
    if config.schedule == "cosine":
        return 0.5 * config.lr * (1.0 + math.cos(math.pi * min(step, total_steps)
                                                 / total_steps))
    return config.lr
