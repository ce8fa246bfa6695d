"""A few human-readable lines of a benchmark report (the CLI prints them to stderr; the
JSON on stdout is the record)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _value(value: float | None) -> str:
    return "not measured" if value is None else f"{value:g}"


def summary_lines(report: Mapping[str, Any]) -> list[str]:
    """The targeted ratios with their verdicts, then the projected extract times.

    Returns:
        Lines without newlines (empty when the report has neither).
    """
    lines = []
    for name, entry in report.get("ratios", {}).items():
        sign = ">=" if entry["at"] == "least" else "<="
        verdict = "met" if entry["met"] else "NOT met"
        lines.append(f"{name}: {_value(entry['value'])} (target {sign} {entry['target']:g}) "
                     f"{verdict}")
    projection = report.get("projection", {})
    if "skipped" in projection:
        lines.append(f"projection skipped: {projection['skipped']}")
    for data in projection.get("datasets", {}).values():
        note = ", extrapolated beyond the measured clip lengths" if data["extrapolated"] else ""
        lines.append(
            f"projected extract of {data['name']} on this machine: {data['hours']:g} h "
            f"({data['clips']:,} clips, mean {data['mean_clip_seconds']:g} s, "
            f"{data['frames_per_clip']} frames each; {data['bound']}-bound{note})")
    return lines
