"""The score and evaluate stages: predictions files, split-aware scoring, and evaluation of a
model dir on a feature store (predictions.json, scores.json, report.html).

Decisions worth knowing:

- Scoring is always on a whole split: a prediction for a video outside the split, or a
  video of the split without a prediction, is an error naming a few of them, so numbers
  can never silently come from a subset. Videos that have no reference caption at all
  cannot be scored and are left out with a warning (their count is in the settings).
- ``evaluate`` refuses to run when videos of the split have no features in the store
  (listing a few), unless ``skip_missing=True``: then they are left out with a warning and
  their count and ids are recorded in ``scores.json``'s settings. Scores on a subset are
  not comparable with published numbers, hence the opt-in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from s2vt.errors import S2VTError
from s2vt.fileio import atomic_write_json
from s2vt.metrics import CIDER, METEOR, ScoreResult, score_captions

if TYPE_CHECKING:
    from s2vt.checkpoint import LoadedModel
    from s2vt.datasets import Annotations
    from s2vt.features import FeatureStore

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.json"
SCORES_FILE = "scores.json"
REPORT_FILE = "report.html"
_EXAMPLES = 5


def _examples(ids: Sequence[str]) -> str:
    return ", ".join(repr(i) for i in list(ids)[:_EXAMPLES]) + (", ..." if len(ids) > _EXAMPLES
                                                              else "")


# --------------------------------------------------------------------------- predictions
def load_predictions(path: Path) -> dict[str, str]:
    """Read predictions: a JSON list of ``{"video_id", "caption"}`` or a ``{id: caption}`` map.

    COCO-style ``image_id`` is accepted in place of ``video_id``.

    Raises:
        S2VTError: missing/unreadable file, wrong shape, a non-string caption, or a video
            predicted twice (the message names the file and the entry).
    """
    path = Path(path)
    if not path.is_file():
        raise S2VTError(f"predictions file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise S2VTError(f"cannot read predictions file {path}: {error}") from None
    predictions: dict[str, str] = {}
    if isinstance(data, dict):
        entries = [{"video_id": key, "caption": value} for key, value in data.items()]
    elif isinstance(data, list):
        entries = data
    else:
        raise S2VTError(f"predictions file {path} must hold a JSON list of "
                        '{"video_id", "caption"} objects or an {id: caption} object')
    for number, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise S2VTError(f"predictions file {path}: entry {number} is not an object")
        video_id = entry.get("video_id", entry.get("image_id"))
        caption = entry.get("caption")
        if video_id is None or caption is None:
            raise S2VTError(f"predictions file {path}: entry {number} needs 'video_id' and "
                            f"'caption', got keys {sorted(entry)}")
        if not isinstance(caption, str):
            raise S2VTError(f"predictions file {path}: caption of video {video_id!r} is not a "
                            f"string: {caption!r}")
        video_id = str(video_id)
        if video_id in predictions:
            raise S2VTError(f"predictions file {path}: video {video_id!r} is predicted twice")
        predictions[video_id] = caption
    if not predictions:
        raise S2VTError(f"predictions file {path} holds no predictions")
    return predictions


def save_predictions(path: Path, predictions: Mapping[str, str]) -> None:
    """Write predictions as a JSON list of ``{"video_id", "caption"}`` (atomically)."""
    atomic_write_json(Path(path), [{"video_id": vid, "caption": caption}
                                   for vid, caption in predictions.items()])


# --------------------------------------------------------------------------- scoring
def resolve_aliases(predictions: Mapping[str, str], annotations: Annotations) -> dict[str, str]:
    """Re-key predictions made under another name of a video (MSVD's ``vid1301``) by its id.

    Keys that are video ids, or that no video has as an alias, stay as they are.

    Raises:
        S2VTError: one video predicted under two names (e.g. its clip key and its ``vidN``).
    """
    ids = {video.video_id for video in annotations.videos}
    aliases = annotations.aliases()
    resolved: dict[str, str] = {}
    named: dict[str, str] = {}
    for key, caption in predictions.items():
        video_id = key if key in ids else aliases.get(key, key)
        if video_id in resolved:
            raise S2VTError(f"video {video_id!r} is predicted twice (as {named[video_id]!r} "
                            f"and as {key!r})")
        resolved[video_id] = caption
        named[video_id] = key
    return resolved


def score_split(
    predictions: Mapping[str, str],
    annotations: Annotations,
    *,
    split: str | None = None,
    java: bool | None = None,
) -> ScoreResult:
    """Score predictions on every video of one split, plus the benchmark's own extra scores.

    Args:
        predictions: video id (or an alias such as MSVD's ``vidN``) -> caption.
        annotations: the benchmark's annotations (all splits, or already one split).
        split: the split to score on; None: all of ``annotations``.
        java: see :func:`s2vt.metrics.score_captions`.
    Returns:
        The scores (plus those of ``annotations.scorer`` when its loader attached one, e.g.
        ``attr_*`` on the synthetic benchmark), per-video scores and settings (with
        ``split`` and the number of unscorable videos left out).
    Raises:
        S2VTError: predictions for videos outside the split, or videos of the split without
            a prediction (each message counts them and names a few).
    """
    predictions = resolve_aliases(predictions, annotations)
    subset = annotations.split(split) if split is not None else annotations
    where = f"split '{split}'" if split is not None else "the annotations"
    if subset.source:
        where += f" of {subset.source}"
    references = subset.references()
    outside = sorted(set(predictions) - set(references))
    missing = sorted(set(references) - set(predictions))
    problems = []
    if outside:
        problems.append(f"{len(outside)} prediction(s) are for videos not in {where} "
                        f"(e.g. {_examples(outside)})")
    if missing:
        problems.append(f"{len(missing)} of {len(references)} videos of {where} have no "
                        f"prediction (e.g. {_examples(missing)})")
    if problems:
        raise S2VTError("; ".join(problems))
    unscorable = sorted(vid for vid, refs in references.items() if not refs)
    if unscorable:
        logger.warning("%d video(s) of %s have no reference caption and are not scored "
                       "(e.g. %s)", len(unscorable), where, _examples(unscorable))
    references = {vid: refs for vid, refs in references.items() if refs}
    if not references:
        raise S2VTError(f"no video of {where} has a reference caption")
    scored = {vid: predictions[vid] for vid in references}
    result = score_captions(scored, references, java=java)
    if subset.scorer is not None:
        result.scores.update(subset.scorer.scores(scored))
    result.settings = {"split": split, **result.settings, "num_unscored": len(unscorable)}
    return result


# --------------------------------------------------------------------------- evaluate
@dataclass
class EvaluationResult:
    """What ``evaluate`` produced.

    Attributes:
        predictions: video id -> generated caption.
        result: corpus scores, per-video scores and settings.
        skipped: videos of the split left out because the store has no features for them.
        files: name -> written path (predictions, scores, report).
    """

    predictions: dict[str, str]
    result: ScoreResult
    skipped: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def check_store_compatible(store: FeatureStore, loaded: LoadedModel) -> None:
    """Refuse features the model was not trained on (other dim, encoder or pooling).

    A differing frame sampling still runs (the model reads any length) but is logged, since
    it usually costs accuracy.

    Raises:
        S2VTError: naming the store, the model dir and the differing setting.
    """
    from s2vt.flow.stream import check_same_stream, stream_of

    where = f"feature store {store.root} does not fit model dir {loaded.path}"
    check_same_stream(stream_of(store.meta), stream_of({"stream": loaded.stream}), where,
                      f"model dir {loaded.path}")
    if store.feature_dim != loaded.config.feature_dim:
        raise S2VTError(f"{where}: features have dimension {store.feature_dim}, the model "
                        f"expects {loaded.config.feature_dim}")
    store_encoder = store.meta.get("encoder")
    model_encoder = loaded.encoder_spec or {}
    if isinstance(store_encoder, str):
        store_encoder = {"name": store_encoder}
    if isinstance(store_encoder, dict) and model_encoder:
        for key in ("name", "pool", "image_size"):
            mine, theirs = store_encoder.get(key), model_encoder.get(key)
            if mine is not None and theirs is not None and mine != theirs:
                raise S2VTError(f"{where}: encoder {key} is {mine!r} in the store but "
                                f"{theirs!r} for the model (extract features with the "
                                "model's encoder)")
    # The resolved input size (the spec's image_size may be None = "native").
    store_size, model_size = store.meta.get("image_size"), (loaded.features or {}).get("image_size")
    if store_size is not None and model_size is not None and store_size != model_size:
        raise S2VTError(f"{where}: frames were encoded at {store_size} px in the store but at "
                        f"{model_size} px for the model")
    store_sampling = store.meta.get("sampling")
    if isinstance(store_sampling, dict) and loaded.sampling and store_sampling != loaded.sampling:
        logger.warning("the feature store samples frames with %s but the model was trained on "
                       "%s; captions may be worse", store_sampling, loaded.sampling)


def evaluate(
    model_dir: Path,
    features: Path | Sequence[Path],
    annotations: Path,
    out: Path,
    *,
    split: str = "test",
    format: str | None = None,
    video_root: Path | None = None,
    beam_size: int = 5,
    batch_size: int = 64,
    max_len: int = 20,
    device: str = "cpu",
    java: bool | None = None,
    skip_missing: bool = False,
    report: bool = True,
    report_per_group: int = 30,
) -> EvaluationResult:
    """Caption every video of a split from its stored features, score, and write the report.

    Args:
        model_dir: a model dir from ``s2vt train``.
        features: the feature store folder (made with the model's encoder and sampling);
            for a fused dir (``s2vt fuse``) one store per member, in member order.
        annotations: annotation file or dataset folder (references, clip paths).
        out: output folder for predictions.json, scores.json and report.html.
        split: the split to evaluate.
        format: annotation format name (None: detected).
        video_root: where the clips are, if not where the annotations say (thumbnails).
        beam_size: beam width (1 = greedy).
        batch_size: videos captioned per batch.
        max_len: longest caption in words.
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        java: see :func:`s2vt.metrics.score_captions`.
        skip_missing: leave out videos without features instead of failing.
        report: write report.html.
        report_per_group: at most this many videos per report group.
    Returns:
        An :class:`EvaluationResult`.
    Raises:
        S2VTError: bad inputs, an incompatible store, or missing features (see module doc).
    """
    from tqdm import tqdm

    from s2vt.captioner import Captioner
    from s2vt.datasets import load_annotations
    from s2vt.features import FeatureStore

    if beam_size < 1:
        raise S2VTError(f"beam size must be at least 1, got {beam_size}")
    if batch_size < 1:
        raise S2VTError(f"batch size must be at least 1, got {batch_size}")
    out = Path(out)
    paths = [Path(features)] if isinstance(features, str | Path) else [Path(p) for p in features]
    stores = [FeatureStore.open(path) for path in paths]
    captioner = Captioner.from_pretrained(Path(model_dir), device=device, beam_size=beam_size,
                                          batch_size=batch_size, max_len=max_len)
    members = getattr(captioner.loaded, "members", [captioner.loaded])
    if len(stores) != len(members):
        raise S2VTError(f"model dir {model_dir} has {len(members)} member(s) but "
                        f"{len(stores)} feature store(s) were given: give one per member, "
                        "in the fused dir's member order")
    for one, member in zip(stores, members, strict=True):
        check_store_compatible(one, member)
    store = stores[0]
    fused = len(stores) > 1
    roots = " and ".join(str(one.root) for one in stores)
    subset = load_annotations(Path(annotations), format, video_root=video_root,
                              keep_missing=True).split(split)

    wanted = [video.video_id for video in subset.videos]
    absent = [vid for vid in wanted if not all(one.has(vid) for one in stores)]
    if absent and not skip_missing:
        raise S2VTError(f"{len(absent)} of {len(wanted)} videos of split '{split}' have no "
                        f"features in {roots} (e.g. {_examples(absent)}); extract them "
                        "or pass --skip-missing to evaluate on the others")
    if absent:
        logger.warning("skipping %d of %d videos of split '%s' without features (e.g. %s)",
                       len(absent), len(wanted), split, _examples(absent))
        absent_set = set(absent)
        subset.videos = [v for v in subset.videos if v.video_id not in absent_set]
        subset.captions = [c for c in subset.captions if c.video_id not in absent_set]
        if not subset.videos:
            raise S2VTError(f"no video of split '{split}' has features in {roots}")

    ids = [video.video_id for video in subset.videos]
    predictions: dict[str, str] = {}
    attention: dict[str, list[list[float]] | None] = {}  # per word, for the report
    with tqdm(total=len(ids), desc=f"captioning {split}", unit="video") as progress:
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            arrays = [tuple(one.read(vid).features for one in stores) if fused
                      else store.read(vid).features for vid in chunk]
            for vid, found in zip(chunk, captioner.caption_features_scored(arrays),
                                  strict=True):
                predictions[vid] = found[0].caption
                attention[vid] = found[0].attention
            progress.update(len(chunk))

    out.mkdir(parents=True, exist_ok=True)
    files = {"predictions": out / PREDICTIONS_FILE, "scores": out / SCORES_FILE}
    save_predictions(files["predictions"], predictions)

    result = score_split(predictions, subset, java=java)
    result.settings = {
        "model": str(model_dir),
        "features": [str(p) for p in paths] if fused else str(paths[0]),
        "annotations": str(annotations),
        "split": split,
        "beam_size": beam_size,
        "max_len": max_len,
        **{k: v for k, v in result.settings.items() if k != "split"},
        "num_skipped": len(absent),
        "skipped": absent[:100],
    }
    from s2vt.metrics import write_scores

    write_scores(files["scores"], result.scores, result.settings)
    if report:
        files["report"] = out / REPORT_FILE
        _write_evaluation_report(files["report"], subset, predictions, result, store,
                                 per_group=report_per_group, attention=attention)
    return EvaluationResult(predictions=predictions, result=result, skipped=absent, files=files)


def rank_metric_for(result: ScoreResult) -> str:
    """The per-video score that ranks the report: METEOR when computed, else CIDEr."""
    return METEOR if METEOR in result.scores else CIDER


def _write_evaluation_report(
    path: Path,
    subset: Annotations,
    predictions: Mapping[str, str],
    result: ScoreResult,
    store: FeatureStore | None,
    *,
    per_group: int,
    attention: Mapping[str, list[list[float]] | None] | None = None,
) -> None:
    """Assemble the report items (clip path from the annotations, else the store's record)."""
    from s2vt.report import ReportItem, write_report

    references = subset.references()
    items = []
    for video in subset.videos:
        if video.video_id not in result.per_video:
            continue  # no references: not scored
        clip = video.path
        if clip is None and store is not None:
            clip = _recorded_source(store, video.video_id)
        items.append(ReportItem(
            video_id=video.video_id,
            caption=predictions[video.video_id],
            references=references[video.video_id],
            scores=result.per_video[video.video_id],
            video_path=clip,
            checks=(subset.scorer.checks(video.video_id, predictions[video.video_id])
                    if subset.scorer is not None else {}),
            attention=(attention or {}).get(video.video_id),
        ))
    write_report(path, items, result.scores, result.settings,
                 rank_metric=rank_metric_for(result), per_group=per_group)


def _recorded_source(store: FeatureStore, video_id: str) -> Path | None:
    """The source video path the store recorded when extracting, if any."""
    try:
        info = json.loads(store.info_path(video_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    source = info.get("source") if isinstance(info, dict) else None
    return Path(source) if isinstance(source, str) and source else None
