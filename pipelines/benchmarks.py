"""The public-benchmark recipes: MSVD, MSR-VTT and VATEX, from the dataset folder to scores.

``run_benchmark(name, root, out)`` chains the stages for one benchmark of
:data:`BENCHMARKS`, each a cached :class:`~s2vt.pipelines.recipe.Step` (a rerun reuses finished
stages, an interrupted one resumes):

1. extract: features of every clip the loader finds under ``root`` (ids are exactly the
   loader's video ids); clips the annotations name but that are not on disk are counted and
   listed in ``OUT/missing.json``; clips that fail to decode are recorded by the feature
   store (``OUT/features/failures.jsonl``) and the run goes on.
2. train: S2VT on the ``train`` split, validated on ``val`` (best model by validation CIDEr).
3. evaluate: captions for the standard test split's clips that have features, scored with
   the official metrics (predictions.json, scores.json, report.html). Clips without
   features are left out and counted in ``scores.json``'s settings.

With ``streams`` ``rgb,flow`` (``s2vt run NAME --streams rgb,flow``) the recipe also runs
the paper's two-stream model: flow features of every clip (``extract_flow.yaml``), an S2VT
trained on them with the RGB model's vocabulary, their fusion (``s2vt fuse``, alpha tuned
on ``val`` by CIDEr) and the test scores of the flow model and of the fused model.

Run folder::

    OUT/features/                 feature store              (s2vt extract)
    OUT/model/                    best model dir + last/, train_state.pt, metrics.jsonl
    OUT/test/                     predictions.json scores.json report.html
    OUT/missing.json              clips named by the annotations but not found on disk
    OUT/summary.json              counts, scores and the settings of the run
    OUT/flow/{features,model,test}/   the flow stream (``--streams rgb,flow``)
    OUT/fused/{model,test}/           the fused dir and its test scores

The configs are ``configs/<benchmark>/{extract,train,extract_flow}.yaml`` (the flow model
trains with ``train_flow.yaml`` when there is one, else ``train.yaml``); ``--set
STAGE.KEY=VALUE`` overrides them (stages ``extract``, ``train``, ``extract_flow``,
``train_flow``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.config import config_to_dict, load_config
from s2vt.errors import S2VTError
from s2vt.fileio import atomic_write_json
from s2vt.metrics import METEOR, METRIC_KEYS
from s2vt.pipelines import CONFIG_ROOT
from s2vt.pipelines.recipe import Step, fingerprint, run_step, split_stage_overrides

if TYPE_CHECKING:
    from s2vt.datasets import Annotations
    from s2vt.extraction import ExtractConfig
    from s2vt.training import TrainConfig

logger = logging.getLogger(__name__)

STAGES = ("extract", "train", "extract_flow", "train_flow")
STREAMS = ("rgb", "flow")
SUMMARY_METRICS = METRIC_KEYS


@dataclass(frozen=True)
class Benchmark:
    """One public benchmark and how its recipe runs.

    Attributes:
        name: registry name, also the ``--format`` of its annotations.
        title: shown in the summary.
        config_dir: holds ``extract.yaml`` and ``train.yaml``.
        test_split: the standard evaluation split.
        published: metric -> a published S2VT-style score (fraction) to print beside ours.
        published_source: where ``published`` comes from.
    """

    name: str
    title: str
    config_dir: Path
    test_split: str = "test"
    published: dict[str, float] = field(default_factory=dict)
    published_source: str = ""


BENCHMARKS: dict[str, Benchmark] = {
    benchmark.name: benchmark
    for benchmark in (
        Benchmark("msvd", "MSVD (YouTube2Text)", CONFIG_ROOT / "msvd",
                  published={METEOR: 0.292},
                  published_source="S2VT, RGB VGG16 (Venugopalan et al., ICCV 2015)"),
        Benchmark("msrvtt", "MSR-VTT", CONFIG_ROOT / "msrvtt"),
        Benchmark("vatex", "VATEX (English)", CONFIG_ROOT / "vatex"),
    )
}


def benchmark_names() -> list[str]:
    """The names ``s2vt run`` accepts."""
    return sorted(BENCHMARKS)


def get_benchmark(name: str) -> Benchmark:
    """The registry entry for ``name``; an unknown name lists the known ones."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise S2VTError(f"unknown benchmark '{name}' (known: {', '.join(benchmark_names())})"
                        ) from None


