"""The demo recipe: the whole chain on the embedded synthetic benchmark, the paper's table.

synth -> extract RGB features (default encoder) and flow features (Farneback) -> train
the mean-pool baseline and S2VT on RGB, S2VT on flow (with the RGB S2VT's vocabulary) ->
fuse the two S2VTs (alpha tuned on ``val``) -> evaluate all four on ``test`` and
``test_novel`` -> caption one raw test video with each -> one comparison table and a PNG
of the training curves. Each stage is a cached :class:`~s2vt.pipelines.recipe.Step`, so a
second run with the same settings reuses everything. Optional models
(:data:`OPTIONAL_MODELS`: S2VT with temporal attention, the transformer, self-critical
training of the demo's S2VT) join the table when asked for (``s2vt demo --models``).

Run folder::

    OUT/data/                 videos + annotations.json          (s2vt synth)
    OUT/features/             RGB feature store                  (s2vt extract)
    OUT/features_flow/        flow feature store                 (s2vt extract --stream flow)
    OUT/<model>/model/        model dir (s2vt_fused: fused dir)  (s2vt train / s2vt fuse)
    OUT/<model>/<split>/      predictions.json scores.json report.html (s2vt evaluate)
    OUT/training_curves.png, OUT/summary.json, OUT/summary.md
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field, replace
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
# The RGB models, each trained on the RGB store with configs/demo/<name>.yaml.
MODELS = ("s2vt", "meanpool")
# S2VT on the flow store (configs/demo/s2vt_flow.yaml), and its fusion with the RGB S2VT.
FLOW_MODEL = "s2vt_flow"
FUSED_MODEL = "s2vt_fused"
# Models the demo trains only when asked (DemoSettings.extra_models, s2vt demo --models),
# after the others, each on the RGB store from configs/demo/<name>.yaml; one whose config
# says ``objective: scst`` starts from the demo's S2VT (init_from: OUT/s2vt/model). They
# stay out of the default run, which has a 10-minute budget.
OPTIONAL_MODELS = ("s2vt_att", "transformer", "s2vt_scst")
# The table's columns per split, in the paper's order: mean-pool, RGB, flow, RGB + flow.
TABLE_ORDER = ("meanpool", "s2vt", FLOW_MODEL, FUSED_MODEL)
SPLITS = ("test", "test_novel")
TABLE_METRICS = (BLEU_4, METEOR, ROUGE_L, CIDER, *ATTRIBUTE_KEYS)


@dataclass
class DemoSettings:
    """What the demo runs.

    ``overrides`` maps a stage (``extract``, ``extract_flow``, ``s2vt``, ``meanpool``,
    ``s2vt_flow``) to ``key=value`` overrides of that stage's config file in
    ``configs/demo/``; ``workers`` is how many evaluations run side by side (the trainings
    run one after the other on every core); ``flow`` False leaves out the flow stream and
    the fusion; ``extra_models`` adds optional models (:data:`OPTIONAL_MODELS`: ``s2vt_att``,
    S2VT with soft temporal attention; ``transformer``, a transformer encoder-decoder;
    ``s2vt_scst``, self-critical training of the demo's S2VT), each also a stage name for
    ``overrides``.
    """

    num_videos: int = 1800
    seed: int = 0
    beam_size: int = 5
    config_dir: Path = CONFIG_DIR
    overrides: dict[str, list[str]] = field(default_factory=dict)
    report: bool = True
    workers: int = field(default_factory=lambda: min(2, os.cpu_count() or 1))
    flow: bool = True
    extra_models: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        from s2vt.errors import ConfigError

        unknown = [name for name in self.extra_models if name not in OPTIONAL_MODELS]
        if unknown:
            raise ConfigError(f"unknown demo model '{unknown[0]}' (optional models: "
                              f"{', '.join(OPTIONAL_MODELS)})")


@dataclass
class DemoResult:
    """Scores per model and split, the sample caption, and the files written."""

    out: Path
    scores: dict[str, dict[str, dict[str, float]]]
    sample: dict[str, Any]
    table: str


def split_stage_overrides(items: list[str]) -> dict[str, list[str]]:
    """``["extract.encoder.name=tiny", "s2vt.epochs=2"]`` -> per-stage override lists."""
    return recipe.split_stage_overrides(items, ("extract", "extract_flow", *MODELS, FLOW_MODEL,
                                                *OPTIONAL_MODELS),
                                        command="demo", example="s2vt.epochs=10")


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

    def do_extract(config: ExtractConfig, store: Path, resume: bool) -> None:
        from s2vt.datasets import load_annotations

        videos = load_annotations(annotations).videos
        result = extract([VideoInput(v.video_id, v.path) for v in videos], store, config)
        if result.failed:
            logger.warning("%d synthetic videos failed to extract", len(result.failed))

    extract_config = load_config(
        ExtractConfig, settings.config_dir / "extract.yaml", settings.overrides.get("extract")
    )
    extract_key = {"stage": "extract", "data": fingerprint(synth_key),
                   "config": config_to_dict(extract_config)}
    run_step(Step("extract", features, extract_key, partial(do_extract, extract_config,
                                                            features)))
    flow_features = out / "features_flow"
    if settings.flow:
        flow_config = load_config(ExtractConfig, settings.config_dir / "extract_flow.yaml",
                                  settings.overrides.get("extract_flow"))
        flow_key = {"stage": "extract", "data": fingerprint(synth_key),
                    "config": config_to_dict(flow_config)}
        run_step(Step("extract flow", flow_features, flow_key,
                      partial(do_extract, flow_config, flow_features)))

    # The two trainings run one after the other, each on every core: S2VT's LSTM steps use
    # two threads well (1.8x one thread), and S2VT needs more time than the mean-pool
    # model, which would leave a core idle if they ran side by side. The four evaluations
    # are small and independent: they run side by side, one core each.
    workers = settings.workers
    train_steps = []
    # model name -> (its step key, the feature stores it reads, in member order)
    made: dict[str, tuple[dict[str, Any], list[Path]]] = {}
    for model_name in MODELS:
        train_config = load_config(
            TrainConfig, settings.config_dir / f"{model_name}.yaml",
            settings.overrides.get(model_name),
        )
        model_dir = out / model_name / "model"
        train_key = {"stage": "train", "features": fingerprint(extract_key),
                     "config": _train_key_config(train_config)}
        train_steps.append(Step(
            f"train {model_name}", model_dir, train_key,
            partial(_train, train_config, features, annotations, model_dir),
        ))
        made[model_name] = (train_key, [features])
    if settings.flow:
        # The flow S2VT takes the RGB S2VT's vocabulary, so that the two can be fused.
        rgb_key = made["s2vt"][0]
        flow_train = replace(load_config(
            TrainConfig, settings.config_dir / f"{FLOW_MODEL}.yaml",
            settings.overrides.get(FLOW_MODEL)), vocab_from=str(out / "s2vt" / "model"))
        flow_dir = out / FLOW_MODEL / "model"
        flow_train_key = {"stage": "train", "features": fingerprint(flow_key),
                          "vocab": fingerprint(rgb_key),
                          "config": _train_key_config(flow_train)}
        train_steps.append(Step(
            f"train {FLOW_MODEL}", flow_dir, flow_train_key,
            partial(_train, flow_train, flow_features, annotations, flow_dir),
        ))
        made[FLOW_MODEL] = (flow_train_key, [flow_features])
    for model_name in settings.extra_models:
        train_steps.append(_optional_model(model_name, out, settings, features, annotations,
                                           made, extract_key))
    run_steps(train_steps)
    if settings.flow:
        members = ["s2vt", FLOW_MODEL]
        fused_key = {"stage": "fuse", "members": [fingerprint(made[m][0]) for m in members],
                     "split": "val", "beam_size": settings.beam_size}
        fused_dir = out / FUSED_MODEL / "model"
        member_features = [made[m][1][0] for m in members]
        run_step(Step(f"fuse {' + '.join(members)}", fused_dir, fused_key, partial(
            _fuse, [out / m / "model" for m in members], fused_dir, member_features,
            annotations, settings.beam_size)))
        made[FUSED_MODEL] = (fused_key, member_features)
    eval_steps: dict[Path, Step] = {}

    def add_evaluation(model_name: str, split: str, beam_size: int, report: bool) -> None:
        model_key, stores = made[model_name]
        folder = _evaluation_dir(out, model_name, split, beam_size, settings.beam_size)
        if folder in eval_steps:    # the table's own evaluation (with its report) serves
            return
        eval_key = {"stage": "evaluate", "model": fingerprint(model_key), "split": split,
                    "beam_size": beam_size, "report": report}
        eval_steps[folder] = Step(
            f"evaluate {model_name} on {split} (beam {beam_size})", folder, eval_key,
            partial(_evaluate, out / model_name / "model", stores, annotations, folder, split,
                    beam_size, report))

    for model_name in made:
        for split in SPLITS:
            add_evaluation(model_name, split, settings.beam_size, settings.report)
    # A self-critical model against the model it starts from, greedy (the decoding SCST
    # optimises) and with the table's beam search, on val (to choose by) and test.
    self_critical = [m for m in settings.extra_models if "init" in made[m][0]]
    for model_name in dict.fromkeys([*self_critical, *(["s2vt"] if self_critical else [])]):
        for split, beam_size in _scst_comparison(settings.beam_size):
            add_evaluation(model_name, split, beam_size, False)
    run_steps(list(eval_steps.values()), workers)
    scores = {model: {split: _read_scores(out / model / split) for split in SPLITS}
              for model in (*TABLE_ORDER, *settings.extra_models) if model in made}
    gains = {m: scst_gain(out, m, "s2vt", settings.beam_size) for m in self_critical}
    for model_name, gain in gains.items():
        atomic_write_json(out / model_name / "scst_gain.json", gain)

    sample = _caption_sample(out, annotations, list(scores))
    table = comparison_table(scores)
    _plot_training_curves(out, out / "training_curves.png", list(made))
    atomic_write_json(out / "summary.json", {"scores": scores, "sample": sample,
                                             "scst_gain": gains})
    atomic_write_text(out / "summary.md", _summary_markdown(table, sample, gains))
    return DemoResult(out=out, scores=scores, sample=sample, table=table)


def _scst_comparison(beam_size: int) -> list[tuple[str, int]]:
    """(split, beam size) of the evaluations comparing SCST with its start."""
    return [(split, beam) for split in ("val", "test") for beam in dict.fromkeys((1, beam_size))]


def _evaluation_dir(out: Path, model: str, split: str, beam_size: int, table_beam: int) -> Path:
    """OUT/MODEL/SPLIT for the table's evaluations, OUT/MODEL/SPLIT_beamK for others."""
    if split in SPLITS and beam_size == table_beam:
        return out / model / split
    return out / model / f"{split}_beam{beam_size}"


def scst_gain(out: Path, model: str, start: str, table_beam: int) -> dict[str, Any]:
    """CIDEr and motion accuracy of self-critical ``model`` and the model it started from
    (``start``), per decoding and split, with CIDEr's relative gain."""
    rows = {}
    for split, beam_size in _scst_comparison(table_beam):
        mine, theirs = (_read_scores(_evaluation_dir(out, name, split, beam_size, table_beam))
                        for name in (model, start))
        rows[f"{split} beam {beam_size}"] = {
            "split": split, "beam_size": beam_size,
            f"{start} CIDEr": theirs[CIDER], f"{model} CIDEr": mine[CIDER],
            "CIDEr gain": mine[CIDER] / theirs[CIDER] - 1.0 if theirs[CIDER] else None,
            f"{start} attr_motion": theirs.get("attr_motion"),
            f"{model} attr_motion": mine.get("attr_motion"),
        }
    return {"model": model, "start": start, "rows": rows}


def _optional_model(name: str, out: Path, settings: DemoSettings, features: Path,
                    annotations: Path, made: dict[str, tuple[dict[str, Any], list[Path]]],
                    extract_key: dict[str, Any]) -> Step:
    """The training step of an optional model (on the RGB store; :class:`DemoSettings`
    checked the name); registers it in ``made``."""
    from s2vt.training import TrainConfig

    config = load_config(TrainConfig, settings.config_dir / f"{name}.yaml",
                         settings.overrides.get(name))
    key: dict[str, Any] = {"stage": "train", "features": fingerprint(extract_key)}
    if config.objective == "scst":
        # Self-critical training fine-tunes the demo's cross-entropy S2VT.
        config = replace(config, init_from=str(out / "s2vt" / "model"))
        key["init"] = fingerprint(made["s2vt"][0])
    key["config"] = _train_key_config(config)
    model_dir = out / name / "model"
    made[name] = (key, [features])
    return Step(f"train {name}", model_dir, key,
                partial(_train, config, features, annotations, model_dir))


# Training settings added after runs were cached, with the default that trains exactly as
# before: left out of a step's key at that default, so a new setting retrains nothing.
_LATER_SETTINGS: dict[tuple[str, str], Any] = {("scst", "xe_weight"): 0.0}


def _train_key_config(config: Any) -> dict[str, Any]:
    """A train config as a step key (:data:`_LATER_SETTINGS` at their defaults left out)."""
    values = config_to_dict(config)
    for (section, name), default in _LATER_SETTINGS.items():
        if values.get(section, {}).get(name, default) == default:
            values.get(section, {}).pop(name, None)
    return values


def _train(config: Any, features: Path, annotations: Path, model_dir: Path,
           resume: bool) -> None:
    from s2vt.training import has_saved_state, train

    train(config, features, annotations, model_dir, resume=resume and has_saved_state(model_dir))


def _fuse(members: list[Path], out: Path, features: list[Path], annotations: Path,
          beam_size: int, resume: bool) -> None:
    from s2vt.fusing import fuse

    fuse(members, out, features=features, annotations=annotations, split="val",
         beam_size=beam_size)


def _evaluate(model_dir: Path, features: list[Path], annotations: Path, out: Path, split: str,
              beam_size: int, report: bool, resume: bool) -> None:
    from s2vt.evaluation import evaluate

    evaluate(model_dir, features[0] if len(features) == 1 else features, annotations, out,
             split=split, beam_size=beam_size, report=report)


def _read_scores(split_dir: Path) -> dict[str, float]:
    """The numeric entries of an evaluation's scores.json."""
    saved = json.loads((split_dir / "scores.json").read_text(encoding="utf-8"))
    return {k: v for k, v in saved.items() if isinstance(v, int | float)}


def _caption_sample(out: Path, annotations: Path, models: list[str]) -> dict[str, Any]:
    """Caption the first test video from its raw file with each model (the inference path;
    the fused model decodes it once and computes both streams)."""
    from s2vt.captioner import Captioner
    from s2vt.datasets import load_annotations

    test = load_annotations(annotations).split("test")
    video = sorted(test.videos, key=lambda v: v.video_id)[0]
    sample: dict[str, Any] = {
        "video_id": video.video_id,
        "path": str(video.path),
        "references": test.references().get(video.video_id, [])[:3],
    }
    for model_name in models:
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


def _summary_markdown(table: str, sample: dict[str, Any],
                      gains: dict[str, dict[str, Any]] | None = None) -> str:
    refs = "\n".join(f"- {r}" for r in sample["references"])
    captions = "\n".join(f"- {m}: {sample[m]}" for m in (*TABLE_ORDER, *OPTIONAL_MODELS)
                         if m in sample)
    text = (f"# s2vt demo\n\n```\n{table}\n```\n\n## Sample test video `{sample['video_id']}`"
            f"\n\nGenerated:\n{captions}\n\nReferences:\n{refs}\n")
    for model, gain in (gains or {}).items():
        start = gain["start"]
        lines = [f"{'decoding':8s}  {'split':5s}  {start + ' CIDEr':>12s}  {model + ' CIDEr':>16s}"
                 f"  {'gain':>7s}  {'motion':>13s}"]
        for row in gain["rows"].values():
            decoding = "greedy" if row["beam_size"] == 1 else f"beam {row['beam_size']}"
            motion = f"{row[f'{start} attr_motion']:.3f} -> {row[f'{model} attr_motion']:.3f}"
            change = "-" if row["CIDEr gain"] is None else f"{row['CIDEr gain']:+.1%}"
            lines.append(f"{decoding:8s}  {row['split']:5s}  {row[f'{start} CIDEr']:12.3f}  "
                         f"{row[f'{model} CIDEr']:16.3f}  {change:>7s}  {motion:>13s}")
        text += (f"\n## {model} against {start}, the model it starts from\n\n```\n"
                 + "\n".join(lines) + "\n```\n")
    return text


def _plot_training_curves(out: Path, png: Path, models: list[str]) -> None:
    """Training loss and validation score per epoch for each of ``models`` that trained
    (metrics.jsonl)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, val_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for model_name in models:
        log = out / model_name / "model" / "metrics.jsonl"
        if not log.is_file():
            continue
        rows = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line]
        epochs = [r["epoch"] for r in rows]
        if all("train_loss" in r for r in rows):    # self-critical runs log a reward instead
            loss_ax.plot(epochs, [r["train_loss"] for r in rows], marker="o", label=model_name)
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
