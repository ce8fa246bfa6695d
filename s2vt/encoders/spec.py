"""EncoderSpec: which frame encoder to build (no torch import, so configs stay cheap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from s2vt.errors import ConfigError

POOL_MODES: tuple[str, ...] = ("avg", "grid2")
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")
# Kept in step with s2vt.encoders.runtimes.RUNTIMES (a test checks), so configs validate
# without importing the runtimes.
RUNTIME_CHOICES: tuple[str, ...] = ("auto", "torch", "openvino")


@dataclass(frozen=True)
class EncoderSpec:
    """A frame encoder by name, with its weights, pooling, input size, precision and runtime.

    Attributes:
        name: a registered name (see :func:`s2vt.encoders.encoder_names`) or
            ``hf:<model id or local folder>``.
        weights: ``None`` (the encoder's default weights), a local weights file (state
            dict, ``.pth``/``.pt``/``.safetensors``) or HF folder, or ``"random"`` (random
            initialisation, for testing pipelines and dimensions without weights).
        pool: ``avg`` (global average, one C-d vector per frame) or ``grid2`` (the 2x2
            average cells concatenated, 4*C-d, which keeps where things are in the frame).
        image_size: input side in pixels; ``None`` for the encoder's native size.
        precision: ``auto`` (bf16 autocast on CPUs with AMX/AVX512-BF16, fp16 autocast on
            CUDA, else fp32), ``fp32``, ``bf16`` or ``fp16``.
        runtime: what runs the network: ``torch`` (eager PyTorch), ``openvino`` (the
            network converted once to OpenVINO, CPU only) or ``auto`` (the fastest one
            installed for the device: OpenVINO on CPU when installed, torch on CUDA).
    """

    name: str = "efficientnet_lite0"
    weights: str | None = None
    pool: Literal["avg", "grid2"] = "avg"
    image_size: int | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    runtime: Literal["auto", "torch", "openvino"] = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"encoder name must be a non-empty string, got {self.name!r}")
        if self.pool not in POOL_MODES:
            raise ConfigError(
                f"unknown encoder pool {self.pool!r}; known pools: {', '.join(POOL_MODES)}"
            )
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"unknown precision {self.precision!r}; known precisions: {', '.join(PRECISIONS)}"
            )
        if self.runtime not in RUNTIME_CHOICES:
            raise ConfigError(
                f"unknown encoder runtime {self.runtime!r}; known runtimes: "
                f"{', '.join(RUNTIME_CHOICES)}"
            )
        if self.image_size is not None and (
            isinstance(self.image_size, bool)
            or not isinstance(self.image_size, int)
            or self.image_size < 1
        ):
            raise ConfigError(
                f"encoder image_size must be a positive integer, got {self.image_size!r}"
            )
