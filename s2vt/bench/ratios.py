"""The ratios of one benchmark report: medians divided, each named by the figures it
divides (their paths in the report), and the targets they are held to.

:func:`ratios` holds the targeted ones (:data:`TARGETS`): ``met`` is this run's value
compared with the target, and False when a figure it needs was not measured.
:func:`comparisons` holds ratios without a target (what the runtime, the precision, the
pipeline and the process add). Both read only the report, so any report can be checked
again by hand from its own figures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# name -> (target, "least" | "most": the value must be at least / at most the target).
TARGETS: dict[str, tuple[float, str]] = {
    "encoder_runtime_vs_torch": (2.5, "least"),
    "extract_vs_min_decode_encoder": (0.8, "least"),
    "extract_defaults_vs_torch": (2.0, "least"),
    "extract_fp32_vs_naive": (10.0, "least"),
    "batched_vs_single_caption": (5.0, "least"),
    "batched_vs_single_caption_demo_size": (5.0, "least"),
    "caption_cli_seconds": (5.0, "most"),
}

_VARIANTS = "extract.variants"
_NAIVE = "naive.same_process.frames_per_s"
_NAIVE_SEPARATE = "naive.separate_process.frames_per_s"


def verdict(value: float | None, target: float, at: str) -> bool:
    """Whether ``value`` meets ``target`` (``at`` ``least``: value >= target; ``most``:
    value <= target). A value that was not measured never meets it."""
    if value is None:
        return False
    if at == "least":
        return value >= target
    if at == "most":
        return value <= target
    raise ValueError(f"at must be 'least' or 'most', got {at!r}")


def figure_at(report: Mapping[str, Any], path: str) -> float | None:
    """The median of the figure at dotted ``path`` in ``report``, or None when absent."""
    node: Any = report
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    if isinstance(node, Mapping) and "median" in node:
        return float(node["median"])
    return None


def divide(report: Mapping[str, Any], numerator: str,
           denominators: list[str]) -> dict[str, Any]:
    """The median at ``numerator`` over the smallest median at ``denominators``.

    Returns:
        ``{"value", "numerator", "denominator"}`` (``denominator_min_of`` for several),
        with ``value`` None and a ``reason`` when a figure is absent.
    """
    entry: dict[str, Any] = {"value": None, "numerator": numerator}
    if len(denominators) == 1:
        entry["denominator"] = denominators[0]
    else:
        entry["denominator_min_of"] = list(denominators)
    values = {path: figure_at(report, path) for path in [numerator, *denominators]}
    missing = [path for path, value in values.items() if value is None]
    smallest = min((values[p] for p in denominators if values[p] is not None), default=None)
    if missing:
        entry["reason"] = f"not measured: {', '.join(missing)}"
    elif not smallest:
        entry["reason"] = "a denominator is zero"
    else:
        entry["value"] = round(float(values[numerator]) / smallest, 3)
    return entry


def _decode_path(report: Mapping[str, Any]) -> str:
    """Decode alone on the generated clips with the decoder extract's ``auto`` tries first."""
    first = report.get("extract", {}).get("decoder", {}).get("first", "decord")
    return f"decode.sets.generated.decoders.{first}.frames_per_s"


def _encoder_path(report: Mapping[str, Any], runtime: str | None = None,
                  precision: str | None = None) -> str:
    """Encoder alone at ``precision`` on ``runtime`` (default: what extract chose)."""
    chosen = report.get("encoder", {}).get("chosen", {})
    runtime = runtime or chosen.get("runtime", "torch")
    precision = precision or chosen.get("precision", "fp32")
    return f"encoder.{precision}.{runtime}.images_per_s"


def overlap(report: Mapping[str, Any]) -> dict[str, Any]:
    """Extract's steady rate (defaults) over the smaller of decode alone and encoder alone.

    Returns:
        :func:`divide`'s entry plus ``encoder_images_per_s`` (the median it used, or None).
    """
    entry = divide(report, f"{_VARIANTS}.defaults.steady_frames_per_s",
                   [_decode_path(report), _encoder_path(report)])
    entry["encoder_images_per_s"] = figure_at(report, _encoder_path(report))
    return entry


def shared_core_bound(report: Mapping[str, Any]) -> dict[str, Any]:
    """The most frames/s extract could reach with decode and encode sharing the cores.

    Decode alone ran on one core at ``d`` frames/s, so a frame costs ``1/d`` core-seconds
    to decode; the encoder alone kept its ``T`` threads busy at ``e`` frames/s, ``T/e``
    core-seconds a frame. On ``C`` cores both together allow at most ``C / (T/e + 1/d)``
    frames/s, and never more than the encoder alone (``e``) or the decode workers (``W d``).
    Computed here from this report's medians (docs/performance.md explains it); the entry
    holds the figures' paths and the counts, not the formula.

    Returns:
        ``{"value": extract steady / bound, "numerator", "bound_frames_per_s",
        "bound_from": [decode path, encoder path], "cores", "encoder_threads",
        "decode_workers", "bound_vs_min_decode_encoder"}``; ``value`` None with a
        ``reason`` when a figure is absent.
    """
    numerator = f"{_VARIANTS}.defaults.steady_frames_per_s"
    decode_path, encoder_path = _decode_path(report), _encoder_path(report)
    machine = report.get("machine", {})
    cores = machine.get("usable_cores") or machine.get("cores")
    threads = report.get("encoder", {}).get("threads")
    workers = report.get("extract", {}).get("workers")
    entry: dict[str, Any] = {"value": None, "numerator": numerator,
                             "bound_from": [decode_path, encoder_path], "cores": cores,
                             "encoder_threads": threads, "decode_workers": workers}
    values = {path: figure_at(report, path) for path in (numerator, decode_path, encoder_path)}
    missing = [path for path, value in values.items() if value is None]
    missing += [name for name, value in (("machine.cores", cores), ("encoder.threads", threads),
                                         ("extract.workers", workers)) if not value]
    if missing:
        entry["reason"] = f"not measured: {', '.join(missing)}"
        return entry
    decode, encode = values[decode_path], values[encoder_path]
    if not decode or not encode:
        entry["reason"] = "a rate is zero"
        return entry
    bound = min(cores / (threads / encode + 1 / decode), encode, workers * decode)
    entry["bound_frames_per_s"] = round(bound, 2)
    entry["value"] = round(values[numerator] / bound, 3)
    entry["bound_vs_min_decode_encoder"] = round(bound / min(decode, encode), 3)
    return entry


