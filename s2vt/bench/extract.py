"""``extract`` stage: :func:`s2vt.extraction.extract` end to end (decode workers, encoder
build, store writes), with the defaults and forced variants, in alternating rounds.

Variants (:data:`EXTRACT_VARIANTS`): ``defaults`` (runtime auto, decoder auto, the
configured precision), ``torch`` (``--runtime torch``), ``fp32`` (``--precision fp32``) and
``fp32_torch`` (both). A variant that resolves to the same runtime and precision as an
earlier one on this machine (fp32 CPUs: ``fp32`` is ``defaults``) is not run again: it
reports the earlier one's figures and says ``same_as``.

Each round runs every variant twice, on all clips and on the first few: the end-to-end
figures are the full runs (start-up included, what a user waits for these clips); the
steady rate is the extra frames of the full run over its extra seconds, which cancels the
start-up (worker spawn, imports, encoder build) that a 10,000-clip run pays once.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from s2vt.bench.config import BenchConfig
from s2vt.bench.timing import alternate, figure, rate_figure, timed

logger = logging.getLogger(__name__)

# name -> the EncoderSpec fields it forces (none: the defaults).
EXTRACT_VARIANTS: dict[str, dict[str, str]] = {
    "defaults": {},
    "torch": {"runtime": "torch"},
    "fp32": {"precision": "fp32"},
    "fp32_torch": {"runtime": "torch", "precision": "fp32"},
}


def prefix_count(clips: int, workers: int) -> int:
    """Clips of the short run the steady rate is measured against (0: too few clips).

    A third of them (8 of 24), and at least one per decode worker so both runs start as
    many workers. Why not fewer: the decode workers start before the encoder is built and
    decode ahead into extract's queue (8 clips at batch 64 and 16 frames) during the
    build; a short run that cannot fill that queue would leave part of its start-up
    unused where the full run fills it, and the difference would credit the full run's
    steady rate with decoding done during start-up.
    """
    return min(clips - 1, max(1, workers, clips // 3)) if clips >= 2 else 0


def variant_plan(spec: Any) -> dict[str, dict[str, Any]]:
    """Each of :data:`EXTRACT_VARIANTS` with its spec, what it resolves to here and the
    earlier variant it duplicates.

    Args:
        spec: the defaults' :class:`s2vt.encoders.EncoderSpec`.

    Returns:
        name -> ``{"spec", "resolved": {"runtime", "precision"}, "same_as": name | None}``.
    """
    from s2vt.bench.encoder import chosen

    plan: dict[str, dict[str, Any]] = {}
    for name, forced in EXTRACT_VARIANTS.items():
        variant_spec = dataclasses.replace(spec, **forced)
        resolved = chosen(variant_spec)
        twin = next((other for other, row in plan.items()
                     if not row["same_as"] and row["resolved"] == resolved), None)
        plan[name] = {"spec": variant_spec, "resolved": resolved, "same_as": twin}
    return plan


def steady_figures(full: list[float], short: list[float], clips: int, short_clips: int,
                   frames_per_clip: int) -> dict[str, Any]:
    """The steady rate and the start-up of extract from paired runs of two sizes.

    Each round gives two points of seconds as a function of clips; the line through them
    has the steady cost of a clip as its slope and the start-up as its intercept.

    Args:
        full / short: seconds of each round's run on ``clips`` and on ``short_clips``.
        clips / short_clips: the two run sizes (``short_clips`` 0: no short runs).
        frames_per_clip: sampled frames per clip.

    Returns:
        ``{"steady_frames_per_s": figure, "startup_seconds": figure}``, or
        ``{"steady_frames_per_s": {"skipped": reason}}`` when they cannot be told apart.
    """
    if not short_clips:
        return {"steady_frames_per_s": {"skipped": "one clip: nothing to tell start-up "
                                                   "from work by"}}
    pairs = list(zip(full, short, strict=True))
    if any(f <= s for f, s in pairs):
        return {"steady_frames_per_s": {
            "skipped": f"a run of {clips} clips took no longer than one of {short_clips}: "
                       "too few clips to tell start-up from work"}}
    extra = clips - short_clips
    return {"steady_frames_per_s": rate_figure(extra * frames_per_clip,
                                               [f - s for f, s in pairs], "frames/s"),
            "startup_seconds": figure([(clips * s - short_clips * f) / extra
                                       for f, s in pairs], "s")}


def _extract_seconds(paths: list[Path], out: Path, extract_config: Any) -> float:
    """One ``extract`` call into a fresh store; its wall-clock seconds."""
    from s2vt.extraction import VideoInput, extract

    inputs = [VideoInput(path.stem, path) for path in paths]
    seconds, result = timed(lambda: extract(inputs, out, extract_config, progress=False))
    if result.failed:
        raise RuntimeError(f"extract failed on {result.failed[0]}")
    return seconds


def bench_extract(paths: list[Path], work: Path, config: BenchConfig, sampling: Any,
                  spec: Any) -> dict[str, Any]:
    """Every variant of ``extract`` on the same clips, in alternating rounds.

    Args:
        paths: the clips.
        work: scratch folder (a fresh store per run is written under it).
        config: batch size, workers, threads, repeats.
        sampling: a :class:`s2vt.video.SamplingConfig`.
        spec: the :class:`s2vt.encoders.EncoderSpec` of the defaults.

    Returns:
        ``{"clips", "frames", "prefix_clips", "workers", "batch_size", "decoder",
        "variants": {name: {"forced", "runtime", "precision", "seconds": figure,
        "frames_per_s": figure, "videos_per_s": figure, "steady_frames_per_s": figure,
        "startup_seconds": figure} (+ "same_as")}}``.
    """
    from s2vt.extraction import ExtractConfig, default_workers
    from s2vt.features import FeatureStore
    from s2vt.video import auto_chain

    frames = len(paths) * sampling.num_frames
    workers = config.workers or default_workers()
    short = prefix_count(len(paths), workers)
    plan = variant_plan(spec)
    resolved = {name: row["resolved"] for name, row in plan.items()}
    same_as = {name: row["same_as"] for name, row in plan.items() if row["same_as"]}
    configs = {name: ExtractConfig(encoder=row["spec"], sampling=sampling,
                                   batch_size=config.batch_size, workers=config.workers,
                                   threads=config.threads)
               for name, row in plan.items() if not row["same_as"]}
    ran: dict[str, str] = {}
    for name, extract_config in configs.items():  # warm-up: converted-network cache, files
        logger.info("extract %s: warm-up", name)
        store = work / name / "warmup"
        _extract_seconds(paths[:1], store, extract_config)
        ran[name] = FeatureStore.open(store).meta["encoder_runtime"]["name"]
    counter = {name: 0 for name in configs}

    def one_round(name: str, count: int) -> float:
        counter[name] += 1
        return _extract_seconds(paths[:count], work / name / f"run{counter[name]}-{count}",
                                configs[name])

    runs: dict[str, Any] = {}
    for name in configs:
        runs[f"{name}/full"] = lambda name=name: one_round(name, len(paths))
        if short:
            runs[f"{name}/short"] = lambda name=name: one_round(name, short)
    logger.info("extract: %s, %d rounds", ", ".join(configs), config.repeats)
    seconds = alternate(runs, config.repeats)
    variants: dict[str, Any] = {}
    for name, forced in EXTRACT_VARIANTS.items():
        if name in same_as:
            variants[name] = dict(variants[same_as[name]], forced=forced,
                                  same_as=same_as[name])
            continue
        full = seconds[f"{name}/full"]
        row: dict[str, Any] = {
            "forced": forced, "runtime": ran[name], "precision": resolved[name]["precision"],
            "seconds": figure(full, "s"),
            "frames_per_s": rate_figure(frames, full, "frames/s"),
            "videos_per_s": rate_figure(len(paths), full, "videos/s")}
        row.update(steady_figures(full, seconds.get(f"{name}/short", []), len(paths), short,
                                  sampling.num_frames))
        variants[name] = row
    return {"clips": len(paths), "frames": frames, "prefix_clips": short,
            "workers": workers, "batch_size": config.batch_size,
            "decoder": {"requested": "auto", "first": (auto_chain() or ["none"])[0]},
            "variants": variants}
