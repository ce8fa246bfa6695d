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
    bound = report.get("comparisons", {}).get("extract_vs_shared_core_bound")
    if bound is not None:
        if bound["value"] is None:
            lines.append(f"extract_vs_shared_core_bound: {bound.get('reason')}")
        else:
            lines.append(
                f"extract_vs_shared_core_bound: {bound['value']:g} (extract's steady rate over "
                f"the {bound['bound_frames_per_s']:g} frames/s that decode and encode sharing "
                f"{bound['cores']} cores allow; that bound is "
                f"{bound['bound_vs_min_decode_encoder']:g} x min(decode, encoder))")
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
