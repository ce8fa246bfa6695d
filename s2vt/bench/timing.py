"""Wall-clock helpers the benchmark's stages share."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn``; return (wall-clock seconds, its value)."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def rate(count: float, seconds: float) -> float:
    """``count / seconds`` rounded to 2 decimals (inf for a zero duration)."""
    return round(count / seconds, 2) if seconds > 0 else float("inf")


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (how busy the machine was), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
