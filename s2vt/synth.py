"""Synthetic captioned-video benchmark: coloured shapes that move, with reference captions.

``synthesize(out, num_videos, seed)`` writes real encoded clips to ``out/videos/`` and
``out/annotations.json`` in the MSR-VTT layout (``videos`` with ``video_id``, ``split``,
``file`` and the ground-truth ``attributes``; ``sentences`` with ``video_id``, ``caption``,
``sen_id``), which :func:`s2vt.datasets.load_annotations` reads back.

Design choices that make the benchmark learnable from per-frame CNN features:

- Objects are large (big = 40 %, small = 24 % of the frame height), saturated colours on
  achromatic backgrounds, and move inside the central square of the frame, because
  encoders centre-crop to a square.
- Every motion covers the whole clip: left/right/up/down traverse the frame, bounce makes
  two up-down hops, grow/shrink change the size by more than 3x, spin turns 1.3 times (only
  shapes whose rotation shows: no circles), still does not move.
- In two-object clips the primary object is big and drawn on top and the second is small,
  so "the first object in the caption" is visible; captions always name the primary first.
- Splits: ``train``, ``val``, ``test`` (new clips of colour-shape-motion combinations of
  train's primary objects) and ``test_novel`` (primary combinations held out of every
  other split, to measure composition).

Everything is a pure function of the seed: clip specs are planned up front, each clip is
rendered from its spec alone, and encoders run single-threaded, so the same seed gives the
same annotations and the same decoded frames whatever the number of worker processes.
"""

from __future__ import annotations

import json
import logging
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.errors import S2VTError
from s2vt.fileio import atomic_write_json
from s2vt.synth_vocabulary import (  # noqa: F401  (re-exported: the benchmark's tables)
    ATTRIBUTE_WORDS,
    BACKGROUND_WORDS,
    BACKGROUNDS,
    COLORS,
    CONTAINERS,
    DURATION_RANGE,
    FRAME_RATES,
    MOTION_PHRASES,
    MOTIONS,
    RESOLUTIONS,
    SHAPES,
    SIZE_CHANGING,
    SIZES,
    SPIN_SHAPES,
)
from s2vt.videowriter import write_video

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

FORMAT_VERSION = 1

@dataclass
class ObjectSpec:
    """One object: its attributes and where its motion happens.

    Positions are fractions of the central square of the frame (0..1).
    """

    shape: str
    color: str
    size: str | None  # None for grow/shrink
    motion: str
    anchor: float = 0.5  # the coordinate that stays fixed (y for left/right, x otherwise)
    cross: float = 0.5  # y of objects that stay in place (spin, still)
    spin_direction: int = 1

    def attributes(self) -> dict[str, Any]:
        return {"shape": self.shape, "color": self.color, "size": self.size,
                "motion": self.motion}


@dataclass
class ClipSpec:
    """Everything needed to render and encode one clip, and its annotations."""

    video_id: str
    split: str
    file: str
    codec: str
    width: int
    height: int
    fps: int
    num_frames: int
    background: str
    objects: list[ObjectSpec]
    captions: list[str] = field(default_factory=list)
    texture_cell: int = 16


# ---------------------------------------------------------------------------- planning

def all_combinations() -> list[tuple[str, str, str]]:
    """Every valid (colour, shape, motion) of a primary object (no spinning circles)."""
    return [(color, shape, motion) for color in COLORS for shape in SHAPES for motion in MOTIONS
            if not (motion == "spin" and shape not in SPIN_SHAPES)]


def heldout_combinations(seed: int, fraction: float = 0.1) -> list[tuple[str, str, str]]:
    """The colour-shape-motion combinations reserved for ``test_novel`` (seeded)."""
    import numpy as np

    combos = all_combinations()
    rng = np.random.default_rng([seed, 7])
    count = max(1, round(fraction * len(combos)))
    picked = rng.choice(len(combos), size=count, replace=False)
    return sorted(combos[i] for i in picked)


