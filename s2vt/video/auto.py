"""The ``auto`` decoder: decord where it is installed, with PyAV behind it.

A video decord cannot open, measure or decode is retried with PyAV before it counts as
failed (the failure then lists both reasons). Without decord (macOS arm64, Linux
aarch64: no wheels) ``auto`` is PyAV alone. The two give the same pixels (see
:mod:`s2vt.video.pyav`), so features do not depend on which one decoded a video.
"""

from __future__ import annotations

from s2vt.video.registry import get_decoder, register_alias

AUTO_ORDER = ("decord", "pyav")


def auto_chain() -> list[str]:
    """The decoders ``auto`` tries here, in order: those of ``AUTO_ORDER`` that can run."""
    return [name for name in AUTO_ORDER if get_decoder(name).unavailable() is None]


register_alias("auto", auto_chain)
