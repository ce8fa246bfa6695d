"""The synthetic benchmark's annotations: ``s2vt synth``'s ``annotations.json``.

The file is in the MSR-VTT layout, so :mod:`s2vt.datasets.msrvtt` reads it; what this format
adds is the ground truth: every video carries ``attributes.objects``, and the annotations
come back with an attribute scorer (:class:`s2vt.synth_attributes.AttributeScorer`) that
evaluation asks for ``attr_color`` / ``attr_shape`` / ``attr_motion``.

Detection is cheap: ``s2vt synth`` writes its ``info`` block (``"generator": "s2vt synth"``)
first, so the first few kilobytes of the file tell.
"""

from __future__ import annotations

import re
from pathlib import Path

from s2vt.datasets import msrvtt
from s2vt.datasets.core import Annotations
from s2vt.synth_attributes import AttributeScorer, primary_objects

ANNOTATION_FILE = "annotations.json"
_GENERATOR = re.compile(r'"generator"\s*:\s*"s2vt synth"')
_SNIFF_CHARS = 8192


def annotation_file(path: Path) -> Path | None:
    """The synthetic annotation file at ``path`` (a file or the folder holding it), if any."""
    path = Path(path)
    candidate = path / ANNOTATION_FILE if path.is_dir() else path
    if not candidate.is_file() or candidate.suffix.lower() != ".json":
        return None
    try:
        with open(candidate, encoding="utf-8", errors="replace") as handle:
            head = handle.read(_SNIFF_CHARS)
    except OSError:
        return None
    return candidate if _GENERATOR.search(head) else None


def detect(path: Path) -> bool:
    """True for ``s2vt synth``'s annotations.json or a folder holding it."""
    return annotation_file(path) is not None


def load(path: Path, *, video_root: Path | None = None, keep_missing: bool = False
         ) -> Annotations:
    """Load a synthetic set: the MSR-VTT-layout annotations plus their attribute scorer.

    Args:
        path: annotations.json or the folder ``s2vt synth`` wrote.
        video_root: folder with the clips (default: the ``file`` paths in the JSON).
        keep_missing: keep clips whose file is missing (``path=None``) instead of skipping.
    Returns:
        Annotations whose ``scorer`` gives attribute accuracy (None when no video carries
        ground truth, e.g. an MSR-VTT file loaded under this name).
    """
    path = Path(path)
    source = annotation_file(path) if path.is_dir() else None
    annotations = msrvtt.load(source or path, video_root=video_root, keep_missing=keep_missing)
    truth = primary_objects(annotations.videos)
    annotations.scorer = AttributeScorer(truth) if truth else None
    return annotations