def _split_sizes(num_videos: int) -> dict[str, int]:
    """Clip counts per split: 65 % train, 10 % val, 15 % test, 10 % test_novel."""
    if num_videos < 4:
        return {"train": num_videos, "val": 0, "test": 0, "test_novel": 0}
    val = max(1, round(0.10 * num_videos))
    test = max(1, round(0.15 * num_videos))
    novel = max(1, round(0.10 * num_videos))
    return {"train": num_videos - val - test - novel, "val": val, "test": test,
            "test_novel": novel}


def _pick(rng: np.random.Generator, options: tuple | list) -> Any:
    return options[int(rng.integers(len(options)))]


def _make_object(rng: np.random.Generator, combo: tuple[str, str, str], size: str | None,
                 region: tuple[float, float] = (0.35, 0.65)) -> ObjectSpec:
    """An object of ``combo``; its fixed coordinates are drawn from ``region``."""
    color, shape, motion = combo
    if motion in SIZE_CHANGING:
        size = None
    return ObjectSpec(
        shape=shape, color=color, size=size, motion=motion,
        anchor=float(rng.uniform(*region)),
        cross=float(rng.uniform(*region)) if region != (0.35, 0.65) else 0.5,
        spin_direction=int(_pick(rng, (-1, 1))),
    )


