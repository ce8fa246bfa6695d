"""The model card: ``README.md`` of a model dir, as the Hugging Face Hub shows it.

Rendered from what the model dir itself records (``config.json``: architecture, encoder,
sampling, training info and validation scores; the safetensors header: parameter count),
plus what only the trainer knows (training data and split sizes). Test scores are added by
``s2vt evaluate`` (:func:`record_scores`) between markers, one section per split, so a new
evaluation replaces its own section and keeps the rest of the card. Writing a new card (a
new epoch's weights) drops old scores, since they belonged to other weights.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from s2vt.errors import S2VTError
from s2vt.fileio import atomic_write

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
# One-line descriptions of the registered caption models, for readers of the card.
MODEL_DESCRIPTIONS: dict[str, str] = {
    "s2vt": "S2VT (Venugopalan et al., ICCV 2015): a stacked two-layer LSTM reads the frame "
            "features in order, then writes the caption word by word",
    "meanpool": "mean-pool baseline: the average of the frame features conditions an LSTM "
                "that writes the caption (frame order is not seen)",
}
_SCORES_BEGIN = "<!-- s2vt:scores {split} -->"
_SCORES_END = "<!-- /s2vt:scores -->"
_SCORES_SECTION = re.compile(r"<!-- s2vt:scores (?P<split>[\w.-]+) -->\n.*?<!-- /s2vt:scores -->\n",
                             re.DOTALL)
_TEST_PLACEHOLDER = "<!-- s2vt:test-placeholder -->"


def _parameter_count(weights: Path) -> int | None:
    """Number of weights from the safetensors header (JSON; nothing else is parsed)."""
    try:
        with open(weights, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            if not 0 < size <= 100_000_000:
                return None
            header = json.loads(handle.read(size))
    except (OSError, ValueError):
        return None
    total = 0
    for name, entry in header.items():
        if name == "__metadata__" or not isinstance(entry, dict):
            continue
        count = 1
        for dim in entry.get("shape", []):
            count *= int(dim)
        if not name.startswith("feature_"):  # standardisation buffers, not learnt
            total += count
    return total


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "-"
    return str(value)


def _table(rows: list[tuple[str, Any]]) -> list[str]:
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {key} | {_fmt(value)} |" for key, value in rows]
    return lines


def _scores_table(scores: dict[str, Any]) -> list[str]:
    numeric = {k: v for k, v in scores.items() if isinstance(v, int | float)
               and not isinstance(v, bool)}
    if not numeric:
        return ["(none)"]
    return ["| metric | value |", "| --- | --- |"] + [
        f"| {name} | {float(value):.4f} |" for name, value in numeric.items()]


def scores_section(split: str, scores: dict[str, Any], settings: dict[str, Any] | None = None
                   ) -> str:
    """The marked card section with one split's scores (what :func:`record_scores` writes)."""
    lines = [_SCORES_BEGIN.format(split=split), f"### Scores on split `{split}`", ""]
    lines += _scores_table(scores)
    if settings:
        shown = ", ".join(f"{k} {v}" for k, v in settings.items() if v is not None)
        lines += ["", f"Measured by `s2vt evaluate` ({shown})."]
    lines += ["", _SCORES_END, ""]
    return "\n".join(lines)