def parse_streams(text: str) -> tuple[str, ...]:
    """``"rgb,flow"`` -> ``("rgb", "flow")``; rgb must be one (flow is fused with it)."""
    streams = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in streams if name not in STREAMS]
    if unknown:
        raise S2VTError(f"unknown stream {unknown[0]!r} (known: {', '.join(STREAMS)})")
    if "rgb" not in streams:
        raise S2VTError("the flow stream is trained and fused next to the rgb one: use "
                        "--streams rgb,flow")
    return tuple(name for name in STREAMS if name in streams)


def split_run_overrides(items: list[str]) -> dict[str, list[str]]:
    """``["extract.encoder.name=tiny", "train.epochs=2"]`` -> per-stage override lists."""
    return split_stage_overrides(items, STAGES, command="run", example="train.epochs=10")


@dataclass
class RunSettings:
    """What ``run_benchmark`` does besides the configs.

    Attributes:
        overrides: stage (``extract``/``train``) -> ``key=value`` overrides of its config.
        config_dir: folder with ``extract.yaml``/``train.yaml`` (default: the benchmark's).
        beam_size: beam width of the test captions.
        video_root: where the clips are, when not in the dataset's usual folders.
        report: write report.html.
        java: see :func:`s2vt.metrics.score_captions` (None: Java when available).
        progress: show progress bars.
        streams: ``("rgb",)``, or ``("rgb", "flow")`` for the two-stream model and its
            fusion.
    """

    overrides: dict[str, list[str]] = field(default_factory=dict)
    config_dir: Path | None = None
    beam_size: int = 5
    video_root: Path | None = None
    report: bool = True
    java: bool | None = None
    progress: bool = True
    streams: tuple[str, ...] = ("rgb",)


@dataclass
class RunResult:
    """What one benchmark run produced (also written to ``OUT/summary.json``).

    ``scores`` are the RGB model's; ``stream_scores`` holds every model's test scores
    (``rgb``, and with the flow stream ``flow`` and ``rgb+flow``).
    """

    benchmark: str
    out: Path
    test_split: str
    scores: dict[str, float]
    counts: dict[str, Any]
    missing: list[str]
    failed: list[dict[str, Any]]
    ran: dict[str, bool]
    table: str
    stream_scores: dict[str, dict[str, float]] = field(default_factory=dict)


def load_stage_configs(
    benchmark: Benchmark, settings: RunSettings
) -> tuple[ExtractConfig, TrainConfig]:
    """The benchmark's extract and train configs with the run's overrides applied."""
    from s2vt.extraction import ExtractConfig
    from s2vt.training import TrainConfig

    folder = settings.config_dir or benchmark.config_dir
    extract_config = load_config(ExtractConfig, folder / "extract.yaml",
                                 settings.overrides.get("extract"))
    train_config = load_config(TrainConfig, folder / "train.yaml",
                               settings.overrides.get("train"))
    return extract_config, train_config


def load_flow_configs(
    benchmark: Benchmark, settings: RunSettings
) -> tuple[ExtractConfig, TrainConfig]:
    """The benchmark's flow-stream extract and train configs with the run's overrides."""
    from s2vt.extraction import ExtractConfig
    from s2vt.training import TrainConfig

    folder = settings.config_dir or benchmark.config_dir
    extract_config = load_config(ExtractConfig, folder / "extract_flow.yaml",
                                 settings.overrides.get("extract_flow"))
    if extract_config.stream != "flow":
        raise S2VTError(f"{folder / 'extract_flow.yaml'} must set stream: flow")
    train_file = folder / "train_flow.yaml"
    train_config = load_config(TrainConfig, train_file if train_file.is_file()
                               else folder / "train.yaml", settings.overrides.get("train_flow"))
    return extract_config, train_config


def resolve_extract_device(config: ExtractConfig) -> ExtractConfig:
    """``device: auto`` in a recipe config -> ``cuda`` when available, else ``cpu``."""
    if config.device != "auto":
        return config
    import torch

    return replace(config, device="cuda" if torch.cuda.is_available() else "cpu")


def _annotation_key(annotations: Annotations, splits: tuple[str, ...]) -> str:
    """Fingerprint of the videos and references of some splits (a changed caption retrains)."""
    videos = [(v.video_id, v.split) for v in annotations.videos if v.split in set(splits)]
    ids = {vid for vid, _ in videos}
    return fingerprint({
        "videos": videos,
        "captions": [(c.video_id, c.text) for c in annotations.captions if c.video_id in ids],
    })


