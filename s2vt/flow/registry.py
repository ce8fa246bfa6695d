"""The flow-method registry: name -> the module that builds it (imported only when used).

Adding a method: a module with ``unavailable() -> str | None`` and a builder
``(FlowConfig, device) -> FlowMethod``, one entry here, and its name in
``s2vt.flow.config.FLOW_METHOD_NAMES``. The tests run every method that can run offline.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from s2vt.errors import ConfigError, S2VTError
from s2vt.flow.config import FlowConfig


@dataclass(frozen=True)
class FlowMethodInfo:
    """One registered flow method.

    Attributes:
        name: the name users pick (``--flow-method``).
        module: the module that implements it.
        builder: the module's builder function name.
        summary: one line for help texts.
        needs_weights: a network whose weights come from torchvision or ``weights``.
        gpu_recommended: slow on a CPU (seconds per frame pair).
    """

    name: str
    module: str
    builder: str
    summary: str
    needs_weights: bool = False
    gpu_recommended: bool = False


FLOW_METHODS: dict[str, FlowMethodInfo] = {
    info.name: info for info in (
        FlowMethodInfo("farneback", "s2vt.flow.farneback", "build",
                       "OpenCV Farneback, CPU, the offline default"),
        FlowMethodInfo("tvl1", "s2vt.flow.tvl1", "build",
                       "OpenCV contrib Dual TV-L1, CPU, slower and sharper"),
        FlowMethodInfo("raft_small", "s2vt.flow.raft", "build_small",
                       "torchvision RAFT-small (weights: torchvision or --flow-weights)",
                       needs_weights=True, gpu_recommended=True),
        FlowMethodInfo("raft_large", "s2vt.flow.raft", "build_large",
                       "torchvision RAFT-large (weights: torchvision or --flow-weights)",
                       needs_weights=True, gpu_recommended=True),
    )
}


def flow_method_names() -> list[str]:
    """The registered flow method names, in registry order."""
    return list(FLOW_METHODS)


def method_info(name: str) -> FlowMethodInfo:
    """The registry entry of ``name``; ConfigError listing the known ones otherwise."""
    try:
        return FLOW_METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown flow method {name!r}; known methods: "
                          f"{', '.join(FLOW_METHODS)}") from None


def method_unavailable(name: str) -> str | None:
    """Why method ``name`` cannot run on this machine (a missing package), or None."""
    return importlib.import_module(method_info(name).module).unavailable()


def build_flow_method(config: FlowConfig, device: Any = "cpu") -> Any:
    """Build the flow method ``config.method`` on ``device`` (networks only; OpenCV is CPU).

    Raises:
        S2VTError: unknown name (listing the known ones), a missing package (naming it),
            weights that cannot be had (saying how to point at a local file).
    """
    info = method_info(config.method)
    module = importlib.import_module(info.module)
    reason = module.unavailable()
    if reason is not None:
        raise S2VTError(reason)
    return getattr(module, info.builder)(config, device)
