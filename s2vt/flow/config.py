"""FlowConfig: which optical-flow method, and how flow becomes an image (no heavy imports)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from s2vt.errors import ConfigError

# Kept in step with s2vt.flow.registry.FLOW_METHODS (a test checks), so a config validates
# without importing OpenCV or torchvision.
FLOW_METHOD_NAMES: tuple[str, ...] = ("farneback", "tvl1", "raft_small", "raft_large")


@dataclass(frozen=True)
class FlowConfig:
    """How the flow stream turns a video into flow images.

    Attributes:
        method: a registered flow method (see :func:`s2vt.flow.flow_method_names`).
        gap: K, the frame distance: the flow of sampled frame t is computed from frame t
            to frame t+K (the paper uses consecutive frames, K = 1).
        size: working resolution: frames are decoded with the shorter side resized to this
            and centre-cropped square (the same region the RGB stream sees) before flow is
            computed; the flow image is then resized to the encoder's input size.
        bound: flow in pixels (at the working size) that maps to the ends of the 0-255
            range: ``x, y -> 128 + 127 * clip(f / bound, -1, 1)`` and
            ``magnitude -> min(255, 127 * |f| / bound)``. 10 px at 128 px is the common
            "clip at +-20 px" recipe at 256 px.
        weights: RAFT only: ``None`` (torchvision's pretrained weights through its weights
            API, downloaded once), a local state dict file (``.pth``/``.pt``, loaded with
            ``weights_only=True``, or ``.safetensors``), or ``"random"`` (seeded random
            initialisation, for tests of the plumbing only).
    """

    method: str = "farneback"
    gap: int = 1
    size: int = 128
    bound: float = 10.0
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.method not in FLOW_METHOD_NAMES:
            raise ConfigError(f"unknown flow method {self.method!r}; known methods: "
                              f"{', '.join(FLOW_METHOD_NAMES)}")
        for key, low in (("gap", 1), ("size", 16)):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(f"flow {key} must be an integer >= {low}, got {value!r}")
        if (isinstance(self.bound, bool) or not isinstance(self.bound, int | float)
                or not math.isfinite(self.bound) or self.bound <= 0):
            raise ConfigError(f"flow bound must be a positive number of pixels, got "
                              f"{self.bound!r}")
        if self.weights is not None and (not isinstance(self.weights, str) or not self.weights):
            raise ConfigError(f"flow weights must be a file path or 'random', got "
                              f"{self.weights!r}")
