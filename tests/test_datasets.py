"""Annotation loaders: small fixtures in each benchmark's real file format."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from s2vt.datasets import (
    DATASETS,
    Annotations,
    Caption,
    Video,
    dataset_names,
    detect_format,
    load_annotations,
    normalize_caption,
)
from s2vt.errors import S2VTError


def touch(path: Path) -> Path:
    """A stand-in clip file (loaders only look clips up; they never decode them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00")
    return path


# ----------------------------------------------------------------------------- MSR-VTT

def write_msrvtt(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    train_val = {
        "info": {"year": "2016"},
        "videos": [
            {"category": 9, "url": "https://www.youtube.com/watch?v=9lZi22qLlEo",
             "video_id": "video0", "start time": 137.72, "end time": 149.44,
             "split": "train", "id": 0},
            {"category": 16, "url": "u1", "video_id": "video1", "start time": 1.0,
             "end time": 5.0, "split": "train", "id": 1},
            {"category": 3, "url": "u2", "video_id": "video2", "start time": 2.0,
             "end time": 8.5, "split": "validate", "id": 2},
        ],
        "sentences": [
            {"caption": "  A cartoon   Character is talking.\n", "video_id": "video0",
             "sen_id": 0},
            {"caption": "a man drives a car", "video_id": "video0", "sen_id": 1},
            {"caption": "someone is cooking", "video_id": "video1", "sen_id": 2},
            {"caption": "A DOG, running!", "video_id": "video2", "sen_id": 3},
            {"caption": "   ", "video_id": "video2", "sen_id": 4},
        ],
    }
    test = {
        "videos": [
            {"category": 1, "url": "u3", "video_id": "video7010", "start time": 0.0,
             "end time": 10.0, "split": "test", "id": 7010},
            {"category": 2, "url": "u4", "video_id": "video7011", "start time": 0.0,
             "end time": 10.0, "split": "test", "id": 7011},
        ],
        "sentences": [
            {"caption": "people dance", "video_id": "video7010", "sen_id": 130260},
            {"caption": "a woman sings", "video_id": "video7011", "sen_id": 130261},
        ],
    }
    (root / "train_val_videodatainfo.json").write_text(json.dumps(train_val))
    (root / "test_videodatainfo.json").write_text(json.dumps(test))
    return root


def test_msrvtt_folder_with_clips_skips_and_lists_missing(tmp_path, caplog):
    root = write_msrvtt(tmp_path / "msrvtt")
    touch(root / "TrainValVideo" / "video0.mp4")
    touch(root / "TrainValVideo" / "video2.mp4")
    touch(root / "TestVideo" / "video7010.mp4")
    with caplog.at_level(logging.WARNING):
        ann = load_annotations(root)
    assert detect_format(root) == "msrvtt"
    assert [v.video_id for v in ann.videos] == ["video0", "video2", "video7010"]
    assert ann.missing == ["video1", "video7011"]
    assert "2 of 5 clip files not found" in caplog.text
    assert ann.videos[0].path == root / "TrainValVideo" / "video0.mp4"
    assert ann.videos[2].path == root / "TestVideo" / "video7010.mp4"
    assert ann.splits() == ["train", "val", "test"]
    assert ann.videos[1].split == "val"  # MSR-VTT's "validate"
    assert ann.videos[0].attributes["category"] == 9
    refs = ann.references()
    assert refs["video0"] == ["A cartoon Character is talking.", "a man drives a car"]
    assert refs["video2"] == ["A DOG, running!"]  # blank caption dropped, case kept
    assert "video1" not in refs
    # Missing clips are filtered per split too.
    assert ann.split("train").missing == ["video1"]
    assert ann.split("test").missing == ["video7011"]


def test_msrvtt_annotation_file_only_loads_every_video_without_path(tmp_path):
    root = write_msrvtt(tmp_path / "msrvtt")
    ann = load_annotations(root / "test_videodatainfo.json")
    assert [v.video_id for v in ann.videos] == ["video7010", "video7011"]
    assert all(v.path is None for v in ann.videos)
    assert ann.missing == []
    assert ann.split("test").references() == {"video7010": ["people dance"],
                                              "video7011": ["a woman sings"]}
    with pytest.raises(S2VTError, match="2 video.*have no clip file.*first: 'video7010'"):
        ann.video_paths()
    both = load_annotations(root)
    assert [len(both.split(s).videos) for s in ("train", "val", "test")] == [2, 1, 2]


def test_msrvtt_keep_missing_and_video_root(tmp_path):
    root = write_msrvtt(tmp_path / "msrvtt")
    clips = tmp_path / "elsewhere"
    touch(clips / "video0.webm")
    ann = load_annotations(root, keep_missing=True, video_root=clips)
    assert len(ann.videos) == 5
    assert ann.videos[0].path == clips / "video0.webm"
    assert ann.videos[1].path is None
    assert "video1" in ann.missing
    assert ann.clip_dirs[0] == clips


def test_msrvtt_file_field_cannot_escape_the_dataset_folder(tmp_path, caplog):
    root = tmp_path / "set"
    secret = touch(tmp_path / "secret.mp4")
    touch(root / "videos" / "ok.mp4")
    data = {
        "videos": [
            {"video_id": "ok", "split": "train", "file": "videos/ok.mp4"},
            {"video_id": "abs", "split": "train", "file": str(secret)},
            {"video_id": "up", "split": "train", "file": "../secret.mp4"},
            {"video_id": "../secret", "split": "train"},
            {"video_id": "win", "split": "test", "file": "..\\secret.mp4"},
        ],
        "sentences": [{"video_id": "ok", "caption": "fine", "sen_id": 0}],
    }
    (root / "annotations.json").write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        ann = load_annotations(root / "annotations.json", format="synthetic")
    assert [v.video_id for v in ann.videos] == ["ok"]
    assert ann.videos[0].path == root / "videos" / "ok.mp4"
    assert sorted(ann.missing) == sorted(["abs", "up", "../secret", "win"])
    assert "refusing clip path" in caplog.text


def test_synthetic_set_is_detected_and_offers_attribute_scores(tmp_path):
    from s2vt.synth import synthesize

    path = synthesize(tmp_path / "synth", num_videos=8, seed=1, workers=1)
    assert detect_format(path) == detect_format(path.parent) == "synthetic"
    ann = load_annotations(path.parent)
    test = ann.split("test")
    assert test.scorer is ann.scorer is not None  # split() keeps the dataset's scorer
    first = {vid: refs[0] for vid, refs in test.references().items()}
    assert ann.scorer.scores(first) == {"attr_color": 1.0, "attr_shape": 1.0,
                                        "attr_motion": 1.0}
    video = sorted(first)[0]
    truth = test.videos[[v.video_id for v in test.videos].index(video)].attributes
    motion = truth["objects"][0]["motion"]
    wrong = "a thing does not move" if motion != "still" else "a thing moves left"
    assert ann.scorer.scores({video: wrong})["attr_motion"] == 0.0
    checks = ann.scorer.checks(video, wrong)
    assert checks["motion"][0] is False and checks["motion"][1].endswith(f"is {motion}")
    assert checks["color"] == (False, f"said nothing, is {truth['objects'][0]['color']}")
    assert ann.scorer.checks("not-a-video", wrong) == {}
    # Benchmarks without ground truth offer no extra scores, even loaded under this name.
    msrvtt = write_msrvtt(tmp_path / "msrvtt")
    assert load_annotations(msrvtt).scorer is None
    assert load_annotations(msrvtt / "test_videodatainfo.json", format="synthetic").scorer is None


def test_split_errors_name_the_split_and_list_the_others(tmp_path):
    root = write_msrvtt(tmp_path / "msrvtt")
    ann = load_annotations(root / "train_val_videodatainfo.json")
    assert len(ann.split("validate").videos) == 1
    with pytest.raises(S2VTError, match=r"split 'test' has no videos .*available splits: "
                                        r"train, val\)"):
        ann.split("test")
    with pytest.raises(S2VTError, match="split 'bogus'"):
        ann.split("bogus")


# ----------------------------------------------------------------------------- MSVD

MSVD_TXT = """\
# Microsoft Research Video Description Corpus
# Only English descriptions. Format: <clip> <description>

-4wsuPCjDBc_5_15 a squirrel is eating a peanut in it's shell
-4wsuPCjDBc_5_15   A  Squirrel is Eating.
-_hbPLsZvvo_5_8 A dog   is barking!
ab_c-d_E_10_20	a man plays a guitar
zz-top_0_4 a woman is slicing an onion
notmapped_1_2 this clip is not in the standard split
"""
MSVD_MAPPING = """\
-4wsuPCjDBc_5_15 vid1
-_hbPLsZvvo_5_8 vid2
ab_c-d_E_10_20 vid1201
zz-top_0_4 vid1301
"""


def write_msvd(root: Path, *, txt: bool = True, csv: bool = False, mapping: bool = True):
    root.mkdir(parents=True, exist_ok=True)
    if txt:
        (root / "AllVideoDescriptions.txt").write_text(MSVD_TXT)
    if csv:
        (root / "MSR Video Description Corpus.csv").write_text(
            "VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description\n"
            "-4wsuPCjDBc,5,15,1,clean,10,English,A squirrel eats.\n"
            "-4wsuPCjDBc,5,15,2,clean,10,German,Ein Eichhoernchen frisst.\n"
            '-_hbPLsZvvo,5,8,3,unverified,12,English,"A dog, barking, loudly."\n'
            "ab_c-d_E,10,20,4,clean,8,English,a man plays a guitar\n"
            "ab_c-d_E,10,20,5,clean,8,Spanish,un hombre toca la guitarra\n"
            "zz-top,0,4,6,clean,9,english,  a woman is   slicing\n"
            "zz-top,0,4,7,clean,9,English,\n",
            encoding="utf-8",
        )
    if mapping:
        (root / "youtube_mapping.txt").write_text(MSVD_MAPPING)
    return root


def test_msvd_txt_mapping_split_and_missing_clip(tmp_path):
    root = write_msvd(tmp_path / "msvd")
    for key in ("-4wsuPCjDBc_5_15", "ab_c-d_E_10_20", "zz-top_0_4"):
        touch(root / "YouTubeClips" / f"{key}.avi")
    assert detect_format(root) == "msvd"
    ann = load_annotations(root)
    assert [v.video_id for v in ann.videos] == ["-4wsuPCjDBc_5_15", "ab_c-d_E_10_20",
                                                "zz-top_0_4"]
    assert ann.missing == ["-_hbPLsZvvo_5_8"]
    assert [v.split for v in ann.videos] == ["train", "val", "test"]
    first = ann.videos[0]
    assert first.path == root / "YouTubeClips" / "-4wsuPCjDBc_5_15.avi"
    assert first.attributes == {"aliases": ["vid1"], "youtube_id": "-4wsuPCjDBc",
                                "start": "5", "end": "15"}
    second = ann.videos[1].attributes
    assert (second["youtube_id"], second["start"], second["end"]) == ("ab_c-d_E", "10", "20")
    assert ann.references()["-4wsuPCjDBc_5_15"] == [
        "a squirrel is eating a peanut in it's shell", "A Squirrel is Eating."]
    assert ann.aliases()["vid1301"] == "zz-top_0_4"
    assert "notmapped_1_2" not in ann.references()


def test_msvd_csv_english_rows_only_and_no_clips(tmp_path):
    root = write_msvd(tmp_path / "msvd", txt=False, csv=True)
    assert detect_format(root) == "msvd"
    ann = load_annotations(root / "MSR Video Description Corpus.csv")
    assert all(v.path is None for v in ann.videos) and ann.missing == []
    refs = ann.references()
    assert refs == {
        "-4wsuPCjDBc_5_15": ["A squirrel eats."],
        "-_hbPLsZvvo_5_8": ["A dog, barking, loudly."],
        "ab_c-d_E_10_20": ["a man plays a guitar"],
        "zz-top_0_4": ["a woman is slicing"],
    }
    assert [len(ann.split(s).videos) for s in ("train", "val", "test")] == [2, 1, 1]


def test_msvd_prefers_txt_and_works_without_mapping(tmp_path, caplog):
    root = write_msvd(tmp_path / "msvd", txt=True, csv=True, mapping=False)
    with caplog.at_level(logging.WARNING):
        ann = load_annotations(root, format="msvd")
    assert "no youtube_mapping.txt" in caplog.text
    # Order of first appearance: all 5 clips fall in vid1..1200, i.e. train.
    assert ann.splits() == ["train"]
    assert len(ann.videos) == 5
    assert ann.references()["-_hbPLsZvvo_5_8"] == ["A dog is barking!"]


def test_msvd_bad_mapping_line_is_one_clear_error(tmp_path):
    root = write_msvd(tmp_path / "msvd")
    (root / "youtube_mapping.txt").write_text("-4wsuPCjDBc_5_15 first\n")
    with pytest.raises(S2VTError, match=r"youtube_mapping.txt:1: expected '<clip key> vid<N>'"):
        load_annotations(root)


# ----------------------------------------------------------------------------- VATEX

def write_vatex(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    train = [
        {"videoID": "Ptf_2VRj-V0_000122_000132",
         "enCap": ["A man is   playing a Guitar.", "someone strums a guitar"],
         "chCap": ["一个男人在弹吉他。"]},
        {"videoID": "-abc_DEF-1_000001_000011", "enCap": ["Two kids run."], "chCap": []},
    ]
    val = [{"videoID": "q-q_q_000010_000020", "enCap": ["a cat sleeps"], "chCap": ["猫"]}]
    test = [{"videoID": "zZz_000000_000010", "enCap": ["people cheer", "a crowd claps"]}]
    (root / "vatex_training_v1.0.json").write_text(json.dumps(train, ensure_ascii=False))
    (root / "vatex_validation_v1.0.json").write_text(json.dumps(val, ensure_ascii=False))
    (root / "vatex_public_test_english_v1.1.json").write_text(json.dumps(test))
    return root


def test_vatex_folder_splits_english_only_and_missing(tmp_path):
    root = write_vatex(tmp_path / "vatex")
    touch(root / "videos" / "Ptf_2VRj-V0_000122_000132.mp4")
    touch(root / "videos" / "q-q_q_000010_000020.mp4")
    touch(root / "my clips" / "zZz_000000_000010.mp4")  # an unusual folder name is found too
    assert detect_format(root) == "vatex"
    ann = load_annotations(root)
    assert ann.missing == ["-abc_DEF-1_000001_000011"]
    paths = {v.video_id: v.path for v in ann.videos}
    assert paths["zZz_000000_000010"] == root / "my clips" / "zZz_000000_000010.mp4"
    assert paths["q-q_q_000010_000020"] == root / "videos" / "q-q_q_000010_000020.mp4"
    assert {v.video_id: v.split for v in ann.videos} == {
        "Ptf_2VRj-V0_000122_000132": "train", "q-q_q_000010_000020": "val",
        "zZz_000000_000010": "test"}
    assert ann.references()["Ptf_2VRj-V0_000122_000132"] == [
        "A man is playing a Guitar.", "someone strums a guitar"]
    assert all("猫" not in c.text for c in ann.captions)
    single = load_annotations(root / "vatex_public_test_english_v1.1.json")
    assert single.splits() == ["test"]
    assert len(single.captions) == 2


# ----------------------------------------------------------------------------- registry

def test_registry_detection_and_errors(tmp_path):
    assert set(dataset_names()) == {"captions", "msrvtt", "msvd", "vatex", "synthetic"}
    assert set(DATASETS) == set(dataset_names())
    with pytest.raises(S2VTError, match=r"unknown dataset format 'coco' \(known: captions, "
                                        r"msrvtt, msvd, synthetic, vatex\)"):
        load_annotations(tmp_path, format="coco")
    with pytest.raises(S2VTError, match="annotation file or folder not found: .*nope.json"):
        load_annotations(tmp_path / "nope.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(S2VTError, match="cannot tell the annotation format .*known formats"):
        load_annotations(tmp_path / "empty")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(S2VTError, match="bad.json is not valid JSON"):
        load_annotations(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"images": []}))
    with pytest.raises(S2VTError, match="not in the MSR-VTT layout"):
        load_annotations(wrong)
    # A named format that does not match the files is one clear error, not a traceback.
    write_vatex(tmp_path / "v")
    with pytest.raises(S2VTError, match="no MSVD annotation file"):
        load_annotations(tmp_path / "v", format="msvd")


def test_canonical_form_helpers():
    assert normalize_caption("  A  Dog\tRuns.\n") == "A Dog Runs."
    ann = Annotations(videos=[Video("a", None, "train"), Video("b", None, "test")],
                      captions=[Caption("a", "x"), Caption("b", "y"), Caption("zz", "w")])
    assert ann.references() == {"a": ["x"], "b": ["y"]}
    assert ann.split("test").captions == [Caption("b", "y")]
    assert ann.splits() == ["train", "test"]
