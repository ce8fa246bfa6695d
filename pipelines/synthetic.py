"""The demo recipe: the whole chain on the embedded synthetic benchmark.

synth -> extract (default encoder) -> train S2VT and the mean-pool baseline -> evaluate
both on ``test`` and ``test_novel`` -> caption one raw test video -> one comparison table
and a PNG of the training curves. Each stage is a cached :class:`~s2vt.pipelines.recipe.Step`,
so a second run with the same settings reuses everything.

Run folder::

    OUT/data/            videos + annotations.json          (s2vt synth)
    OUT/features/        feature store                      (s2vt extract)
    OUT/<model>/model/   model dir                          (s2vt train)
    OUT/<model>/<split>/ predictions.json scores.json report.html (s2vt evaluate)
    OUT/training_curves.png, OUT/summary.json, OUT/summary.md
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from s2vt.config import config_to_dict, load_config
from s2vt.fileio import atomic_write_json, atomic_write_text
from s2vt.metrics import BLEU_4, CIDER, METEOR, ROUGE_L
from s2vt.pipelines import CONFIG_ROOT, recipe
from s2vt.pipelines.recipe import Step, fingerprint, run_step, run_steps
from s2vt.synth_attributes import ATTRIBUTE_KEYS

logger = logging.getLogger(__name__)

CONFIG_DIR = CONFIG_ROOT / "demo"
MODELS = ("s2vt", "meanpool")
SPLITS = ("test", "test_novel")
TABLE_METRICS = (BLEU_4, METEOR, ROUGE_L, CIDER, *ATTRIBUTE_KEYS)


@dataclass
class DemoSettings:
    """What the demo runs.

    ``overrides`` maps a stage (``extract``, ``s2vt``, ``meanpool``) to ``key=value``
    overrides of that stage's config file in ``configs/demo/``; ``workers`` is how many
    evaluations run side by side (the trainings run one after the other on every core).
    """

    num_videos: int = 1800
    seed: int = 0
    beam_size: int = 5
    config_dir: Path = CONFIG_DIR
    overrides: dict[str, list[str]] = field(default_factory=dict)
    report: bool = True
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))


@dataclass
class DemoResult:
    """Scores per model and split, the sample caption, and the files written."""

    out: Path
    scores: dict[str, dict[str, dict[str, float]]]
    sample: dict[str, Any]
    table: str


def split_stage_overrides(items: list[str]) -> dict[str, list[str]]:
    """``["extract.encoder.name=tiny", "s2vt.epochs=2"]`` -> per-stage override lists."""
    return recipe.split_stage_overrides(items, ("extract", *MODELS), command="demo",
                                        example="s2vt.epochs=10")


def run_demo(out: Path, settings: DemoSettings | None = None) -> DemoResult:
    """Run (or reuse) every stage of the demo and return the comparison.

    Args:
        out: the run folder.
        settings: what to run; defaults reproduce the README's demo.
    """
    from s2vt.extraction import ExtractConfig, VideoInput, extract
    from s2vt.synth import synthesize
    from s2vt.training import TrainConfig

    settings = settings or DemoSettings()
    out = Path(out)
    data, features = out / "data", out / "features"
    annotations = data / "annotations.json"

    synth_key = {"stage": "synth", "num_videos": settings.num_videos, "seed": settings.seed}
    run_step(Step("synth", data, synth_key,
                  lambda resume: synthesize(data, settings.num_videos, settings.seed)))

    extract_config = load_config(
        ExtractConfig, settings.config_dir / "extract.yaml", settings.overrides.get("extract")
    )

    def do_extract(resume: bool) -> None:
        from s2vt.datasets import load_annotations

        videos = load_annotations(annotations).videos
        result = extract([VideoInput(v.video_id, v.path) for v in videos], features,
                         extract_config)
        if result.failed:
            logger.warning("%d synthetic videos failed to extract", len(result.failed))

    extract_key = {"stage": "extract", "data": fingerprint(synth_key),
                   "config": config_to_dict(extract_config)}
    run_step(Step("extract", features, extract_key, do_extract))

    # The two trainings run one after the other, each on every core: S2VT's LSTM steps use
    # two threads well (1.8x one thread), and S2VT needs more time than the mean-pool
    # model, which would leave a core idle if they ran side by side. The four evaluations
    # are small and independent: they run side by side, one core each.
    workers = settings.workers
    train_steps, eval_steps = [], []
    for model_name in MODELS:
        train_config = load_config(
            TrainConfig, settings.config_dir / f"{model_name}.yaml",
            settings.overrides.get(model_name),
        )
        model_dir = out / model_name / "model"
        train_key = {"stage": "train", "features": fingerprint(extract_key),
                     "config": config_to_dict(train_config)}
        train_steps.append(Step(
            f"train {model_name}", model_dir, train_key,
            partial(_train, train_config, features, annotations, model_dir),
        ))
        for split in SPLITS:
            eval_key = {"stage": "evaluate", "model": fingerprint(train_key), "split": split,
                        "beam_size": settings.beam_size, "report": settings.report}
            eval_steps.append(Step(
                f"evaluate {model_name} on {split}", out / model_name / split, eval_key,
                partial(_evaluate, model_dir, features, annotations, out / model_name / split,
                        split, settings.beam_size, settings.report),
            ))
    run_steps(train_steps)
    run_steps(eval_steps, workers)
    scores = {model: {split: _read_scores(out / model / split) for split in SPLITS}
              for model in MODELS}

    sample = _caption_sample(out, annotations)
    table = comparison_table(scores)
    _plot_training_curves(out, out / "training_curves.png")
    atomic_write_json(out / "summary.json", {"scores": scores, "sample": sample})
    atomic_write_text(out / "summary.md", _summary_markdown(table, sample))
    return DemoResult(out=out, scores=scores, sample=sample, table=table)


def _train(config: Any, features: Path, annotations: Path, model_dir: Path,
           resume: bool) -> None:
    from s2vt.training import has_saved_state, train

    train(config, features, annotations, model_dir, resume=resume and has_saved_state(model_dir))


def _evaluate(model_dir: Path, features: Path, annotations: Path, out: Path, split: str,
              beam_size: int, report: bool, resume: bool) -> None:
    from s2vt.evaluation import evaluate

    evaluate(model_dir, features, annotations, out, split=split, beam_size=beam_size,
             report=report)


def _read_scores(split_dir: Path) -> dict[str, float]:
    """The numeric entries of an evaluation's scores.json."""
    saved = json.loads((split_dir / "scores.json").read_text(encoding="utf-8"))
    return {k: v for k, v in saved.items() if isinstance(v, int | float)}


