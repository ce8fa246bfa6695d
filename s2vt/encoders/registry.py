"""Encoder registry: name -> builder. Builders import their heavy libraries lazily."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from s2vt.encoders.spec import EncoderSpec
from s2vt.errors import S2VTError

if TYPE_CHECKING:
    from s2vt.encoders.base import FrameEncoder

Builder = Callable[[EncoderSpec, str], "FrameEncoder"]

HF_PREFIX = "hf:"


def _lazy(module: str, function: str = "build", **bound: str) -> Builder:
    """A builder that imports ``s2vt.encoders.<module>`` only when called."""

    def builder(spec: EncoderSpec, device: str = "cpu") -> FrameEncoder:
        target = getattr(importlib.import_module(f"s2vt.encoders.{module}"), function)
        return target(spec, device, **bound)

    return builder


# name -> builder(spec, device) -> FrameEncoder
ENCODERS: dict[str, Builder] = {
    "efficientnet_lite0": _lazy("efficientnet"),
    "tiny": _lazy("tiny"),
    "vgg16": _lazy("torchvision_models"),
    "alexnet": _lazy("torchvision_models"),
    "resnet50": _lazy("torchvision_models"),
    "resnet152": _lazy("torchvision_models"),
}

# name prefix -> builder; the rest of the name is the builder's argument (model id / path)
PREFIX_ENCODERS: dict[str, Builder] = {HF_PREFIX: _lazy("hf")}


def encoder_names() -> list[str]:
    """Registered encoder names, plus ``hf:<model id or folder>`` forms."""
    return sorted(ENCODERS) + [f"{prefix}<model id or local folder>" for prefix in PREFIX_ENCODERS]


def build_encoder(spec: EncoderSpec, device: str = "cpu") -> FrameEncoder:
    """Build the frame encoder named by ``spec.name``.

    Args:
        spec: which encoder, weights, pooling, size and precision.
        device: ``cpu`` or ``cuda`` (``cuda:N``).

    Returns:
        A :class:`~s2vt.encoders.base.FrameEncoder` in eval mode on ``device``.

    Raises:
        S2VTError: unknown name (the message lists the known ones), missing weights, or
            an option the encoder does not support.
    """
    builder = ENCODERS.get(spec.name)
    if builder is None:
        builder = next(
            (b for prefix, b in PREFIX_ENCODERS.items() if spec.name.startswith(prefix)), None
        )
    if builder is None:
        raise S2VTError(
            f"unknown encoder {spec.name!r}; known encoders: {', '.join(encoder_names())}"
        )
    return builder(spec, device)