def render_model_card(config: dict[str, Any], *, name: str, data: dict[str, Any] | None = None,
                      parameters: int | None = None, repo_id: str | None = None) -> str:
    """The card text of a model dir.

    Args:
        config: the model dir's ``config.json`` object.
        name: the model's name (the folder name).
        data: training data info: ``annotations`` (file or folder name), ``format``, and
            ``splits``: split -> ``{"videos": n, "captions": m}``.
        parameters: number of learnt weights, if known.
        repo_id: ``org/name`` on the Hub, for the usage lines (default: a placeholder).
    """
    model = config.get("model", {})
    encoder = config.get("encoder", {})
    sampling = config.get("sampling", {})
    features = config.get("features", {})
    info = config.get("info", {})
    data = data or {}
    hub = f"hf:{repo_id}" if repo_id else "hf:ORG/NAME"
    kind = model.get("name", "?")
    lines = [
        "---",
        "library_name: s2vt",
        "tags:",
        "- video-captioning",
        "- video-to-text",
        "- s2vt",
        "---",
        "",
        f"# {name}",
        "",
        f"A video captioning model made with s2vt: {MODEL_DESCRIPTIONS.get(kind, kind)}. "
        "It takes a raw video file and returns one English sentence.",
        "",
        "## Architecture",
        "",
    ]
    lines += _table([
        ("model", kind), ("embedding size", model.get("embed_size")),
        ("hidden size", model.get("hidden_size")), ("dropout", model.get("dropout")),
        ("vocabulary", f"{model.get('vocab_size')} words (with 4 specials)"),
        ("frame feature size", model.get("feature_dim")),
        ("most frames read", model.get("max_frames")),
        ("learnt weights", f"{parameters:,}" if parameters is not None else None),
    ])
    lines += ["", "## Encoder and sampling", "",
              "Frames are sampled from the video and encoded by a frame encoder; the model was "
              "trained on features made exactly this way, and `s2vt caption` repeats it.", ""]
    lines += _table([
        ("encoder", encoder.get("name")), ("weights", encoder.get("weights") or "default"),
        ("pooling", encoder.get("pool")),
        ("image size", encoder.get("image_size") or features.get("image_size")),
        ("precision", encoder.get("precision")),
        ("sampling", sampling.get("mode")), ("frames", sampling.get("num_frames")),
        *[(f"sampling {key}", value) for key, value in sampling.items()
          if key not in ("mode", "num_frames")],
        ("stored features", features.get("dtype")),
    ])
    lines += ["", "## Training data", ""]
    splits = data.get("splits") or {}
    if data.get("annotations"):
        fmt = f" ({data['format']} format)" if data.get("format") else ""
        lines.append(f"Annotations: `{data['annotations']}`{fmt}.")
        lines.append("")
    if splits:
        lines += ["| split | videos | captions |", "| --- | --- | --- |"]
        lines += [f"| {split} | {sizes.get('videos', '-')} | {sizes.get('captions', '-')} |"
                  for split, sizes in splits.items()]
    else:
        lines.append("Not recorded.")
    trained = [("epoch kept", info.get("epoch")), ("training steps by then", info.get("step"))]
    if any(value is not None for _, value in trained):
        lines += [""] + _table(trained)
    lines += ["", "## Scores", "", "Validation scores of the epoch kept (measured during "
              "training, without Java, so no METEOR):", ""]
    val = info.get("val") or {}
    lines += _scores_table(val) if val else ["(no validation split)"]
    if val and info.get("val_metric"):
        lines += ["", f"The kept epoch is the one with the best validation {info['val_metric']}."]
    lines += ["", _TEST_PLACEHOLDER,
              "Test scores: not measured yet; `s2vt evaluate --model DIR ...` adds them here.",
              ""]
    lines += [
        "## How to use",
        "",
        "```bash",
        "pip install s2vt",
        f"s2vt caption my_clip.mp4 --model {hub}",
        f"s2vt serve --model {hub}            # a local web page at http://127.0.0.1:8000",
        "```",
        "",
        "```python",
        "from s2vt.captioner import Captioner",
        "",
        f"captioner = Captioner.from_pretrained(\"{repo_id or 'ORG/NAME'}\")",
        "captioner(\"my_clip.mp4\")",
        "```",
        "",
        "Loading never runs code: s2vt reads only `config.json`, `vocab.json` (JSON) and "
        "`model.safetensors`, and refuses pickles.",
        "",
        "## Limitations",
        "",
        "The model knows only the words and scenes of its training data; captions of videos "
        "unlike them are unreliable. Automatic metrics compare wording with references and "
        "miss many errors a person would see.",
        "",
    ]
    return "\n".join(lines)