def _targeted(report: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The targeted ratios whose stage is in ``report`` (name -> :func:`divide` entry)."""
    out: dict[str, dict[str, Any]] = {}
    if "encoder" in report:
        out["encoder_runtime_vs_torch"] = divide(
            report, _encoder_path(report), [_encoder_path(report, runtime="torch")])
    if "extract" in report:
        found = overlap(report)
        found.pop("encoder_images_per_s")
        out["extract_vs_min_decode_encoder"] = found
        out["extract_defaults_vs_torch"] = divide(
            report, f"{_VARIANTS}.defaults.steady_frames_per_s",
            [f"{_VARIANTS}.torch.steady_frames_per_s"])
        out["extract_fp32_vs_naive"] = divide(
            report, f"{_VARIANTS}.fp32.steady_frames_per_s", [_NAIVE])
    for key, name in (("caption", "batched_vs_single_caption"),
                      ("caption_demo_size", "batched_vs_single_caption_demo_size")):
        if key in report:
            out[name] = divide(report, f"{key}.batched_videos_per_s",
                               [f"{key}.single_videos_per_s"])
    if "caption_cli" in report:
        seconds = figure_at(report, "caption_cli.seconds")
        out["caption_cli_seconds"] = {"value": seconds, "figure": "caption_cli.seconds"}
        if seconds is None:
            out["caption_cli_seconds"]["reason"] = "not measured: caption_cli.seconds"
    return out


def ratios(report: Mapping[str, Any]) -> dict[str, Any]:
    """The targeted ratios of ``report``, each ``{"value", "target", "at", "met", ...}``
    (``at``: ``least`` or ``most``; the paths of the figures it divides)."""
    out = {}
    for name, entry in _targeted(report).items():
        target, at = TARGETS[name]
        out[name] = {"value": entry["value"], "target": target, "at": at,
                     "met": verdict(entry["value"], target, at),
                     **{k: v for k, v in entry.items() if k != "value"}}
    return out


def comparisons(report: Mapping[str, Any]) -> dict[str, Any]:
    """Ratios without a target: per-precision runtime gains, what bf16 adds, what the
    pipeline, the runtime and precision, and a separate process each add or cost, the
    end-to-end (start-up included) forms of the extract ratios, and extract against what
    decode and encode sharing the cores allow (:func:`shared_core_bound`)."""
    out: dict[str, Any] = {}
    encoder = report.get("encoder", {})
    runtime = encoder.get("chosen", {}).get("runtime", "torch")
    for precision in ("fp32", "bf16"):
        if precision in encoder:
            out[f"encoder_runtime_vs_torch_{precision}"] = divide(
                report, _encoder_path(report, precision=precision),
                [_encoder_path(report, runtime="torch", precision=precision)])
    if "fp32" in encoder and "bf16" in encoder:
        out["encoder_bf16_vs_fp32"] = divide(
            report, _encoder_path(report, runtime, "bf16"),
            [_encoder_path(report, runtime, "fp32")])
    if "extract" in report:
        steady = f"{_VARIANTS}.{{}}.steady_frames_per_s"
        end_to_end = f"{_VARIANTS}.{{}}.frames_per_s"
        out["extract_fp32_torch_vs_naive"] = divide(
            report, steady.format("fp32_torch"), [_NAIVE])
        out["extract_defaults_vs_fp32_torch"] = divide(
            report, steady.format("defaults"), [steady.format("fp32_torch")])
        out["extract_defaults_vs_naive"] = divide(report, steady.format("defaults"), [_NAIVE])
        out["extract_fp32_vs_naive_separate_process"] = divide(
            report, steady.format("fp32"), [_NAIVE_SEPARATE])
        out["naive_same_vs_separate_process"] = divide(report, _NAIVE, [_NAIVE_SEPARATE])
        out["extract_end_to_end_vs_min_decode_encoder"] = divide(
            report, end_to_end.format("defaults"),
            [_decode_path(report), _encoder_path(report)])
        out["extract_end_to_end_defaults_vs_torch"] = divide(
            report, end_to_end.format("defaults"), [end_to_end.format("torch")])
        out["extract_vs_shared_core_bound"] = shared_core_bound(report)
    return out