def run_benchmark(name: str, root: Path, out: Path | None = None,
                  settings: RunSettings | None = None) -> RunResult:
    """Run (or reuse) extract -> train -> evaluate for one benchmark.

    Args:
        name: a key of :data:`BENCHMARKS`.
        root: the dataset folder (annotation files + clips, see data/README.md).
        out: the run folder (default ``runs/<name>``).
        settings: overrides, beam size, clip folder...
    Returns:
        A :class:`RunResult`; ``OUT/summary.json`` holds the same.
    Raises:
        S2VTError: unknown benchmark, no annotation file of that benchmark under ``root``,
            no clip found at all, bad configs, or a stage's own errors.
    """
    from s2vt.datasets import load_annotations

    benchmark = get_benchmark(name)
    settings = settings or RunSettings()
    root = Path(root)
    out = Path(out) if out is not None else Path("runs") / name
    if not root.exists():
        raise S2VTError(f"dataset folder not found: {root} (see data/README.md for the "
                        f"{benchmark.title} folder tree)")
    extract_config, train_config = load_stage_configs(benchmark, settings)
    extract_config = resolve_extract_device(extract_config)

    annotations = load_annotations(root, name, video_root=settings.video_root)
    inputs = annotations.video_paths()  # clear error when no clip is found at all
    missing = sorted(annotations.missing)
    atomic_write_json(out / "missing.json", {
        "count": len(missing),
        "by_split": _count_by_split(missing, annotations.missing_splits),
        "videos": [{"video_id": vid, "split": annotations.missing_splits.get(vid)}
                   for vid in missing],
    })
    if missing:
        logger.warning("%d clip(s) named by the %s annotations are not on disk (skipped; "
                       "listed in %s)", len(missing), name, out / "missing.json")

    features, model_dir = out / "features", out / "model"
    stages = _Stages(benchmark, root, settings, annotations, inputs)
    ran: dict[str, bool] = {}
    split = benchmark.test_split
    extract_key, ran["extract"] = stages.extract("extract", extract_config, features)
    train_key, ran["train"] = stages.train("train", train_config, features, model_dir,
                                           extract_key)
    ran["evaluate"] = stages.evaluate(f"evaluate {split}", model_dir, features, out / split,
                                      train_key, extract_config.device)
    if "flow" in settings.streams:
        ran.update(_run_flow_and_fusion(stages, out, train_key, train_config))

    return _summarise(benchmark, out, annotations, inputs, missing, ran, settings)


