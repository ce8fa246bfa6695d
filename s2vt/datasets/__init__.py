"""Annotation loaders for the benchmarks, all returning one canonical form.

``load_annotations(path)`` detects the format from the file or folder (or takes
``format=`` one of :data:`DATASETS`) and returns :class:`Annotations`: videos (id, clip
path, split ``train``/``val``/``test``[/``test_novel``]) and captions (id, text).

Clip files are optional: with only the annotation file (as for ``s2vt score``), videos load
with ``path=None``; when clips are present, the ones that are missing are skipped and
listed in ``Annotations.missing``. See :mod:`s2vt.datasets.core` for how ids and ``file``
fields are kept from escaping the dataset folder.

A format whose files carry ground truth beyond captions attaches its own extra scores to
the annotations (``Annotations.scorer``, an :class:`ExtraScorer`): the synthetic set's
attribute accuracy comes that way, so evaluation never needs to know the benchmark.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from s2vt.datasets import msrvtt, msvd, owncaptions, synthetic, vatex
from s2vt.datasets.core import (
    Annotations,
    Caption,
    ExtraScorer,
    Video,
    normalize_caption,
    normalize_split,
)
from s2vt.errors import S2VTError

__all__ = [
    "DATASETS",
    "Annotations",
    "Caption",
    "DatasetFormat",
    "ExtraScorer",
    "Video",
    "dataset_names",
    "detect_format",
    "load_annotations",
    "normalize_caption",
    "normalize_split",
]


@dataclass(frozen=True)
class DatasetFormat:
    """One annotation format: how to recognise it and how to load it.

    Attributes:
        name: the name users pass as ``--format``.
        description: the files it reads (shown in error messages).
        detect: path -> True if this format's files are there.
        load: ``load(path, *, video_root, keep_missing) -> Annotations``.
    """

    name: str
    description: str
    detect: Callable[[Path], bool]
    load: Callable[..., Annotations]


def _registry() -> dict[str, DatasetFormat]:
    formats = [
        DatasetFormat("msrvtt", "MSR-VTT JSON (train_val_videodatainfo.json, "
                      "test_videodatainfo.json)", msrvtt.detect, msrvtt.load),
        DatasetFormat("msvd", "MSVD AllVideoDescriptions.txt or 'MSR Video Description "
                      "Corpus.csv' (+ youtube_mapping.txt)", msvd.detect, msvd.load),
        DatasetFormat("vatex", "VATEX JSON lists (vatex_training_v1.0.json, ...)",
                      vatex.detect, vatex.load),
        DatasetFormat("captions", "your own captions.csv (video,caption[,split]) or .jsonl",
                      owncaptions.detect, owncaptions.load),
        # s2vt synth writes the MSR-VTT layout plus ground truth, which this format scores.
        DatasetFormat("synthetic", "s2vt synth's annotations.json (MSR-VTT layout with "
                      "ground-truth attributes)", synthetic.detect, synthetic.load),
    ]
    return {fmt.name: fmt for fmt in formats}


DATASETS: dict[str, DatasetFormat] = _registry()

# Order matters: MSR-VTT's test is the loosest (any JSON object), so it goes last, after
# the synthetic set (the same layout, recognised by its generator); MSVD's corpus CSV is
# checked before a plain captions CSV.
_DETECT_ORDER = ("msvd", "captions", "vatex", "synthetic", "msrvtt")


def dataset_names() -> list[str]:
    """The format names ``load_annotations`` accepts."""
    return sorted(DATASETS)


def detect_format(path: Path) -> str:
    """Name of the format of an annotation file or dataset folder.

    Raises:
        S2VTError: the path does not exist or matches no known format.
    """
    path = Path(path)
    if not path.exists():
        raise S2VTError(f"annotation file or folder not found: {path}")
    for name in _DETECT_ORDER:
        if name in DATASETS and DATASETS[name].detect(path):
            return name
    known = "; ".join(f"{fmt.name}: {fmt.description}" for fmt in DATASETS.values())
    raise S2VTError(f"cannot tell the annotation format of {path} (known formats: {known}); "
                    "name it with --format")


def load_annotations(
    path: Path,
    format: str | None = None,
    *,
    video_root: Path | None = None,
    keep_missing: bool = False,
) -> Annotations:
    """Load a benchmark's annotations into the canonical form.

    Args:
        path: an annotation file or the dataset folder.
        format: one of :func:`dataset_names` (``synthetic`` is MSR-VTT's layout); None
            detects it from the files.
        video_root: folder holding the clips, when not in the dataset's usual place.
        keep_missing: keep videos whose clip file is missing, with ``path=None`` (for
            scoring, where only references matter); they are listed in ``missing`` either way.

    Returns:
        Annotations with normalised split names and captions.

    Raises:
        S2VTError: missing path, unknown format name, or a malformed file.
    """
    path = Path(path)
    if format is not None and format.lower() not in DATASETS:
        raise S2VTError(f"unknown dataset format '{format}' (known: {', '.join(dataset_names())})")
    if not path.exists():
        raise S2VTError(f"annotation file or folder not found: {path}")
    name = format.lower() if format is not None else detect_format(path)
    return DATASETS[name].load(
        path, video_root=Path(video_root) if video_root is not None else None,
        keep_missing=keep_missing,
    )
