"""Encoder runtimes: what runs a frame encoder's network (eager torch, or OpenVINO on CPU).

A runtime other than torch takes the network exactly as s2vt builds it (BatchNorm folded,
pooling included), converts it once, caches the converted network on disk
(:mod:`s2vt.encoders.runtimes.cache`) and runs it in the encoder's batching. uint8 frames
at the network's size are normalised inside the runtime's graph; other inputs are
preprocessed in torch first. ``auto`` picks by device, by a rule measured (``docs/performance.md``):
on CPU, OpenVINO ran EfficientNet-Lite0 1.6-3x faster than torch eager in fp32 and at
least 1.3x faster in bf16, on an Intel Xeon with AMX and on an AMD EPYC with AVX512-BF16
(the latter a shared, loaded machine), so it is chosen whenever it is installed. ONNX
Runtime was measured too and was slower than OpenVINO in every case, so it is not offered.
On CUDA torch is the runtime.

This module imports no runtime library: choosing a runtime only asks whether its package
is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from s2vt.encoders.spec import RUNTIME_CHOICES
from s2vt.errors import S2VTError

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "AUTO_ORDER",
    "RUNTIMES",
    "Runtime",
    "compile_network",
    "installed_runtimes",
    "resolve_runtime",
    "runtime_version",
]


@dataclass(frozen=True)
class Runtime:
    """One way to run a frame network.

    Attributes:
        name: the name users give (``--runtime NAME``).
        package: the import name whose presence means the runtime is installed.
        distribution: the pip name (for its version and the install hint).
        devices: device types it runs on.
        module: ``s2vt.encoders.runtimes.<module>`` holding ``compile_network(net, ...)``; None for
            torch, which runs the network as it is.
    """

    name: str
    package: str
    distribution: str
    devices: tuple[str, ...]
    module: str | None


RUNTIMES: dict[str, Runtime] = {
    "torch": Runtime("torch", "torch", "torch", ("cpu", "cuda"), None),
    "openvino": Runtime("openvino", "openvino", "openvino", ("cpu",), "openvino_cpu"),
}

# device type -> runtimes ``auto`` tries, fastest first (measured, see the module docstring).
AUTO_ORDER: dict[str, tuple[str, ...]] = {
    "cpu": ("openvino", "torch"),
    "cuda": ("torch",),
}



class CompiledNetwork(Protocol):
    """A converted network: called on (N, 3, S, S) float32 normalised CPU images, or fed
    (N, S, S, 3) uint8 frames at its size through ``encode_uint8`` when ``takes_uint8``
    says it can; both give (N, D) float32 CPU features."""

    def __call__(self, images: torch.Tensor) -> torch.Tensor: ...

    def takes_uint8(self, frames: Any) -> bool: ...

    def encode_uint8(self, frames: Any) -> torch.Tensor: ...


def is_installed(name: str) -> bool:
    """Whether runtime ``name``'s package can be imported (without importing it)."""
    return importlib.util.find_spec(RUNTIMES[name].package) is not None


def installed_runtimes() -> list[str]:
    """The registered runtimes whose package is installed here."""
    return [name for name in RUNTIMES if is_installed(name)]


def runtime_version(name: str) -> str:
    """The installed version of runtime ``name``'s package (``unknown`` if it has no metadata)."""
    try:
        return importlib.metadata.version(RUNTIMES[name].distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def resolve_runtime(requested: str, device_type: str, *, auto_allowed: bool = True) -> str:
    """Turn a requested runtime into the one that will run.

    Args:
        requested: ``auto`` or a name in :data:`RUNTIMES`.
        device_type: ``cpu`` or ``cuda``.
        auto_allowed: False for encoders that ``auto`` keeps on torch (a network so small
            that converting it costs more than it could save).

    Returns:
        A name in :data:`RUNTIMES`.

    Raises:
        S2VTError: an unknown name, a runtime that is not installed, or one that does not
            run on ``device_type``.
    """
    if requested == "auto":
        if not auto_allowed:
            return "torch"
        for name in AUTO_ORDER.get(device_type, ("torch",)):
            if is_installed(name):
                return name
        return "torch"
    runtime = RUNTIMES.get(requested)
    if runtime is None:
        raise S2VTError(
            f"unknown encoder runtime {requested!r}; known runtimes: {', '.join(RUNTIME_CHOICES)}"
        )
    if device_type not in runtime.devices:
        raise S2VTError(
            f"encoder runtime {requested} runs on {', '.join(runtime.devices)} only, not "
            f"{device_type}; use --runtime auto or torch there"
        )
    if not is_installed(requested):
        raise S2VTError(
            f"encoder runtime {requested} is not installed (pip install {runtime.distribution}), "
            "or use --runtime torch"
        )
    return requested


def compile_network(
    name: str, net: nn.Module, *, identity: dict[str, Any], image_size: int, precision: str,
    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
) -> CompiledNetwork:
    """Convert (or load from the cache) and compile ``net`` for runtime ``name``.

    Args:
        name: a runtime with a module (not ``torch``).
        net: the frame network, eval mode, fp32, on the CPU: (N, 3, S, S) -> (N, D).
        identity: what names the network besides its weights (encoder name, weights,
            pooling); part of the cache key.
        image_size: S; the converted network is specialised to it.
        precision: ``fp32``, ``bf16`` or ``fp16``, applied when compiling.
        mean / std: the per-channel normalisation of images in [0, 1] that ``net``
            expects; given, uint8 frames at ``image_size`` are normalised in the graph.

    Returns:
        The compiled network (see :class:`CompiledNetwork`).
    """
    module = RUNTIMES[name].module
    if module is None:
        raise ValueError(f"runtime {name} runs the torch network itself; nothing to compile")
    target = importlib.import_module(f"s2vt.encoders.runtimes.{module}")
    return target.compile_network(net, identity=identity, image_size=image_size,
                                  precision=precision, mean=mean, std=std)
