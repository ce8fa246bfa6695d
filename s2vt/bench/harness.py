"""The benchmark's harness: every stage in one run on the same inputs (``s2vt bench``).

:func:`run_benchmark` writes its own clips (H.264, 320x240 by default) into a temporary
folder and runs the stages of :data:`STAGES` in order:

- ``extract``: :mod:`~s2vt.bench.decode` (sampled frames decoded in one process),
  :mod:`~s2vt.bench.encoder` (the encoder alone on those frames),
  :mod:`~s2vt.bench.extract` (``s2vt.extraction.extract`` end to end) and
  :mod:`~s2vt.bench.naive` (the reimplementations' way, in a separate process), all on the
  same clips;
- ``train``: :mod:`~s2vt.bench.train`, paper-sized training on random features;
- ``caption``: :mod:`~s2vt.bench.caption`, batched vs one-at-a-time beam search for the
  paper-sized and the demo-sized S2VT;
- ``caption_cli``: :mod:`~s2vt.bench.caption_cli`, ``s2vt caption`` from process start;
- ``score``: :mod:`~s2vt.bench.score`, the caption metrics on a test-sized set;
- ``memory`` (only when asked for): :mod:`~s2vt.bench.memory`, peak RSS of ``s2vt
  extract`` on a long and a short clip.

:func:`ratios` compares them against :data:`TARGETS`. Timings are wall-clock seconds; on a
shared machine compare ratios from one run (``load_before`` / ``load_after`` say how busy
the machine was). :func:`run_experiment` runs one of :data:`EXPERIMENTS` instead.
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
from s2vt.bench.decode import bench_decode
from s2vt.bench.encoder import bench_encoder
from s2vt.bench.experiments.precision import bench_precision
from s2vt.bench.extract import bench_extract
from s2vt.bench.memory import bench_memory
from s2vt.bench.naive import bench_naive
from s2vt.bench.score import bench_score
from s2vt.bench.timing import load_average, timed
from s2vt.bench.train import bench_train

__all__ = ["DEFAULT_STAGES", "EXPERIMENTS", "STAGES", "TARGETS", "BenchConfig", "BenchRun",
           "machine_info", "ratios", "run_benchmark", "run_experiment", "to_json"]

logger = logging.getLogger(__name__)

# The targets of the ratios (ratio name -> minimum).
TARGETS: dict[str, float] = {
    "extract_vs_encoder": 0.8,
    "extract_vs_naive": 10.0,
    "batched_vs_single_caption": 5.0,
    "batched_vs_single_caption_demo_size": 5.0,
}
# caption_cli's target: seconds from process start to the printed caption.
CAPTION_CLI_SECONDS = 5.0


@dataclass
class BenchRun:
    """What the stages of one run share: settings, scratch folder, the clips."""

    config: BenchConfig
    work: Path
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
    """decode, encoder alone, extract and naive: one encoder build, the same clips."""
    import torch

    from s2vt.encoders import build_encoder

    config, sampling, spec, paths = run.config, run.sampling, run.spec, run.clips()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    report: dict[str, Any] = {}
    build_seconds, encoder = timed(lambda: build_encoder(spec))
    logger.info("decode")
    report["decode"], clips = bench_decode(paths, sampling, encoder.image_size)
    logger.info("encoder alone")
    report["encoder"] = dict(bench_encoder(encoder, clips, config.batch_size),
                             build_seconds=round(build_seconds, 3))
    del clips
    logger.info("extract")
    report["extract"] = bench_extract(paths, run.work / "store", config, sampling, spec)
    del encoder
    logger.info("naive")
    report["naive"] = bench_naive(paths, spec, sampling, config.threads)
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
    return {"caption_cli": bench_caption_cli(run.work / "cli_model", run.clips()[0])}


def _score_stage(run: BenchRun) -> dict[str, Any]:
    """The caption metrics."""
    logger.info("score")
    return {"score": bench_score(run.config)}


def _memory_stage(run: BenchRun) -> dict[str, Any]:
    """Peak RSS on a long vs a short clip."""
    logger.info("memory: %g-minute clip", run.config.long_minutes)
    return {"memory": bench_memory(run.work / "memory", run.config.long_minutes)}


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
        ``{"machine", "config", "load_before", <stage>: {...}, "load_after", "ratios"}``.
    """
    chosen = set(stages or DEFAULT_STAGES)
    unknown = chosen - set(STAGES)
    if unknown:
        raise ValueError(f"unknown stage(s) {sorted(unknown)}; known: {', '.join(STAGES)}")
    if work is None:
        with tempfile.TemporaryDirectory(prefix="s2vt-bench-") as tmp:
            return run_benchmark(config, Path(tmp), stages)
    import av  # noqa: F401  (before decord, always: see s2vt.video)

    run = BenchRun(config, _fresh_folder(work))
    report: dict[str, Any] = {"machine": machine_info(), "config": dataclasses.asdict(config),
                              "load_before": load_average()}
    for name, stage in STAGES.items():
        if name in chosen:
            report.update(stage(run))
    report["load_after"] = load_average()
    report["ratios"] = ratios(report)
    return report


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


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """The ratios from one report, each with its target and whether it is met."""
    values: dict[str, float] = {}
    if "extract" in report and "encoder" in report:
        values["extract_vs_encoder"] = (report["extract"]["frames_per_s"]
                                        / report["encoder"]["images_per_s"])
    if "extract" in report and "naive" in report:
        values["extract_vs_naive"] = (report["extract"]["frames_per_s"]
                                      / report["naive"]["frames_per_s"])
    for key, name in (("caption", "batched_vs_single_caption"),
                      ("caption_demo_size", "batched_vs_single_caption_demo_size")):
        if key in report:
            values[name] = (report[key]["batched_videos_per_s"]
                            / report[key]["single_videos_per_s"])
    out: dict[str, Any] = {}
    for name, value in values.items():
        out[name] = {"value": round(value, 3), "target": TARGETS[name],
                     "met": value >= TARGETS[name]}
    if "caption_cli" in report:
        seconds = report["caption_cli"]["seconds"]
        out["caption_cli_seconds"] = {"value": seconds, "target": CAPTION_CLI_SECONDS,
                                      "met": seconds <= CAPTION_CLI_SECONDS}
    return out


def to_json(report: dict[str, Any]) -> str:
    """The report as indented JSON."""
    return json.dumps(report, indent=2, sort_keys=False)
