"""Which torch device a stage runs on: the one place that reads a device name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from s2vt.errors import S2VTError

if TYPE_CHECKING:
    import torch

DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N"


def resolve_device(name: str | torch.device) -> torch.device:
    """A torch device for a user-given name.

    Args:
        name: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``,
            or a ``torch.device``.

    Returns:
        The device.

    Raises:
        S2VTError: an unknown name, or CUDA asked for where there is none.
    """
    import torch

    if isinstance(name, str) and name.strip().lower() == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise S2VTError(f"unknown device {str(name)!r}; use {DEVICE_HELP}") from None
    if device.type not in ("cpu", "cuda"):
        raise S2VTError(f"unsupported device {str(name)!r}; use {DEVICE_HELP}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise S2VTError(f"device {str(name)!r} asked for but CUDA is not available here; "
                        "use cpu or auto")
    return device