def card_data(source: str | Path | None, format: str | None,
              splits: dict[str, tuple[int, int]]) -> dict[str, Any]:
    """Training data info for :func:`render_model_card`.

    Args:
        source: the annotation file or folder (only its name goes into the card, so a pushed
            card does not show the trainer's folders).
        format: the annotation format name (None: detected from ``source``).
        splits: split -> (videos, captions) used; splits with no videos are left out.
    """
    if format is None and source:
        from s2vt.datasets import detect_format

        try:
            format = detect_format(Path(source))
        except S2VTError:
            format = None
    return {"annotations": Path(source).name if source else None, "format": format,
            "splits": {name: {"videos": videos, "captions": captions}
                       for name, (videos, captions) in splits.items() if videos}}


def _training_data(annotations: Any, train_split: str, val_split: str | None) -> dict[str, Any]:
    """Training data info for :func:`render_model_card` from loaded ``Annotations``."""
    splits: dict[str, tuple[int, int]] = {}
    for split in (train_split, val_split):
        if split and split in annotations.splits():
            part = annotations.split(split)
            splits[split] = (len(part.videos), len(part.captions))
    return card_data(annotations.source or None, None, splits)


def write_model_card(model_dir: Path, *, data: dict[str, Any] | None = None,
                     annotations: Any = None, train_split: str = "train",
                     val_split: str | None = "val", repo_id: str | None = None) -> Path:
    """Write ``README.md`` into a model dir from its ``config.json`` (atomically).

    Args:
        model_dir: a model dir (``config.json`` must be there).
        data: training data info (see :func:`render_model_card`), or
        annotations: the loaded ``Annotations`` to take split sizes from.
        train_split / val_split: the splits training used.
        repo_id: the Hub repo, for the usage lines.

    Returns:
        The card's path.
    """
    from s2vt.checkpoint import WEIGHTS_FILE, read_model_dir_config

    model_dir = Path(model_dir)
    config = read_model_dir_config(model_dir)
    if data is None and annotations is not None:
        data = _training_data(annotations, train_split, val_split)
    text = render_model_card(config, name=model_dir.resolve().name, data=data,
                             parameters=_parameter_count(model_dir / WEIGHTS_FILE),
                             repo_id=repo_id)
    path = model_dir / CARD_FILE
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def _in_hub_cache(path: Path) -> bool:
    parts = Path(os.path.abspath(path)).parts
    return "snapshots" in parts and any(part.startswith("models--") for part in parts)


def record_scores(model_dir: Path, split: str, scores: dict[str, Any],
                  settings: dict[str, Any] | None = None) -> Path | None:
    """Put one split's scores into the model dir's card (written first if missing).

    A model in the Hub cache or a folder that cannot be written is left alone.

    Returns:
        The card's path, or None when it was left alone.
    """
    model_dir = Path(model_dir)
    path = model_dir / CARD_FILE
    if _in_hub_cache(model_dir) or not os.access(model_dir, os.W_OK):
        log.info("%s: not recording scores in its model card (read-only or Hub cache)",
                 model_dir)
        return None
    try:
        if not path.is_file():
            write_model_card(model_dir)
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, S2VTError) as error:
        log.warning("%s: model card not updated (%s)", model_dir, error)
        return None
    section = scores_section(split, scores, settings)
    sections = {m.group("split"): m.group(0) for m in _SCORES_SECTION.finditer(text)}
    if split in sections:
        text = text.replace(sections[split], section)
    elif sections:  # after the other splits' sections
        last = list(_SCORES_SECTION.finditer(text))[-1]
        text = text[:last.end()] + "\n" + section + text[last.end():]
    elif _TEST_PLACEHOLDER in text:
        start = text.index(_TEST_PLACEHOLDER)
        end = text.index("\n", text.index("\n", start) + 1) + 1  # marker line + its text
        text = text[:start] + section + text[end:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))
    return path