@dataclass
class _Stages:
    """The cached steps of one benchmark run, the same for each stream: extract, train and
    evaluate (``step`` names the step in the log and the stamp, e.g. ``train flow``)."""

    benchmark: Benchmark
    root: Path
    settings: RunSettings
    annotations: Annotations
    inputs: dict[str, Path]

    def extract(self, step: str, config: ExtractConfig, features: Path,
                ) -> tuple[dict[str, Any], bool]:
        """Features of every clip; returns the step's key and whether it ran."""
        key = {
            "stage": "extract", "benchmark": self.benchmark.name,
            "encoder": config_to_dict(config.encoder),
            "sampling": config_to_dict(config.sampling),
            "dtype": config.dtype,
            "videos": fingerprint(sorted(self.inputs)),
        }
        if config.stream == "flow":
            key["stream"] = config_to_dict(config.flow)

        def do_extract(resume: bool) -> None:
            from s2vt.extraction import VideoInput, extract

            result = extract([VideoInput(vid, path) for vid, path in self.inputs.items()],
                             features, config, progress=self.settings.progress)
            if result.failed:
                logger.warning("%d clip(s) failed %s extraction (recorded in %s)",
                               len(result.failed), config.stream, features / "failures.jsonl")

        # New clips (say, re-downloaded dead links) only add to the store.
        return key, run_step(Step(step, features, key, do_extract,
                                  resume_on=("videos",)))

    def train(self, step: str, config: TrainConfig, features: Path, model_dir: Path,
              extract_key: dict[str, Any], vocab_key: dict[str, Any] | None = None,
              ) -> tuple[dict[str, Any], bool]:
        """A model on ``features``; returns the step's key and whether it ran."""
        key = {
            "stage": "train", "benchmark": self.benchmark.name,
            "features": fingerprint(extract_key),
            "annotations": _annotation_key(self.annotations,
                                           (config.train_split, config.val_split)),
            # The device does not change what is learned; moving a run to a GPU resumes it.
            "config": {k: v for k, v in config_to_dict(config).items() if k != "device"},
        }
        if vocab_key is not None:
            key["vocab"] = fingerprint(vocab_key)

        def do_train(resume: bool) -> None:
            from s2vt.training import has_saved_state, train

            train(config, features, self.root, model_dir,
                  resume=resume and has_saved_state(model_dir),
                  progress=self.settings.progress, format=self.benchmark.name)

        return key, run_step(Step(step, model_dir, key, do_train))

    def evaluate(self, step: str, model_dir: Path, stores: Path | list[Path], test_dir: Path,
                 model_key: dict[str, Any], device: str) -> bool:
        """Test-split captions and scores of ``model_dir``; whether the step ran."""
        benchmark, settings = self.benchmark, self.settings
        split = benchmark.test_split
        key = {"stage": "evaluate", "model": fingerprint(model_key), "split": split,
               "annotations": _annotation_key(self.annotations, (split,)),
               "beam_size": settings.beam_size, "report": settings.report,
               "java": settings.java}

        def do_evaluate(resume: bool) -> None:
            from s2vt.evaluation import evaluate

            evaluate(model_dir, stores, self.root, test_dir, split=split,
                     format=benchmark.name, video_root=settings.video_root,
                     beam_size=settings.beam_size, java=settings.java, skip_missing=True,
                     report=settings.report, device=device)

        return run_step(Step(step, test_dir, key, do_evaluate))


def _run_flow_and_fusion(stages: _Stages, out: Path, rgb_train_key: dict[str, Any],
                         rgb_train: TrainConfig) -> dict[str, bool]:
    """Flow features, a flow S2VT (the RGB model's vocabulary), the fusion, their tests."""
    benchmark, settings = stages.benchmark, stages.settings
    extract_config, train_config = load_flow_configs(benchmark, settings)
    extract_config = resolve_extract_device(extract_config)
    rgb_model, rgb_features = out / "model", out / "features"
    train_config = replace(train_config, vocab_from=str(rgb_model))
    features, model_dir = out / "flow" / "features", out / "flow" / "model"
    fused_dir = out / "fused" / "model"
    ran: dict[str, bool] = {}
    extract_key, ran["extract_flow"] = stages.extract("extract flow", extract_config, features)
    train_key, ran["train_flow"] = stages.train("train flow", train_config, features,
                                                model_dir, extract_key, vocab_key=rgb_train_key)
    fuse_key = {"stage": "fuse", "members": [fingerprint(rgb_train_key), fingerprint(train_key)],
                "split": rgb_train.val_split, "beam_size": settings.beam_size}

    def do_fuse(resume: bool) -> None:
        from s2vt.fusing import fuse

        fuse([rgb_model, model_dir], fused_dir, features=[rgb_features, features],
             annotations=stages.root, split=rgb_train.val_split, format=benchmark.name,
             beam_size=settings.beam_size, device=extract_config.device)

    ran["fuse"] = run_step(Step("fuse rgb + flow", fused_dir, fuse_key, do_fuse))
    split = benchmark.test_split
    for label, model, stores, key in (("flow", model_dir, features, train_key),
                                      ("fused", fused_dir, [rgb_features, features], fuse_key)):
        ran[f"evaluate_{label}"] = stages.evaluate(f"evaluate {label} {split}", model,
                                                   stores, out / label / split, key,
                                                   extract_config.device)
    return ran


