"""Wall-clock helpers the benchmark's stages share, and the one shape of every figure.

Every figure the benchmark reports is :func:`figure`'s dict: the median of at least
:data:`MIN_REPEATS` timed repeats with their min and max, how many repeats, and the unit.
Rates are computed per repeat (work / that repeat's seconds), so min and max are the
slowest and fastest repeat. Where a stage compares ways of doing the same work, the ways
run in alternating rounds (:func:`alternate`), so a machine that gets busier or quieter
during the run moves all of them alike.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# The fewest timed repeats a figure is the median of.
MIN_REPEATS = 3


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``fn``; return (wall-clock seconds, its value)."""
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def rate(count: float, seconds: float) -> float:
    """``count / seconds`` rounded to 2 decimals (inf for a zero duration)."""
    return round(count / seconds, 2) if seconds > 0 else float("inf")


def figure(values: Sequence[float], unit: str, digits: int = 3) -> dict[str, Any]:
    """One reported figure: the median of ``values`` with their min and max.

    Args:
        values: one value per timed repeat (at least one).
        unit: what the values count (``s``, ``frames/s``, ``MiB``, ...).
        digits: decimals kept.

    Returns:
        ``{"median", "min", "max", "repeats", "unit"}``.
    """
    if not values:
        raise ValueError("a figure needs at least one value")
    return {"median": round(statistics.median(values), digits),
            "min": round(min(values), digits), "max": round(max(values), digits),
            "repeats": len(values), "unit": unit}


def rate_figure(count: float, seconds: Sequence[float], unit: str) -> dict[str, Any]:
    """:func:`figure` of ``count / s`` for each repeat's seconds ``s`` (``unit``: per second)."""
    return figure([count / s if s > 0 else float("inf") for s in seconds], unit, digits=2)


def wall(fn: Callable[[], Any]) -> Callable[[], float]:
    """``fn`` as a timed repeat for :func:`alternate`: returns its call's wall-clock seconds."""
    return lambda: timed(fn)[0]


def alternate(runs: Mapping[str, Callable[[], float]], repeats: int) -> dict[str, list[float]]:
    """Run every entry of ``runs`` once per round, ``repeats`` rounds, in turn.

    Args:
        runs: name -> a function that does one timed repeat and returns its seconds (what
            it timed itself, or :func:`wall` of the whole call).
        repeats: rounds.

    Returns:
        name -> the seconds of each round, in order.
    """
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds[name].append(float(run()))
    return seconds


def median(fig: Mapping[str, Any]) -> float:
    """The median of a :func:`figure` (what every ratio is computed from)."""
    return float(fig["median"])


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (how busy the machine was), or None."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
