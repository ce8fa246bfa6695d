"""The benchmark's harness: every stage in one run on the same inputs (``s2vt bench``).

:func:`run_benchmark` writes its own clips (H.264, 320x240, 10 s at 30 fps by default) into
a temporary folder and runs the stages of :data:`STAGES` in order:

- ``extract``: :mod:`~s2vt.bench.decode` (each decoder alone, on the generated clips and
  the real ones of ``../shared``), :mod:`~s2vt.bench.encoder` (each encoder runtime alone
  at each precision, on the same frames), :mod:`~s2vt.bench.extract` (``extract`` end to
  end, with the defaults and forced variants), :mod:`~s2vt.bench.naive` (the
  reimplementations' way, in this process and in a separate one) and
  :mod:`~s2vt.bench.projection` (MSR-VTT and VATEX extract times from those rates);
- ``train``: :mod:`~s2vt.bench.train`, paper-sized training on random features;
- ``caption``: :mod:`~s2vt.bench.caption`, batched vs one-at-a-time beam search for the
  paper-sized and the demo-sized S2VT;
- ``caption_cli``: :mod:`~s2vt.bench.caption_cli`, ``s2vt caption`` from process start;
- ``score``: :mod:`~s2vt.bench.score`, the caption metrics on a test-sized set;
- ``memory`` (only when asked for): :mod:`~s2vt.bench.memory`, peak RSS of ``s2vt
  extract`` on a long and a short clip.

Every timing is a :func:`~s2vt.bench.timing.figure` (median of ``config.repeats`` >= 3
timed repeats, with min, max, repeats and unit). :func:`ratios` divides medians and
compares them with :data:`TARGETS` (``met`` is the comparison of this run's value, never
assumed); :func:`comparisons` holds the same kind of ratio without a target. Timings are
wall-clock seconds; on a shared machine compare ratios from one run (``load_before`` /
``load_after`` say how busy the machine was). :func:`run_experiment` runs one of
:data:`EXPERIMENTS` instead.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2vt.bench.caption import DEMO_SIZES, bench_caption
from s2vt.bench.caption_cli import bench_caption_cli
from s2vt.bench.clips import write_clips
from s2vt.bench.config import BenchConfig
from s2vt.bench.decode import bench_decode, decoded_frames, real_clip_paths
from s2vt.bench.encoder import bench_encoder
from s2vt.bench.experiments.openvino_modes import bench_openvino_modes
from s2vt.bench.experiments.precision import bench_precision
from s2vt.bench.extract import bench_extract
from s2vt.bench.memory import bench_memory
from s2vt.bench.naive import bench_naive
from s2vt.bench.projection import bench_clip_decode, project
from s2vt.bench.ratios import TARGETS, comparisons, overlap, ratios
from s2vt.bench.score import bench_score
from s2vt.bench.timing import MIN_REPEATS, load_average, timed
from s2vt.bench.train import bench_train

__all__ = ["DEFAULT_STAGES", "EXPERIMENTS", "STAGES", "TARGETS", "BenchConfig", "BenchRun",
           "comparisons", "machine_info", "ratios", "run_benchmark", "run_experiment",
           "to_json"]

logger = logging.getLogger(__name__)

# Bumped when the report's layout changes.
REPORT_FORMAT = 2


@dataclass
class BenchRun:
    """What the stages of one run share: settings, scratch folder, the clips."""

    config: BenchConfig
    work: Path
    keep_freed_memory: bool = False
    _clips: list[Path] | None = field(default=None, repr=False)

    @property
    def sampling(self) -> Any:
        """The frame sampling of every video stage (uniform, ``config.num_frames``)."""
        from s2vt.video import SamplingConfig

        return SamplingConfig(num_frames=self.config.num_frames)

    @property
    def spec(self) -> Any:
        """The encoder of every video stage: the default one at ``config.precision``."""
        from s2vt.encoders import EncoderSpec

        return EncoderSpec(precision=self.config.precision)

    def clips(self) -> list[Path]:
        """The generated clips, written on first use."""
        if self._clips is None:
            logger.info("writing %d clips", self.config.clips)
            self._clips = write_clips(self.work / "clips", self.config)
        return self._clips


def _extract_stages(run: BenchRun) -> dict[str, Any]:
    """decode, encoder alone, extract, naive and the projection, on the same clips."""
    import torch

    from s2vt.encoders import build_encoder

    config, sampling, spec, paths = run.config, run.sampling, run.spec, run.clips()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    report: dict[str, Any] = {}
    # s2vt's fp32 torch encoder: the image size every stage decodes at, and the network
    # (as s2vt builds it) the same-process naive row runs.
    reference = build_encoder(dataclasses.replace(spec, precision="fp32", runtime="torch"))
    size = reference.image_size
    real, real_root, real_reason = real_clip_paths(config.real_videos)
    real = real[: config.real_clips]
    sets = {"generated": paths, **({"real": real} if real else {})}
    report["decode"] = bench_decode(sets, {"real": real_reason} if real_reason else {},
                                    sampling, size, config.repeats)
    report["decode"]["real_videos"] = real_root
    frames = decoded_frames(paths, sampling, size, config.batch_size)
    report["encoder"] = bench_encoder(spec, frames, config)
    del frames
    report["extract"] = bench_extract(paths, run.work / "extract", config, sampling, spec)
    logger.info("naive")
    report["naive"] = bench_naive(paths[: config.naive_clips], reference, sampling,
                                  config.threads, config.repeats, run.keep_freed_memory)
    del reference
    count = min(config.projection_clips, len(paths))
    long = write_clips(run.work / "long_clips", config, count,
                       config.projection_long_seconds, prefix="long")
    clip_decode = bench_clip_decode(paths[:count], long, config.seconds,
                                    config.projection_long_seconds, sampling, size,
                                    config.repeats)
    report["projection"] = {"clip_decode": clip_decode}
    measured = overlap(report)
    if measured["value"] is None:
        report["projection"]["skipped"] = measured["reason"]
    else:
        report["projection"].update(overlap=measured, datasets=project(
            clip_decode, measured["encoder_images_per_s"], measured["value"]))
    return report


def _train_stage(run: BenchRun) -> dict[str, Any]:
    """Paper-sized training."""
    logger.info("train")
    return {"train": bench_train(run.work / "train", run.config)}


def _caption_stage(run: BenchRun) -> dict[str, Any]:
    """Batched vs single beam search, paper-sized and demo-sized."""
    logger.info("caption")
    return {"caption": bench_caption(run.work / "caption_model", run.config),
            "caption_demo_size": bench_caption(run.work / "caption_demo_model", run.config,
                                               DEMO_SIZES)}


def _caption_cli_stage(run: BenchRun) -> dict[str, Any]:
    """``s2vt caption`` start to end, unless ``config.cli`` is off."""
    if not run.config.cli:
        return {}
    logger.info("caption cli")
    return {"caption_cli": bench_caption_cli(run.work / "caption_cli", run.clips()[0],
                                             run.config.repeats)}


def _score_stage(run: BenchRun) -> dict[str, Any]:
    """The caption metrics."""
    logger.info("score")
    return {"score": bench_score(run.config)}


def _memory_stage(run: BenchRun) -> dict[str, Any]:
    """Peak RSS on a long vs a short clip."""
    logger.info("memory: %g-minute clip", run.config.long_minutes)
    return {"memory": bench_memory(run.work / "memory", run.config.long_minutes,
                                   run.config.repeats)}


# The stages a run can pick by name (``--only``), in the order they run.
STAGES: dict[str, Callable[[BenchRun], dict[str, Any]]] = {
    "extract": _extract_stages,
    "train": _train_stage,
    "caption": _caption_stage,
    "caption_cli": _caption_cli_stage,
    "score": _score_stage,
    "memory": _memory_stage,
}
# What runs when no stage is named: all but memory, which writes and reads a long clip.
DEFAULT_STAGES: tuple[str, ...] = ("extract", "train", "caption", "caption_cli", "score")
# Experiments (``--experiment NAME``): name -> function(folder, config) -> result.
EXPERIMENTS: dict[str, Callable[[Path, BenchConfig], dict[str, Any]]] = {
    "precision": bench_precision,
    "openvino_modes": bench_openvino_modes,
}


def machine_info() -> dict[str, Any]:
    """CPU model, cores, flags that matter (AMX/AVX512-BF16), library versions."""
    import torch

    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "avx512f": "avx512f" in flags,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def _fresh_folder(work: Path) -> Path:
    """A new folder under ``work`` for one run (``work`` itself when it already is one):
    a reused feature store would make extract skip its work."""
    if (Path(work) / ".s2vt-bench").exists():
        return Path(work)
    fresh = Path(tempfile.mkdtemp(prefix="s2vt-bench-", dir=work))
    (fresh / ".s2vt-bench").touch()
    return fresh


def run_benchmark(config: BenchConfig, work: Path | None = None,
                  stages: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run the benchmark and return a JSON-ready dict (see the module docstring).

    Must be called under ``if __name__ == "__main__":`` from a script (``extract`` spawns
    decode workers).

    Args:
        config: sizes and settings.
        work: scratch folder (a temporary one when None; deleted afterwards).
        stages: names from :data:`STAGES`; None = :data:`DEFAULT_STAGES`.

    Returns:
        ``{"format", "machine", "config", "method", "load_before", <stage>: {...},
        "load_after", "ratios", "comparisons"}``.
    """
    chosen = set(stages or DEFAULT_STAGES)
    unknown = chosen - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; known: {', '.join(STAGES)}")
    if work is None:
        with tempfile.TemporaryDirectory(prefix="s2vt-bench-") as tmp:
            return run_benchmark(config, Path(tmp), stages)
    import av  # noqa: F401  (before decord, always: see s2vt.video)

    from s2vt.runtime import keep_freed_memory

    # The allocator set-up s2vt's CLI and workers run with (idempotent), so stages timed
    # in this process (the same-process naive row among them) run under it too.
    run = BenchRun(config, _fresh_folder(work), keep_freed_memory=keep_freed_memory())
    report: dict[str, Any] = {"format": REPORT_FORMAT, "machine": machine_info(),
                              "config": dataclasses.asdict(config),
                              "method": method(config, run.keep_freed_memory),
                              "load_before": load_average()}
    report["stage_wall_seconds"] = {}
    for name, stage in STAGES.items():
        if name in chosen:
            seconds, figures = timed(lambda stage=stage: stage(run))
            report.update(figures)
            report["stage_wall_seconds"][name] = round(seconds, 1)
    report["load_after"] = load_average()
    report["ratios"] = ratios(report)
    report["comparisons"] = comparisons(report)
    return report


