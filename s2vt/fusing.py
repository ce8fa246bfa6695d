"""The fuse stage (``s2vt fuse``): member model dirs -> one self-contained fused model dir.

The members are checked (pickles refused, one shared vocabulary), their weights chosen and
the fused dir written by :func:`save_fused_dir`. Without given weights, alpha
(the first member's weight; the second gets 1 - alpha) is tuned on the validation split:
the split is captioned from each member's stored features once per value of a grid and
scored by the validation metric (CIDEr, without Java, as training's validation). The best
value wins, ties going to the one nearest 0.5 (the least one-sided fusion); the grid and
every score are recorded in the fused dir's ``config.json`` and model card.

A stage above :mod:`s2vt.fusion` (the building block the captioner uses), so that it can
use the captioner and the evaluation's store checks without an import cycle.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2vt.errors import S2VTError
from s2vt.fileio import atomic_write, atomic_write_json
from s2vt.fusion import (
    COMBINE_RULE,
    FUSED_FORMAT_VERSION,
    FUSED_KIND,
    MEMBERS_DIR,
    LoadedFused,
    check_weights,
    is_fused_dir,
    load_members,
    read_config,
)
from s2vt.metrics import CIDER, NO_JAVA_KEYS

logger = logging.getLogger(__name__)

DEFAULT_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
# The files of a member model dir that a fused dir keeps (training state stays behind).
_MEMBER_FILES = ("config.json", "model.safetensors", "vocab.json", "README.md")


@dataclass
class FuseResult:
    """What ``fuse`` wrote: the fused dir, the member weights and the tuning record."""

    out: Path
    weights: list[float]
    tuning: dict[str, Any] | None


def fuse(
    model_dirs: Sequence[str | Path],
    out: Path,
    *,
    alpha: float | None = None,
    weights: Sequence[float] | None = None,
    features: Sequence[str | Path] = (),
    annotations: str | Path | None = None,
    split: str = "val",
    format: str | None = None,
    grid: Sequence[float] = DEFAULT_GRID,
    metric: str = CIDER,
    beam_size: int = 5,
    max_len: int = 20,
    batch_size: int = 64,
    device: str = "cpu",
) -> FuseResult:
    """Fuse member model dirs into ``out``, tuning alpha on ``split`` unless it is given.

    Args:
        model_dirs: the member model dirs, in order (RGB first, then flow, by convention).
        out: the fused dir to write (an existing fused dir there is replaced).
        alpha: the first of two members' weight (the second gets ``1 - alpha``).
        weights: one weight per member, summing to 1 (instead of ``alpha``).
        features: to tune alpha: one feature store per member, in member order, holding
            the split's videos.
        annotations: to tune alpha: the annotation file or dataset folder.
        split: the split alpha is tuned on.
        format: annotation format name (None: detected).
        grid: the alpha values tried.
        metric: the score that picks alpha (a metric computed without Java).
        beam_size / max_len / batch_size / device: how the split is captioned.
    Returns:
        A :class:`FuseResult`.
    Raises:
        S2VTError: bad members (pickles, different vocabularies), bad weights, or what
            tuning needs missing (see :func:`tune_alpha`).
    """
    from s2vt.devices import resolve_device

    model_dirs = [Path(d) for d in model_dirs]
    count = len(model_dirs)
    if alpha is not None and weights is not None:
        raise S2VTError("give either alpha or weights, not both")
    if alpha is not None and count != 2:
        raise S2VTError(f"alpha weighs two members; {count} were given (use weights, one per "
                        "member)")
    device = str(resolve_device(device))
    loaded = load_members(model_dirs, [1.0 / count] * count, device=device)
    tuning = None
    if alpha is not None:
        chosen = check_weights([alpha, 1.0 - alpha], 2)
    elif weights is not None:
        chosen = check_weights(weights, count)
    else:
        if count != 2:
            raise S2VTError(f"tuning the weight needs exactly two members, got {count}; give "
                            "one weight per member")
        if not features or annotations is None:
            raise S2VTError("to tune alpha give --features for each member and --annotations "
                            "(or set it with --alpha)")
        tuning = tune_alpha(loaded, features, Path(annotations), split=split, format=format,
                            grid=grid, metric=metric, beam_size=beam_size, max_len=max_len,
                            batch_size=batch_size, device=device)
        chosen = check_weights([tuning["alpha"], 1.0 - tuning["alpha"]], 2)
    save_fused_dir(Path(out), model_dirs, chosen, tuning=tuning)
    return FuseResult(out=Path(out), weights=chosen, tuning=tuning)


def tune_alpha(
    loaded: LoadedFused,
    features: Sequence[str | Path],
    annotations: Path,
    *,
    split: str = "val",
    format: str | None = None,
    grid: Sequence[float] = DEFAULT_GRID,
    metric: str = CIDER,
    beam_size: int = 5,
    max_len: int = 20,
    batch_size: int = 64,
    device: str = "cpu",
) -> dict[str, Any]:
    """Score each alpha of ``grid`` on ``split`` and pick the best (see the module doc).

    Returns:
        The tuning record: ``split``, ``metric``, ``beam_size``, ``videos``, ``grid``,
        ``scores`` (one per grid value) and the chosen ``alpha``.
    Raises:
        S2VTError: a store per member missing or not fitting its member, no such split, no
            video of it with references and features, a bad grid or metric.
    """
    from s2vt.captioner import FusedCaptioner
    from s2vt.datasets import load_annotations
    from s2vt.evaluation import check_store_compatible
    from s2vt.features import FeatureStore
    from s2vt.metrics import score_captions

    values = [float(value) for value in grid]
    if not values or any(not math.isfinite(v) or not 0.0 <= v <= 1.0 for v in values):
        raise S2VTError(f"the alpha grid must hold values in [0, 1], got {list(grid)}")
    if metric not in NO_JAVA_KEYS:
        raise S2VTError(f"alpha is tuned by a metric computed without Java, one of "
                        f"{', '.join(NO_JAVA_KEYS)}; got {metric!r}")
    if len(features) != len(loaded.members):
        raise S2VTError(f"give one feature store per member: {len(loaded.members)} members, "
                        f"{len(features)} --features")
    stores = [FeatureStore.open(Path(path)) for path in features]
    for store, member in zip(stores, loaded.members, strict=True):
        check_store_compatible(store, member)
    everything = load_annotations(annotations, format, keep_missing=True)
    if split not in everything.splits():
        raise S2VTError(f"{annotations} has no split '{split}' to tune alpha on (splits: "
                        f"{', '.join(everything.splits()) or 'none'})")
    references = {vid: refs for vid, refs in everything.split(split).references().items()
                  if refs}
    ids = [vid for vid in references if all(store.has(vid) for store in stores)]
    if len(ids) < len(references):
        logger.warning("tuning alpha on %d of %d videos of split '%s' (the others lack "
                       "features in a member's store)", len(ids), len(references), split)
    if not ids:
        raise S2VTError(f"no video of split '{split}' has references and features in every "
                        "member's store")
    arrays = [tuple(store.read(vid).features for store in stores) for vid in ids]
    wanted = {vid: references[vid] for vid in ids}
    captioner = FusedCaptioner(loaded, device=device, beam_size=beam_size, max_len=max_len,
                               batch_size=batch_size)
    scores = []
    for value in values:
        loaded.model.set_weights([value, 1.0 - value])
        captions = captioner.caption_features(arrays)
        result = score_captions(dict(zip(ids, captions, strict=True)), wanted, java=False)
        scores.append(float(result.scores[metric]))
        logger.info("alpha %.2f: %s %.4f", value, metric, scores[-1])
    best = max(range(len(values)), key=lambda i: (scores[i], -abs(values[i] - 0.5)))
    return {"split": split, "metric": metric, "beam_size": beam_size, "java": False,
            "videos": len(ids), "grid": values, "scores": scores, "alpha": values[best]}


def stream_record(directory: Path) -> dict[str, Any]:
    """The stream a model dir's ``config.json`` records (none recorded: rgb)."""
    from s2vt.flow.stream import stream_of

    data = read_config(directory)
    return stream_of(data if isinstance(data, dict) else None)


