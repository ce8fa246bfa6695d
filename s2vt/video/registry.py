"""The decoder registry: each backend is a small module that registers one :class:`Decoder`.

A decoder only turns sampled frame indices into resized RGB frames; which frames exist,
what an index means and when it is shown come from :mod:`s2vt.video.probe`, shared by all
of them. Aliases (``auto``) name a chain of decoders tried in order.
"""

from __future__ import annotations

import importlib.util
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from s2vt.errors import ConfigError
from s2vt.video.probe import StreamInfo


class DecodeFailed(Exception):
    """One decoder could not decode a video; ``reason`` is one line for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Decoder(ABC):
    """A video decoding backend.

    Attributes:
        name: the name users pick it by (``--decoder NAME``).
        summary: one line for ``--help`` and error messages.
        can_skip_damage: whether :meth:`frames` skips undecodable frames (reporting them
            in ``problems``) instead of failing, and :meth:`decodable` works.
    """

    name: ClassVar[str]
    summary: ClassVar[str]
    can_skip_damage: ClassVar[bool] = False

    def unavailable(self) -> str | None:
        """Why this decoder cannot run on this machine (missing package...), or None."""
        return None

    def refuses(self, info: StreamInfo) -> str | None:
        """Why this decoder declines a stream it is known to decode wrongly, or None."""
        return None

    @abstractmethod
    def frames(
        self,
        info: StreamInfo,
        indices: np.ndarray,
        shape: tuple[int, int],
        num_threads: int,
        problems: list[str],
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Decode frames ``indices`` of a stream, as displayed, resized to ``shape``.

        Args:
            info: the probed stream.
            indices: (T,) sorted unique int64 presentation indices.
            shape: (width, height) to resize to (the displayed orientation).
            num_threads: FFmpeg decoding threads (0: the library's choice).
            problems: where a decoder that skips damage records what it skipped.

        Yields:
            (index, frame) in increasing index order, frame (height, width, 3) uint8 RGB.

        Raises:
            DecodeFailed: the video cannot be decoded by this backend.
        """

    def decodable(self, info: StreamInfo, num_threads: int) -> np.ndarray:
        """(M,) sorted presentation indices of the frames that decode (a full pass)."""
        raise DecodeFailed(f"{self.name} cannot tell which frames of a damaged video decode")


def module_installed(name: str) -> bool:
    """Whether ``import name`` can find the module, without importing it (imports cost
    time and, for decord, must follow PyAV's). A module blocked in ``sys.modules`` (set
    to None) counts as missing."""
    if name in sys.modules:
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


_DECODERS: dict[str, Decoder] = {}
# alias -> function returning the names of the decoders it tries, in order
_ALIASES: dict[str, Callable[[], list[str]]] = {}


def register_decoder(cls: type[Decoder]) -> type[Decoder]:
    """Class decorator: make a :class:`Decoder` subclass pickable by its ``name``."""
    if cls.name in _DECODERS or cls.name in _ALIASES:
        raise ValueError(f"decoder {cls.name!r} is registered twice")
    _DECODERS[cls.name] = cls()
    return cls


def register_alias(name: str, chain: Callable[[], list[str]]) -> None:
    """Register ``name`` as the decoders ``chain()`` names, tried in order."""
    if name in _DECODERS or name in _ALIASES:
        raise ValueError(f"decoder {name!r} is registered twice")
    _ALIASES[name] = chain


def backend_names() -> tuple[str, ...]:
    """Names of the registered decoders (aliases excluded), in registration order."""
    return tuple(_DECODERS)


def decoder_names() -> tuple[str, ...]:
    """Every name ``--decoder`` accepts: the decoders, then the aliases."""
    return (*_DECODERS, *_ALIASES)


def get_decoder(name: str) -> Decoder:
    """The registered decoder ``name`` (not an alias)."""
    if name not in _DECODERS:
        raise ConfigError(f"unknown decoder {name!r}; known decoders: "
                          f"{', '.join(decoder_names())}")
    return _DECODERS[name]


def decoder_chain(name: str) -> list[Decoder]:
    """The decoders ``name`` means, in the order they are tried.

    Args:
        name: a decoder or an alias (``auto``).

    Returns:
        One decoder for a decoder name; for an alias the available decoders it names.

    Raises:
        ConfigError: unknown name (the message lists the known ones), or a decoder that
            cannot run here (the message says why and what to install).
    """
    if name in _ALIASES:
        chain = [_DECODERS[member] for member in _ALIASES[name]()]
        if not chain:
            raise ConfigError(f"decoder {name!r}: no decoder can run here (install av)")
        return chain
    decoder = get_decoder(name)
    reason = decoder.unavailable()
    if reason is not None:
        raise ConfigError(f"decoder {name!r} cannot run here: {reason}")
    return [decoder]