def _caption_sample(out: Path, annotations: Path) -> dict[str, Any]:
    """Caption the first test video from its raw file with each model (the inference path)."""
    from s2vt.captioner import Captioner
    from s2vt.datasets import load_annotations

    test = load_annotations(annotations).split("test")
    video = sorted(test.videos, key=lambda v: v.video_id)[0]
    sample: dict[str, Any] = {
        "video_id": video.video_id,
        "path": str(video.path),
        "references": test.references().get(video.video_id, [])[:3],
    }
    for model_name in MODELS:
        captioner = Captioner.from_pretrained(out / model_name / "model")
        sample[model_name] = captioner(video.path)
    return sample


def comparison_table(scores: dict[str, dict[str, dict[str, float]]]) -> str:
    """A plain-text table: one row per metric, one column per model and split."""
    columns = [(model, split) for split in SPLITS for model in scores]
    header = ["metric"] + [f"{model} {split}" for model, split in columns]
    rows = [header]
    for metric in TABLE_METRICS:
        if not any(metric in scores[m][s] for m, s in columns):
            continue
        rows.append([metric] + [
            f"{scores[m][s][metric]:.3f}" if metric in scores[m][s] else "-" for m, s in columns
        ])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths, strict=True)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _summary_markdown(table: str, sample: dict[str, Any]) -> str:
    refs = "\n".join(f"- {r}" for r in sample["references"])
    captions = "\n".join(f"- {m}: {sample[m]}" for m in MODELS)
    return (f"# s2vt demo\n\n```\n{table}\n```\n\n## Sample test video `{sample['video_id']}`"
            f"\n\nGenerated:\n{captions}\n\nReferences:\n{refs}\n")


def _plot_training_curves(out: Path, png: Path) -> None:
    """Training loss and validation score per epoch for each model, from metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for model_name in MODELS:
        log = out / model_name / "model" / "metrics.jsonl"
        if not log.is_file():
            continue
        rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
        epochs = [r["epoch"] for r in rows]
        loss_ax.plot(epochs, [r.get("train_loss") for r in rows], marker="o", label=model_name)
        metric = rows[0].get("val_metric", CIDER) if rows else CIDER
        val_ax.plot(epochs, [r.get("val", {}).get(metric) for r in rows], marker="o",
                    label=f"{model_name} ({metric})")
    loss_ax.set(title="training loss", xlabel="epoch")
    val_ax.set(title="validation score", xlabel="epoch")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    tmp = png.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(png)
