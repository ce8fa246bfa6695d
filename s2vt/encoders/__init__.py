"""Frame encoder registry: the offline default, torchvision CNNs, transformers models, tiny.

Each encoder runs on a runtime (``s2vt.encoders.runtimes``): eager torch, or the same
network converted to OpenVINO for fast CPU inference.

``import s2vt.encoders`` is cheap: torch, timm, torchvision and transformers are imported
only when an encoder is built (``FrameEncoder`` itself is loaded on first access).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from s2vt.encoders.registry import ENCODERS, PREFIX_ENCODERS, build_encoder, encoder_names
from s2vt.encoders.spec import POOL_MODES, PRECISIONS, RUNTIME_CHOICES, EncoderSpec

if TYPE_CHECKING:
    from s2vt.encoders.base import FrameEncoder

__all__ = [
    "ENCODERS",
    "POOL_MODES",
    "PRECISIONS",
    "PREFIX_ENCODERS",
    "RUNTIME_CHOICES",
    "EncoderSpec",
    "FrameEncoder",
    "build_encoder",
    "encoder_names",
]


def __getattr__(name: str) -> Any:
    # FrameEncoder subclasses torch.nn.Module: load torch only when it is asked for.
    if name == "FrameEncoder":
        from s2vt.encoders.base import FrameEncoder

        return FrameEncoder
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