def method(config: BenchConfig, freed_memory_kept: bool) -> dict[str, Any]:
    """How every figure of a run was measured (the report's ``method``)."""
    return {
        "figure": "median of the timed repeats, with min and max",
        "repeats": config.repeats,
        "min_repeats": MIN_REPEATS,
        "warm_up": "one untimed run before the timed repeats of each measure",
        "order": "alternating rounds: compared ways of doing the same work take turns",
        "rates": "work / seconds of each repeat",
        "ratios": "median / median",
        "keep_freed_memory": freed_memory_kept,
        "stage_wall_seconds": "how long each stage took in all (set-up and warm-ups "
                              "included): bookkeeping for sizing a run, not a figure",
    }


def run_experiment(name: str, config: BenchConfig, work: Path | None = None) -> dict[str, Any]:
    """Run one of :data:`EXPERIMENTS` and return a JSON-ready dict.

    Must be called under ``if __name__ == "__main__":`` from a script (experiments spawn
    workers).

    Args:
        name: the experiment.
        config: sizes and settings (the experiment reads its own fields).
        work: scratch folder (a temporary one when None; deleted afterwards).

    Returns:
        ``{"machine", "config", "load_before", <name>: {...}, "load_after"}``.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    if work is None:
        with tempfile.TemporaryDirectory(prefix="s2vt-bench-") as tmp:
            return run_experiment(name, config, Path(tmp))
    import av  # noqa: F401  (before decord, always: see s2vt.video)

    folder = _fresh_folder(work)
    report: dict[str, Any] = {"machine": machine_info(), "config": dataclasses.asdict(config),
                              "load_before": load_average()}
    logger.info("experiment %s", name)
    report[name] = EXPERIMENTS[name](folder / name, config)
    report["load_after"] = load_average()
    return report


def to_json(report: dict[str, Any]) -> str:
    """The report as indented JSON."""
    return json.dumps(report, indent=2, sort_keys=False)