def plan_clips(num_videos: int, seed: int) -> tuple[list[ClipSpec], list[tuple[str, str, str]]]:
    """Decide every clip (attributes, format, captions) from the seed, without rendering.

    Returns:
        The clip specs in id order, and the held-out combinations of ``test_novel``.
    """
    import numpy as np

    if num_videos < 1:
        raise S2VTError(f"--num-videos must be at least 1 (got {num_videos})")
    heldout = heldout_combinations(seed)
    heldout_set = set(heldout)
    seen = [combo for combo in all_combinations() if combo not in heldout_set]
    sizes = _split_sizes(num_videos)
    order_rng = np.random.default_rng([seed, 1])
    splits = [name for name, count in sizes.items() for _ in range(count)]
    # Train is planned first so that val/test can reuse combinations train really has.
    positions = order_rng.permutation(num_videos)
    split_of = {int(position): splits[i] for i, position in enumerate(positions)}
    split_rank = {name: rank for rank, name in enumerate(sizes)}
    plan_order = sorted(range(num_videos), key=lambda i: (split_rank[split_of[i]], i))
    train_combos: list[tuple[str, str, str]] = []
    digits = max(4, len(str(num_videos - 1)))
    specs: dict[int, ClipSpec] = {}
    weights = np.array([share for _, _, share in CONTAINERS])
    for index in plan_order:
        split = split_of[index]
        rng = np.random.default_rng([seed, 2, index])
        if split == "test_novel":
            primary_combo = _pick(rng, heldout)
        elif split == "train" or not train_combos:
            primary_combo = _pick(rng, seen)
        else:
            primary_combo = _pick(rng, train_combos)
        two_objects = rng.random() < 0.2 and primary_combo[2] not in SIZE_CHANGING
        if split == "train":
            train_combos.append(primary_combo)
        # Two objects keep to opposite sides so that neither hides the other for long.
        primary = _make_object(rng, primary_combo,
                               "big" if two_objects else _pick(rng, tuple(SIZES)),
                               (0.0, 0.2) if two_objects else (0.35, 0.65))
        objects = [primary]
        if two_objects:
            other = [combo for combo in seen if combo[0] != primary.color
                     and combo[2] not in SIZE_CHANGING]
            objects.append(_make_object(rng, _pick(rng, other), "small", (0.8, 1.0)))
        suffix, codec, _ = CONTAINERS[int(rng.choice(len(CONTAINERS), p=weights / weights.sum()))]
        width, height = _pick(rng, RESOLUTIONS)
        fps = int(_pick(rng, FRAME_RATES))
        duration = float(rng.uniform(*DURATION_RANGE))
        video_id = f"synth{index:0{digits}d}"
        spec = ClipSpec(
            video_id=video_id, split=split, file=f"videos/{video_id}{suffix}", codec=codec,
            width=width, height=height, fps=fps, num_frames=max(8, round(duration * fps)),
            background=_pick(rng, tuple(BACKGROUNDS)), objects=objects,
            texture_cell=max(8, height // int(rng.integers(5, 9))),
        )
        spec.captions = make_captions(spec, rng)
        specs[index] = spec
    return [specs[i] for i in range(num_videos)], heldout


# ---------------------------------------------------------------------------- captions

def _pick_common(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    """Pick a synonym, the first (most common) one half of the time, as annotators do."""
    if len(options) == 1 or rng.random() < 0.5:
        return options[0]
    return options[1 + int(rng.integers(len(options) - 1))]


def _with_article(article: str, words: list[str]) -> str:
    if article == "a" and words[0][0] in "aeiou":
        article = "an"
    return " ".join([article, *words])


def _object_clause(obj: ObjectSpec, rng: np.random.Generator | None, *, with_size: bool,
                   progressive: bool, article: str = "a") -> str:
    """"a [size] colour shape motion-phrase"; ``rng=None`` gives the canonical wording."""

    def choose(options: tuple[str, ...]) -> str:
        return options[0] if rng is None else _pick_common(rng, options)

    words = []
    if with_size and obj.size is not None:
        words.append(choose(ATTRIBUTE_WORDS["size"][obj.size]))
    words.append(choose(ATTRIBUTE_WORDS["color"][obj.color]))
    words.append(choose(ATTRIBUTE_WORDS["shape"][obj.shape]))
    phrases = MOTION_PHRASES[obj.motion]
    words.append("is " + choose(phrases["ing"]) if progressive else choose(phrases["verb"]))
    return _with_article(article, words)


def canonical_caption(objects: list[ObjectSpec]) -> str:
    """The most common reference: "a red circle moves to the left [and a blue ...]"."""
    clauses = [_object_clause(obj, None, with_size=False, progressive=False) for obj in objects]
    return " and ".join(clauses)


def make_captions(spec: ClipSpec, rng: np.random.Generator) -> list[str]:
    """5-10 distinct references: several templates and synonyms, primary object first.

    Every reference names the primary object's colour, shape and motion with words from
    :data:`ATTRIBUTE_WORDS`, so the attribute a caption names is well defined.
    """
    target = int(rng.integers(5, 11))
    # Like the majority phrasing of MSVD's annotators: one canonical wording per clip.
    captions: list[str] = [canonical_caption(spec.objects)]
    primary = spec.objects[0]
    for _ in range(200):
        progressive = bool(rng.random() < 0.4)
        article = "the" if rng.random() < 0.25 else "a"
        text = _object_clause(primary, rng, with_size=bool(rng.random() < 0.35),
                              progressive=progressive, article=article)
        if len(spec.objects) > 1:
            joiner = "and" if rng.random() < 0.7 else "while"
            text += f" {joiner} " + _object_clause(spec.objects[1], rng,
                                                   with_size=bool(rng.random() < 0.5),
                                                   progressive=progressive)
        elif rng.random() < 0.2:
            text += f" on a {_pick_common(rng, BACKGROUND_WORDS[spec.background])} background"
        if text not in captions:
            captions.append(text)
        if len(captions) == target:
            break
    return captions


# ---------------------------------------------------------------------------- rendering

def _object_state(obj: ObjectSpec, t: float, square: float) -> tuple[float, float, float, float]:
    """Centre (x, y) in the square, diameter and angle (radians) of ``obj`` at time t in [0, 1].

    Args:
        obj: the object.
        t: normalised time (0 = first frame, 1 = last).
        square: side of the central square in pixels (= frame height).
    """
    diameter = SIZES[obj.size] * square if obj.size else 0.0
    if obj.motion == "grow":
        diameter = square * (0.15 + 0.37 * t)
    elif obj.motion == "shrink":
        diameter = square * (0.52 - 0.37 * t)
    radius = 0.55 * diameter  # rectangles and stars reach a bit beyond d/2
    low, high = radius + 0.03 * square, square - radius - 0.03 * square
    anchor = low + obj.anchor * (high - low) if high > low else square / 2
    middle = square / 2
    x, y, angle = middle, middle, 0.0
    if obj.motion in ("left", "right"):
        # Frames are 4:3, so there is room beside the square: a horizontal move starts and
        # ends half outside the centre crop, which makes its direction plain to see.
        fraction = 1 - t if obj.motion == "left" else t
        x, y = 0.1 * square + fraction * 0.8 * square, anchor
    elif obj.motion in ("up", "down"):
        fraction = 1 - t if obj.motion == "up" else t
        x, y = anchor, low + fraction * (high - low)
    elif obj.motion == "bounce":
        x, y = anchor, high - abs(math.sin(2 * math.pi * t)) * (high - low)
    elif obj.motion == "spin":
        x, y = anchor, low + obj.cross * (high - low)
        angle = obj.spin_direction * 2 * math.pi * 1.3 * t
    elif obj.motion == "still":
        x, y = anchor, low + obj.cross * (high - low)
    return x, y, diameter, angle


def _polygon(shape: str, x: float, y: float, diameter: float, angle: float,
             ) -> list[tuple[float, float]]:
    """Vertices of a square / triangle / star / rectangle centred at (x, y)."""
    radius = diameter / 2
    if shape == "square":
        base = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        points = [(px * radius * 0.85, py * radius * 0.85) for px, py in base]
    elif shape == "rectangle":
        points = [(px * radius * 1.15, py * radius * 0.6)
                  for px, py in [(-1, -1), (1, -1), (1, 1), (-1, 1)]]
    elif shape == "triangle":
        points = [(radius * 1.1 * math.cos(a), radius * 1.1 * math.sin(a) + radius * 0.15)
                  for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape == "star":
        points = []
        for k in range(10):
            r = radius * (1.1 if k % 2 == 0 else 0.45)
            a = -math.pi / 2 + k * math.pi / 5
            points.append((r * math.cos(a), r * math.sin(a)))
    else:
        raise ValueError(f"not a polygon shape: {shape}")
    cos, sin = math.cos(angle), math.sin(angle)
    return [(x + px * cos - py * sin, y + px * sin + py * cos) for px, py in points]


def _background(spec: ClipSpec) -> np.ndarray:
    """(H, W, 3) uint8 background; ``checkered`` is a two-tone grey checkerboard."""
    import numpy as np

    image = np.empty((spec.height, spec.width, 3), dtype=np.uint8)
    image[:] = BACKGROUNDS[spec.background]
    if spec.background == "checkered":
        cell = spec.texture_cell
        rows = (np.arange(spec.height) // cell)[:, None]
        cols = (np.arange(spec.width) // cell)[None, :]
        image[((rows + cols) % 2).astype(bool)] = (165, 165, 165)
    return image


def render_frames(spec: ClipSpec) -> Any:
    """Yield the clip's frames as PIL images (RGB, ``spec.width`` x ``spec.height``)."""
    from PIL import Image, ImageDraw

    background = Image.fromarray(_background(spec))
    square = float(spec.height)
    offset = (spec.width - spec.height) / 2  # objects live in the central square
    last = max(1, spec.num_frames - 1)
    # Secondary objects first so the primary (big) one is always on top.
    draw_order = list(reversed(spec.objects))
    for index in range(spec.num_frames):
        t = index / last
        frame = background.copy()
        draw = ImageDraw.Draw(frame)
        for obj in draw_order:
            x, y, diameter, angle = _object_state(obj, t, square)
            x += offset
            fill = COLORS[obj.color]
            if obj.shape == "circle":
                r = diameter / 2
                draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
            else:
                draw.polygon(_polygon(obj.shape, x, y, diameter, angle), fill=fill)
        yield frame


# Encoder settings per codec; codecs not named here get a bit rate of 1.5 Mbit/s.
ENCODER_SETTINGS: dict[str, dict[str, Any]] = {
    "libx264": {"options": {"preset": "ultrafast", "crf": "20"}},
    "libvpx-vp9": {"options": {"deadline": "realtime", "cpu-used": "8", "crf": "30",
                               "b": "0", "row-mt": "0"}},
}


def encode_clip(spec: ClipSpec, out_dir: Path) -> str:
    """Render and encode one clip to ``out_dir / spec.file`` (temp file, then rename).

    Returns:
        The clip's video id.
    """
    settings = ENCODER_SETTINGS.get(spec.codec, {"bit_rate": 1_500_000})
    # One thread per encoder: the pool parallelises clips, and single-threaded encoders
    # are bit-for-bit reproducible.
    write_video(out_dir / spec.file, render_frames(spec), spec.fps, codec=spec.codec,
                threads=1, **settings)
    return spec.video_id


# ---------------------------------------------------------------------------- the stage

def _annotations(specs: list[ClipSpec], seed: int, heldout: list) -> dict[str, Any]:
    videos, sentences = [], []
    for spec in specs:
        videos.append({
            "video_id": spec.video_id,
            "split": spec.split,
            "file": spec.file,
            "codec": spec.codec,
            "width": spec.width,
            "height": spec.height,
            "fps": spec.fps,
            "num_frames": spec.num_frames,
            "attributes": {"objects": [obj.attributes() for obj in spec.objects],
                           "background": spec.background},
        })
        for caption in spec.captions:
            sentences.append({"video_id": spec.video_id, "caption": caption,
                              "sen_id": len(sentences)})
    return {
        "info": {"generator": "s2vt synth", "version": FORMAT_VERSION, "seed": seed,
                 "num_videos": len(specs),
                 "heldout_combinations": [list(combo) for combo in heldout]},
        "videos": videos,
        "sentences": sentences,
    }


def synthesize(out: Path, num_videos: int = 600, seed: int = 0,
               workers: int | None = None) -> Path:
    """Write the synthetic benchmark: ``out/videos/*`` and ``out/annotations.json``.

    A rerun with the same settings reuses the clips already written (each clip is written
    to a temp name and renamed, so none is ever partial); a folder made with other settings
    is refused rather than mixed.

    Args:
        out: output folder.
        num_videos: number of clips.
        seed: the seed; the same seed gives the same annotations and decoded frames.
        workers: encoding processes (default: up to 2, one when there are few clips).

    Returns:
        The path of ``annotations.json``.

    Raises:
        S2VTError: ``out`` holds a synthetic set made with other settings, or bad arguments.
    """
    from tqdm import tqdm

    out = Path(out)
    specs, heldout = plan_clips(num_videos, seed)
    annotations = _annotations(specs, seed, heldout)
    info_path = out / "synth_info.json"
    info = annotations["info"]
    if info_path.exists():
        try:
            previous = json.loads(info_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            previous = None
        if previous != info:
            raise S2VTError(f"{out} already holds a synthetic set made with other settings "
                            f"({info_path}); choose another --out or delete it")
    atomic_write_json(info_path, info)
    todo = [spec for spec in specs if not (out / spec.file).is_file()]
    if workers is None:
        workers = 1 if len(todo) < 16 else min(2, os.cpu_count() or 1)
    log.info("synth: %d clips to write (%d already there) with %d process(es)",
             len(todo), len(specs) - len(todo), workers)
    progress = tqdm(total=len(todo), desc="synth", unit="clip", disable=not todo)
    if workers <= 1:
        for spec in todo:
            encode_clip(spec, out)
            progress.update()
    else:
        import multiprocessing

        # spawn: the parent may have torch / decord loaded, which fork does not survive well.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            # Long clips first keeps both workers busy until the end.
            ordered = sorted(todo, key=lambda s: -s.num_frames * s.width * s.height)
            for _ in pool.map(encode_clip, ordered, [out] * len(ordered), chunksize=4):
                progress.update()
    progress.close()
    path = out / "annotations.json"
    atomic_write_json(path, annotations)
    return path
