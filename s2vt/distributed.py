"""Small helpers for data-parallel training started by ``torchrun`` (or any launcher that
sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``).

A single-process run never creates a process group: every helper is then a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from s2vt.errors import S2VTError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank, world size, local rank (its GPU on the node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False   # we created the process group, so we destroy it

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files, logs and progress."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise S2VTError(f"environment variable {name} must be an integer, got {raw!r}") from None


def setup(device_type: str) -> DistContext:
    """Join the process group described by the environment (no-op for one process).

    Args:
        device_type: ``cuda`` (NCCL backend) or ``cpu`` (Gloo backend).
    Returns:
        The :class:`DistContext` of this process.
    """
    import torch.distributed as dist

    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", rank)
    if world <= 1:
        return DistContext()
    if dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, owns_group=False)
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        import torch

        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistContext(rank, world, local_rank, owns_group=True)


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` created it."""
    if ctx.owns_group:
        import torch.distributed as dist

        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (no-op for one process)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.barrier()


def all_gather_object(ctx: DistContext, obj: Any) -> list[Any]:
    """Every rank's ``obj`` in rank order (``[obj]`` for one process)."""
    if not ctx.enabled:
        return [obj]
    import torch.distributed as dist

    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(ctx: DistContext, obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.enabled:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