def save_fused_dir(out: Path, member_dirs: Sequence[Path], weights: Sequence[float], *,
                   tuning: dict[str, Any] | None = None) -> Path:
    """Write a self-contained fused dir: a copy of each member model dir + ``config.json``.

    Only the model files of a member are copied (config, weights, vocabulary, card), never
    its training state. The dir is assembled beside ``out`` and renamed into place, so a
    killed run leaves the old dir (or none), never half a new one.

    Args:
        out: the fused dir; an existing fused dir there is replaced, any other non-empty
            folder is refused.
        member_dirs: the member model dirs (already checked by :func:`load_members`).
        weights: one weight per member, summing to 1.
        tuning: how the weights were chosen (split, metric, grid, scores), for the record.
    Returns:
        ``out``.
    """
    out = Path(out)
    weights = check_weights(weights, len(member_dirs))
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not is_fused_dir(out))):
        raise S2VTError(f"{out} exists and is not a fused model dir; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        entries = []
        for number, source in enumerate(member_dirs):
            source = Path(source)
            name = f"{number}-{stream_record(source)['name']}"
            target = staging / MEMBERS_DIR / name
            target.mkdir(parents=True)
            for file in _MEMBER_FILES:
                if (source / file).is_file():
                    shutil.copyfile(source / file, target / file)
            entries.append({"path": f"{MEMBERS_DIR}/{name}", "weight": weights[number],
                            "stream": stream_record(source), "source": source.resolve().name})
        config = {
            "format_version": FUSED_FORMAT_VERSION,
            "kind": FUSED_KIND,
            "combine": COMBINE_RULE,
            "members": entries,
            "tuning": tuning,
        }
        if len(weights) == 2:
            config["alpha"] = weights[0]
        atomic_write_json(staging / "config.json", config)
        text = render_fused_card(config, name=out.resolve().name)
        atomic_write(staging / "README.md", lambda handle: handle.write(text.encode("utf-8")))
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.replace(old / out.name)
            staging.replace(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.replace(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return out


def render_fused_card(config: dict[str, Any], *, name: str) -> str:
    """The ``README.md`` of a fused dir: its members, weights and how they were tuned."""
    lines = ["---", "library_name: s2vt", "tags:", "- video-captioning", "- s2vt",
             "- late-fusion", "---", "", f"# {name}", "",
             "A fused s2vt caption model (late fusion, as in S2VT's RGB + flow model): at "
             "every decoding step it takes the weighted sum of its members' word "
             "probabilities. A raw video is decoded once and each member's features are "
             "made the way that member was trained.", "",
             "## Members", "", "| member | stream | weight | from |", "| --- | --- | --- | --- |"]
    for entry in config["members"]:
        stream = entry.get("stream") or {}
        shown = stream.get("name", "rgb")
        if shown == "flow":
            shown = f"flow ({stream.get('method')}, gap {stream.get('gap')})"
        lines.append(f"| `{entry['path']}` | {shown} | {entry['weight']:.2f} | "
                     f"{entry.get('source', '-')} |")
    tuning = config.get("tuning")
    lines += ["", "## Weight", ""]
    if tuning:
        lines.append(f"Chosen on split `{tuning.get('split')}` by {tuning.get('metric')} "
                     f"(beam size {tuning.get('beam_size')}, no Java), over the weight of the "
                     "first member:")
        lines += ["", "| weight | score |", "| --- | --- |"]
        lines += [f"| {a:.2f} | {s:.4f} |" for a, s in zip(tuning["grid"], tuning["scores"],
                                                           strict=True)]
    else:
        lines.append("Set by hand (`s2vt fuse --alpha`).")
    lines += ["", "## How to use", "", "```bash", "s2vt caption my_clip.mp4 --model FUSED_DIR",
              "```", "", "Loading never runs code: every member is read from JSON and "
              "safetensors only, and pickles are refused.", ""]
    return "\n".join(lines)