def _count_by_split(ids: list[str], splits: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for vid in ids:
        split = splits.get(vid, "?")
        counts[split] = counts.get(split, 0) + 1
    return counts


def _summarise(benchmark: Benchmark, out: Path, annotations: Annotations,
               inputs: dict[str, Path], missing: list[str], ran: dict[str, bool],
               settings: RunSettings) -> RunResult:
    """Collect counts and scores from the run folder, write summary.json, build the table."""
    from s2vt.features import FeatureStore

    store = FeatureStore.open(out / "features")
    failed = [f for f in store.failures() if not store.has(str(f.get("video_id")))]
    saved = json.loads((out / benchmark.test_split / "scores.json").read_text(encoding="utf-8"))
    scores = {k: float(v) for k, v in saved.items() if isinstance(v, int | float)}
    evaluated = saved.get("settings", {})
    history_path = out / "model" / "metrics.jsonl"
    history = [json.loads(line) for line in history_path.read_text(encoding="utf-8").splitlines()
               if line.strip()] if history_path.is_file() else []
    split_sizes = {split: len(annotations.split(split).videos)
                   for split in annotations.splits()}
    counts: dict[str, Any] = {
        "clips_found": len(inputs),
        "clips_missing": len(missing),
        "clips_failed": len(failed),
        "clips_per_split": split_sizes,
        "test_videos_scored": len(json.loads((out / benchmark.test_split / "predictions.json")
                                             .read_text(encoding="utf-8"))),
        "test_videos_skipped": int(evaluated.get("num_skipped", 0)),
        "epochs": len(history),
        "best_epoch": history[-1].get("best_epoch") if history else None,
    }
    streams = {"rgb": scores}
    if "flow" in settings.streams:
        for label, folder in (("flow", out / "flow"), ("rgb+flow", out / "fused")):
            saved = json.loads((folder / benchmark.test_split / "scores.json")
                               .read_text(encoding="utf-8"))
            streams[label] = {k: float(v) for k, v in saved.items() if isinstance(v, int | float)}
        fused = json.loads((out / "fused" / "model" / "config.json").read_text(encoding="utf-8"))
        counts["fusion_alpha"] = fused.get("alpha")
    table = summary_table(benchmark, scores, counts, ran, streams)
    summary = {"benchmark": benchmark.name, "scores": scores, "counts": counts,
               "stages_run": ran, "beam_size": settings.beam_size,
               "published": benchmark.published, "published_source": benchmark.published_source,
               "failed": failed[:100]}
    if len(streams) > 1:
        summary["streams"] = streams
    atomic_write_json(out / "summary.json", summary)
    return RunResult(benchmark=benchmark.name, out=out, test_split=benchmark.test_split,
                     scores=scores, counts=counts,
                     missing=missing, failed=failed, ran=ran, table=table,
                     stream_scores=streams)


def summary_table(benchmark: Benchmark, scores: dict[str, float], counts: dict[str, Any],
                  ran: dict[str, bool],
                  streams: dict[str, dict[str, float]] | None = None) -> str:
    """A short plain-text summary: clip counts, stages run or reused, and the test scores
    (with the flow stream: a column each for the flow and the fused model)."""
    sizes = ", ".join(f"{split} {n}" for split, n in counts["clips_per_split"].items())
    stages = ", ".join(f"{stage} {'ran' if did else 'reused'}" for stage, did in ran.items())
    lines = [
        f"{benchmark.title}: {counts['clips_found']} clips found, {counts['clips_missing']} "
        f"missing, {counts['clips_failed']} failed to decode",
        f"splits with clips: {sizes}; test scored on {counts['test_videos_scored']} "
        f"({counts['test_videos_skipped']} without features left out)",
        f"stages: {stages}",
        "",
    ]
    published = bool(benchmark.published)
    others = {k: v for k, v in (streams or {}).items() if k != "rgb"}
    header = (f"{'metric':<8}  {'rgb' if others else 'test':>7}"
              + "".join(f"  {k:>8}" for k in others)
              + (f"  {'published':>9}" if published else ""))
    if others:
        lines.insert(-1, f"{benchmark.test_split} scores of the rgb, the flow and the fused "
                         f"model (rgb weight alpha {counts.get('fusion_alpha')})")
    lines += [header, "-" * len(header)]
    for metric in SUMMARY_METRICS:
        if metric not in scores:
            continue
        row = f"{metric:<8}  {100 * scores[metric]:7.2f}"
        row += "".join(f"  {100 * v[metric]:8.2f}" if metric in v else f"  {'-':>8}"
                       for v in others.values())
        if published:
            value = benchmark.published.get(metric)
            row += f"  {100 * value:9.1f}" if value is not None else f"  {'-':>9}"
        lines.append(row)
    if published:
        lines.append(f"(scores x100; published: {benchmark.published_source})")
    else:
        lines.append("(scores x100; published numbers to compare with: data/README.md)")
    return "\n".join(lines)
