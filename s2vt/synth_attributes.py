"""Attribute accuracy on the synthetic benchmark: does a caption name the right colour, shape
and motion of the clip's primary object?

Caption metrics reward the words a model gets right on average; on the synthetic benchmark
the ground truth is known, so each caption can also be checked word by word. The attribute
a caption names is its *first* mention of a word of that kind (:data:`s2vt.synth_vocabulary.
ATTRIBUTE_WORDS`, the same words the generator writes captions with), and captions always
name the primary object first.

The synthetic layout's loader attaches an :class:`AttributeScorer` to the annotations it
returns, so evaluation asks the annotations for these scores without knowing where they come
from. This module reads plain ground-truth dicts and never imports the dataset loaders.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from s2vt.errors import S2VTError
from s2vt.synth_vocabulary import ATTRIBUTE_WORDS

ATTRIBUTE_KINDS: tuple[str, ...] = ("color", "shape", "motion")
ATTRIBUTE_PREFIX = "attr_"
# Score names in scores.json and the demo's table: attr_color, attr_shape, attr_motion.
ATTRIBUTE_KEYS: tuple[str, ...] = tuple(ATTRIBUTE_PREFIX + kind for kind in ATTRIBUTE_KINDS)


class VideoWithAttributes(Protocol):
    """What attribute scoring reads of a video (:class:`s2vt.datasets.Video` has it)."""

    video_id: str
    attributes: dict | None


def _phrase_table(kind: str) -> list[tuple[tuple[str, ...], str]]:
    """(token tuple, value) for every word of ``kind``, longest phrases first."""
    table = [(tuple(word.split()), value)
             for value, words in ATTRIBUTE_WORDS[kind].items() for word in words]
    return sorted(table, key=lambda item: -len(item[0]))


def first_mention(text: str, kind: str) -> str | None:
    """The value of ``kind`` ('color', 'shape', 'motion', 'size') that ``text`` names first.

    Tokens are lowercase letter runs, and words match whole tokens, so "bigger" is not "big".
    """
    tokens = re.findall(r"[a-z]+", text.lower())
    table = _phrase_table(kind)
    for start in range(len(tokens)):
        for phrase, value in table:
            if tuple(tokens[start:start + len(phrase)]) == phrase:
                return value
    return None


def primary_objects(videos: Iterable[VideoWithAttributes]) -> dict[str, dict[str, Any]]:
    """video id -> attributes of its primary object, for the videos with synthetic truth."""
    truth: dict[str, dict[str, Any]] = {}
    for video in videos:
        objects = (video.attributes or {}).get("objects")
        if objects:
            truth[video.video_id] = dict(objects[0])
    return truth


class AttributeScorer:
    """Attribute accuracy and per-video attribute checks against known ground truth.

    Args:
        truth: video id -> the primary object's attributes (``color``, ``shape``,
            ``motion``...), as :func:`primary_objects` returns.
    """

    def __init__(self, truth: Mapping[str, Mapping[str, Any]]) -> None:
        self.truth = {vid: dict(attributes) for vid, attributes in truth.items()}

    def scores(self, predictions: Mapping[str, str]) -> dict[str, float]:
        """``{"attr_color", "attr_shape", "attr_motion"}`` over the predicted videos that have
        ground truth (empty when none has)."""
        known = [vid for vid in predictions if vid in self.truth]
        if not known:
            return {}
        accuracy = _accuracy({vid: predictions[vid] for vid in known}, known, self.truth)
        return {ATTRIBUTE_PREFIX + kind: value for kind, value in accuracy.items()}

    def checks(self, video_id: str, caption: str) -> dict[str, tuple[bool, str]]:
        """kind -> (right?, label) for one caption, e.g. ``(False, "said up, is left")``;
        empty for a video without ground truth."""
        truth = self.truth.get(video_id)
        if truth is None:
            return {}
        checks: dict[str, tuple[bool, str]] = {}
        for kind in ATTRIBUTE_KINDS:
            said = first_mention(caption, kind)
            if said == truth.get(kind):
                checks[kind] = (True, str(truth.get(kind)))
            else:
                checks[kind] = (False, f"said {said or 'nothing'}, is {truth.get(kind)}")
        return checks


def _accuracy(predictions: Mapping[str, str], ids: Iterable[str],
              truth: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    correct = dict.fromkeys(ATTRIBUTE_KINDS, 0)
    total = 0
    for vid in ids:
        total += 1
        text = predictions.get(vid, "")
        for kind in ATTRIBUTE_KINDS:
            if first_mention(text, kind) == truth[vid].get(kind):
                correct[kind] += 1
    return {kind: correct[kind] / total for kind in ATTRIBUTE_KINDS}


def attribute_accuracy(predictions: Mapping[str, str],
                       videos: Iterable[VideoWithAttributes]) -> dict[str, float]:
    """How often a caption's first colour / shape / motion word is the primary object's.

    Args:
        predictions: video_id -> predicted caption (a missing prediction counts as wrong).
        videos: videos with synthetic ground truth (``attributes["objects"][0]`` is the
            primary object); videos without it are ignored.

    Returns:
        ``{"color": acc, "shape": acc, "motion": acc}``, fractions in [0, 1].

    Raises:
        S2VTError: no video has synthetic ground truth.
    """
    truth = primary_objects(videos)
    if not truth:
        raise S2VTError("no video has synthetic ground-truth attributes "
                        "(attribute accuracy needs an 's2vt synth' annotation file)")
    return _accuracy(predictions, truth, truth)
