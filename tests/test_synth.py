"""The synthetic benchmark: real clips, determinism, variety, splits, captions, scoring."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest

from s2vt.cli import main
from s2vt.datasets import Video, load_annotations
from s2vt.synth import (
    ATTRIBUTE_WORDS,
    BACKGROUNDS,
    COLORS,
    MOTIONS,
    SHAPES,
    ClipSpec,
    ObjectSpec,
    plan_clips,
    render_frames,
    synthesize,
)
from s2vt.synth_attributes import attribute_accuracy, first_mention

EXPECTED_CODEC = {".mp4": "h264", ".avi": "mpeg4", ".webm": "vp9"}


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


@pytest.fixture(scope="module")
def synth60(tmp_path_factory) -> Path:
    """60 clips written through the CLI, in-process, with the 2-process pool."""
    out = tmp_path_factory.mktemp("synth60")
    assert main(["synth", "--out", str(out), "--num-videos", "60", "--seed", "1",
                 "--workers", "2"]) == 0
    return out


def primary_combo(video: dict) -> tuple[str, str, str]:
    obj = video["attributes"]["objects"][0]
    return obj["color"], obj["shape"], obj["motion"]


def test_cli_writes_real_clips_that_load_back(synth60):
    data = json.loads((synth60 / "annotations.json").read_text())
    assert len(data["videos"]) == 60
    ann = load_annotations(synth60)
    assert ann.splits() == ["train", "val", "test", "test_novel"]
    assert Counter(v.split for v in ann.videos) == {"train": 39, "test": 9, "val": 6,
                                                   "test_novel": 6}
    assert ann.missing == []
    for video, entry in zip(ann.videos, data["videos"], strict=True):
        assert video.path == synth60 / entry["file"]
        assert video.attributes == entry["attributes"]
    refs = ann.references()
    assert all(5 <= len(captions) <= 10 and len(set(captions)) == len(captions)
               for captions in refs.values())
    # One clip of each container decodes with the declared codec, size and frame count.
    by_suffix = {Path(e["file"]).suffix: e for e in data["videos"]}
    assert set(by_suffix) == set(EXPECTED_CODEC)
    for suffix, entry in by_suffix.items():
        with av.open(str(synth60 / entry["file"])) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == EXPECTED_CODEC[suffix]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert len(frames) == entry["num_frames"]
        assert frames[0].shape == (entry["height"], entry["width"], 3)


def test_variety_in_60_clips(synth60):
    data = json.loads((synth60 / "annotations.json").read_text())
    videos = data["videos"]
    suffixes = Counter(Path(v["file"]).suffix for v in videos)
    assert suffixes[".mp4"] > len(videos) / 2 and suffixes[".avi"] >= 3 and suffixes[".webm"] >= 3
    objects = [obj for v in videos for obj in v["attributes"]["objects"]]
    assert {o["shape"] for o in objects} == set(SHAPES) and len(SHAPES) >= 4
    assert {o["color"] for o in objects} == set(COLORS) and len(COLORS) >= 6
    assert {o["motion"] for o in objects} == set(MOTIONS) and len(MOTIONS) >= 9
    assert {o["size"] for o in objects} >= {"big", "small"}
    assert {v["attributes"]["background"] for v in videos} == set(BACKGROUNDS)
    assert Counter(len(v["attributes"]["objects"]) for v in videos).keys() == {1, 2}
    assert len({(v["width"], v["height"]) for v in videos}) >= 4
    assert len({v["fps"] for v in videos}) >= 3
    assert all(15 <= v["fps"] <= 30 and 1.0 <= v["num_frames"] / v["fps"] <= 4.05
               for v in videos)
    assert not any(o["shape"] == "circle" and o["motion"] == "spin" for o in objects)


def test_test_novel_combinations_never_seen_elsewhere(synth60):
    data = json.loads((synth60 / "annotations.json").read_text())
    heldout = {tuple(c) for c in data["info"]["heldout_combinations"]}
    novel = [v for v in data["videos"] if v["split"] == "test_novel"]
    others = [v for v in data["videos"] if v["split"] != "test_novel"]
    assert novel and all(primary_combo(v) in heldout for v in novel)
    seen = {(o["color"], o["shape"], o["motion"])
            for v in others for o in v["attributes"]["objects"]}
    assert not seen & heldout
    train = {primary_combo(v) for v in data["videos"] if v["split"] == "train"}
    assert all(primary_combo(v) in train for v in data["videos"]
               if v["split"] in ("val", "test"))


def test_every_reference_names_the_primary_object(synth60):
    ann = load_annotations(synth60 / "annotations.json", format="synthetic")
    refs = ann.references()
    for video in ann.videos:
        primary = video.attributes["objects"][0]
        for caption in refs[video.video_id]:
            for kind in ("color", "shape", "motion"):
                assert first_mention(caption, kind) == primary[kind], (caption, primary)
    # The references score perfectly on attribute accuracy.
    predictions = {vid: captions[-1] for vid, captions in refs.items()}
    assert attribute_accuracy(predictions, ann.videos) == {"color": 1.0, "shape": 1.0,
                                                           "motion": 1.0}


def test_same_seed_same_annotations_and_frames_whatever_the_workers(tmp_path):
    first = synthesize(tmp_path / "a", num_videos=8, seed=5, workers=1)
    second = synthesize(tmp_path / "b", num_videos=8, seed=5, workers=2)
    assert first.read_bytes() == second.read_bytes()
    data = json.loads(first.read_text())
    for entry in data["videos"]:
        frames_a = decode(tmp_path / "a" / entry["file"])
        frames_b = decode(tmp_path / "b" / entry["file"])
        assert len(frames_a) == len(frames_b) == entry["num_frames"]
        assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True))
        if not entry["file"].endswith(".webm"):  # Matroska writes a random segment UID
            # Single-threaded encoders: the same bytes, not only the same pixels.
            assert (tmp_path / "a" / entry["file"]).read_bytes() == \
                (tmp_path / "b" / entry["file"]).read_bytes()
    other = synthesize(tmp_path / "c", num_videos=8, seed=6, workers=1)
    assert other.read_bytes() != first.read_bytes()


def test_rerun_reuses_clips_and_other_settings_are_refused(tmp_path, capsys):
    out = tmp_path / "s"
    synthesize(out, num_videos=4, seed=2, workers=1)
    clip = next((out / "videos").iterdir())
    stamp = clip.stat().st_mtime_ns
    synthesize(out, num_videos=4, seed=2, workers=1)
    assert clip.stat().st_mtime_ns == stamp
    assert not [p for p in (out / "videos").iterdir() if p.name.startswith(".")]
    assert main(["synth", "--out", str(out), "--num-videos", "4", "--seed", "3"]) == 2
    assert "already holds a synthetic set made with other settings" in capsys.readouterr().err
    assert main(["synth", "--out", str(tmp_path / "z"), "--num-videos", "0"]) == 2
    assert "--num-videos must be at least 1" in capsys.readouterr().err


def _single(motion: str, shape: str = "square", size: str | None = "big") -> ClipSpec:
    obj = ObjectSpec(shape=shape, color="red", size=size, motion=motion)
    return ClipSpec(video_id="x", split="train", file="x.mp4", codec="libx264", width=160,
                    height=120, fps=15, num_frames=17, background="gray", objects=[obj])


def _masks(spec: ClipSpec) -> list[np.ndarray]:
    red = np.array(COLORS["red"])
    return [np.all(np.asarray(frame) == red, axis=-1) for frame in render_frames(spec)]


def _centre(mask: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


@pytest.mark.parametrize("motion", ["left", "right", "up", "down"])
def test_translations_cross_most_of_the_frame(motion):
    masks = _masks(_single(motion))
    (x0, y0), (x1, y1) = _centre(masks[0]), _centre(masks[-1])
    dx, dy = (x1 - x0) / 160, (y1 - y0) / 120
    expected = {"left": (dx < -0.5), "right": (dx > 0.5), "up": (dy < -0.4), "down": (dy > 0.4)}
    assert expected[motion], (dx, dy)


def test_other_motions_are_visible():
    grow = [m.sum() for m in _masks(_single("grow", size=None))]
    assert grow[-1] >= 4 * grow[0]  # diameter x >= 2
    shrink = [m.sum() for m in _masks(_single("shrink", size=None))]
    assert shrink[0] >= 4 * shrink[-1]
    bounce = [_centre(m)[1] for m in _masks(_single("bounce"))]
    lows = [i for i in range(1, 16) if bounce[i] < bounce[i - 1] and bounce[i] < bounce[i + 1]]
    assert len(lows) == 2 and max(bounce) - min(bounce) > 0.4 * 120  # two clear hops
    spin = _masks(_single("spin", shape="rectangle"))
    assert len({m.tobytes() for m in spin}) > 10
    assert abs(spin[0].sum() - spin[5].sum()) < 0.15 * spin[0].sum()  # turns, same size
    still = _masks(_single("still", shape="star"))
    assert all(np.array_equal(still[0], m) for m in still)
    big, small = _masks(_single("still", size="big"))[0], _masks(_single("still", "circle",
                                                                         "small"))[0]
    big_height = np.ptp(np.nonzero(big.any(axis=1))[0]) / 120
    small_height = np.ptp(np.nonzero(small.any(axis=1))[0]) / 120
    assert 0.3 <= big_height <= 0.45 and 0.2 <= small_height <= 0.25


def test_attribute_accuracy_reads_the_first_mention():
    def video(vid, color, shape, motion):
        objects = [{"shape": shape, "color": color, "size": "big", "motion": motion},
                   {"shape": "star", "color": "green", "size": "small", "motion": "up"}]
        return Video(vid, None, "test", {"objects": objects, "background": "gray"})

    videos = [video("a", "red", "circle", "left"), video("b", "purple", "square", "spin"),
              video("c", "blue", "triangle", "bounce"), video("d", "orange", "star", "grow"),
              Video("real", None, "test", {"category": 3})]
    predictions = {
        "a": "A red ball moves to the LEFT, and a green star goes up.",  # all right
        "b": "a violet box is turning around and a green star rises",  # all right (phrase)
        "c": "a green star moves up and a blue triangle bounces",  # names the wrong object
        "d": "an orange box gets bigger",  # wrong shape; "bigger" is grow, not size "big"
    }
    scores = attribute_accuracy(predictions, videos)
    assert scores == {"color": 0.75, "shape": 0.5, "motion": 0.75}
    assert first_mention("the disc does not move", "motion") == "still"
    assert first_mention("nothing here", "color") is None
    assert attribute_accuracy({}, videos[:1]) == {"color": 0.0, "shape": 0.0, "motion": 0.0}
    with pytest.raises(Exception, match="no video has synthetic ground-truth"):
        attribute_accuracy(predictions, videos[-1:])
    assert set(ATTRIBUTE_WORDS) >= {"color", "shape", "motion"}


def test_plan_is_cheap_and_seeded():
    specs, heldout = plan_clips(600, 0)
    again, _ = plan_clips(600, 0)
    assert [s.captions for s in specs] == [s.captions for s in again]
    assert len(heldout) >= 20
    assert Counter(s.split for s in specs) == {"train": 390, "test": 90, "val": 60,
                                               "test_novel": 60}
