"""Your own captions file (CSV / JSON Lines): detection, awkward files, bad rows, splits."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from s2vt.datasets import detect_format, load_annotations
from s2vt.datasets.owncaptions import SPLIT_FRACTIONS, CaptionFileAnnotations, assign_splits
from s2vt.errors import S2VTError

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/real (CI has it; "
                                "a user's clone does not)")


def touch(path: Path) -> Path:
    """A stand-in clip file (loaders only look clips up; they never decode them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00")
    return path


def refs(annotations) -> dict[str, list[str]]:
    return annotations.references()


def test_csv_with_split_column_paths_ids_and_extra_columns(tmp_path):
    touch(tmp_path / "clips" / "dog.mp4")
    touch(tmp_path / "cat.webm")
    touch(tmp_path / "videos" / "bird.mkv")
    (tmp_path / "captions.csv").write_text(
        "Video , Caption,Split,annotator\n"
        "clips/dog.mp4,a dog runs,train,ann\n"
        "clips/dog.mp4,  a  dog   runs fast ,train,bob\n"
        "cat.webm,a cat sleeps,Validation,x\n"
        "bird,a bird sings,test,y\n",
        encoding="utf-8",
    )
    assert detect_format(tmp_path / "captions.csv") == "captions"
    assert detect_format(tmp_path) == "captions"
    ann = load_annotations(tmp_path / "captions.csv")
    assert isinstance(ann, CaptionFileAnnotations)
    assert [(v.video_id, v.split) for v in ann.videos] == [
        ("dog", "train"), ("cat", "val"), ("bird", "test")]
    assert {v.video_id: v.path for v in ann.videos} == {
        "dog": tmp_path / "clips" / "dog.mp4", "cat": tmp_path / "cat.webm",
        "bird": tmp_path / "videos" / "bird.mkv"}
    assert refs(ann)["dog"] == ["a dog runs", "a dog runs fast"]
    assert ann.bad_rows == [] and ann.rows == 4 and ann.auto_split == []


def test_awkward_csv_bom_crlf_quotes_newlines_blank_lines_windows_unicode(tmp_path):
    touch(tmp_path / "clips" / "été.mp4")
    touch(tmp_path / "clips" / "b.mp4")
    text = ("\ufeffvideo,caption,split\r\n"
            "clips\\été.mp4,\"a man, a woman and a dog\",train\r\n"
            "\r\n"
            ",,\r\n"
            "clips\\été.mp4,\"two lines\r\nof caption\",train\r\n"
            "clips/b.mp4,\"she says \"\"hi\"\" — ☃\",test\r\n")
    path = tmp_path / "captions.csv"
    path.write_bytes(text.encode("utf-8"))
    assert detect_format(path) == "captions"
    ann = load_annotations(path)
    assert refs(ann) == {"été": ["a man, a woman and a dog", "two lines of caption"],
                         "b": ['she says "hi" — ☃']}
    assert ann.bad_rows == []
    # The same file as Excel's UTF-16 "Unicode text" and as a cp1252 file still loads.
    path.write_bytes(text.encode("utf-16"))
    assert refs(load_annotations(path))["b"] == ['she says "hi" — ☃']
    path.write_bytes("video,caption\nclips/b.mp4,café au lait\n".encode("cp1252"))
    assert refs(load_annotations(path))["b"] == ["café au lait"]


def test_semicolon_delimited_csv_from_a_european_excel(tmp_path):
    touch(tmp_path / "a.mp4")
    path = tmp_path / "captions.csv"
    path.write_text("video;caption\na.mp4;un chien, qui court\n", encoding="utf-8")
    assert refs(load_annotations(path)) == {"a": ["un chien, qui court"]}


def test_bad_rows_are_counted_listed_and_logged(tmp_path, caplog):
    for name in "abc":
        touch(tmp_path / f"{name}.mp4")
    path = tmp_path / "captions.csv"
    path.write_text(
        "video,caption,split\n"
        "a.mp4,fine,train\n"        # line 2
        ",no video,train\n"         # 3
        "a.mp4,   ,train\n"         # 4
        "b.mp4,typo split,tset\n"   # 5
        "a.mp4,moved,test\n"        # 6: a is already in train
        "c.mp4,short row\n"         # 7: no split cell -> placed by hash
        "b.mp4,good,test\n",        # 8
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="s2vt.datasets.owncaptions"):
        ann = load_annotations(path)
    assert [(b.line, b.reason) for b in ann.bad_rows] == [
        (3, "no video"), (4, "empty caption"),
        (5, "unknown split 'tset' (use train, val, test)"),
        (6, "video already in split 'train', not 'test'")]
    assert refs(ann) == {"a": ["fine"], "c": ["short row"], "b": ["good"]}
    assert ann.auto_split == ["c"]
    assert "4 of 7 rows skipped: line 3: no video; line 4: empty caption" in caplog.text


def test_no_usable_row_is_one_clear_error(tmp_path):
    path = tmp_path / "captions.csv"
    path.write_text("video,caption\n,\nx.mp4,\n", encoding="utf-8")
    with pytest.raises(S2VTError, match=r"captions.csv has no usable row \(1 row\(s\) read; "
                                        r"line 3: empty caption\)"):
        load_annotations(path)
    path.write_text("video,caption\n", encoding="utf-8")
    with pytest.raises(S2VTError, match="no usable row .*the file has no data rows"):
        load_annotations(path)
    # A header without the needed columns is not this format; forced, it says what it needs.
    path.write_text("clip,sentence_text\na.mp4,x\n", encoding="utf-8")
    with pytest.raises(S2VTError, match="cannot tell the annotation format"):
        load_annotations(path)
    with pytest.raises(S2VTError, match="must be a header naming a 'video' and a 'caption'"):
        load_annotations(path, format="captions")


def test_jsonl_lists_bad_lines_and_a_json_named_file(tmp_path):
    touch(tmp_path / "a.mp4")
    touch(tmp_path / "b.mp4")
    lines = [
        json.dumps({"video": "a.mp4", "caption": "a one", "split": "train"}),
        "",
        "{broken",
        json.dumps(["not", "an", "object"]),
        json.dumps({"video": "b", "caption": ["b one", "b two"], "split": None}),
        json.dumps({"video": "a.mp4", "caption": "a two", "split": "train", "extra": 1}),
    ]
    for name in ("captions.jsonl", "captions.json"):
        path = tmp_path / name
        path.write_text("\ufeff" + "\r\n".join(lines) + "\r\n", encoding="utf-8")
        assert detect_format(path) == "captions"
        ann = load_annotations(path)
        assert refs(ann) == {"a": ["a one", "a two"], "b": ["b one", "b two"]}
        assert [b.line for b in ann.bad_rows] == [3, 4]
        assert ann.bad_rows[0].reason.startswith("not valid JSON")
        path.unlink()


def test_same_stem_two_files_and_one_video_spelt_two_ways(tmp_path):
    touch(tmp_path / "v" / "flower.mp4")
    touch(tmp_path / "v" / "flower.webm")
    touch(tmp_path / "clips" / "dog.mp4")
    touch(tmp_path / "a" / "cat.mp4")
    touch(tmp_path / "b" / "cat.mp4")
    path = tmp_path / "captions.csv"
    path.write_text("video,caption,split\nv/flower.mp4,x,train\nv/flower.webm,y,train\n"
                    "dog,z,test\nclips/dog.mp4,w,test\na/cat.mp4,c,train\nb/cat.mp4,d,train\n",
                    encoding="utf-8")
    ann = load_annotations(path)
    assert refs(ann) == {"flower.mp4": ["x"], "flower.webm": ["y"], "dog": ["z", "w"],
                         "a/cat.mp4": ["c"], "b/cat.mp4": ["d"]}


def test_absolute_paths_missing_clips_and_windows_paths_found_by_name(tmp_path):
    elsewhere = touch(tmp_path / "elsewhere" / "far.mp4")
    data = tmp_path / "data"
    touch(data / "videos" / "moved.mp4")
    path = data / "captions.csv"
    path.write_text(f"video,caption\n{elsewhere},far away\n"
                    "C:\\Users\\me\\Videos\\moved.mp4,moved here\n"
                    "gone.mp4,no file\n", encoding="utf-8")
    ann = load_annotations(path)
    assert {v.video_id: v.path for v in ann.videos} == {
        "far": elsewhere, "moved": data / "videos" / "moved.mp4"}
    assert ann.missing == ["gone"]
    kept = load_annotations(path, keep_missing=True)
    assert {v.video_id: v.path for v in kept.videos}["gone"] is None
    # Only the captions file (scoring on another machine): every video, no paths.
    only = tmp_path / "only"
    only.mkdir()
    (only / "captions.csv").write_text("video,caption\na.mp4,x\nb,y\n", encoding="utf-8")
    scored = load_annotations(only / "captions.csv")
    assert [(v.video_id, v.path) for v in scored.videos] == [("a", None), ("b", None)]
    assert scored.missing == []


def test_deterministic_split_keeps_videos_whole(tmp_path):
    ids = [f"clip{i:04d}" for i in range(2000)]
    first = assign_splits(ids)
    assert first == assign_splits(list(reversed(ids)))  # order does not matter
    counts = {name: sum(1 for s in first.values() if s == name) for name in SPLIT_FRACTIONS}
    for name, fraction in SPLIT_FRACTIONS.items():
        # A hash, not a shuffle: binomial spread, 0.9 % (one sd) for train at 2000 videos.
        assert abs(counts[name] / len(ids) - fraction) < 0.035, counts
    # A video keeps its split when the file grows.
    grown = assign_splits(ids + [f"new{i}" for i in range(50)])
    assert all(grown[vid] == first[vid] for vid in ids)
    # Tiny sets still get a val and a test video.
    for n in (3, 4, 5):
        assert set(assign_splits([f"v{i}" for i in range(n)]).values()) == {
            "train", "val", "test"}
    # Through the loader: all captions of one video land in the same split.
    lines = ["video,caption"] + [f"v{i}.mp4,caption {j} of {i}" for i in range(30)
                                 for j in range(3)]
    (tmp_path / "captions.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ann = load_annotations(tmp_path / "captions.csv")
    assert len(ann.videos) == 30 and len(ann.captions) == 90
    assert {v.video_id: v.split for v in ann.videos} == assign_splits(
        [f"v{i}" for i in range(30)])
    for split in ann.splits():
        part = ann.split(split)
        assert all(len(texts) == 3 for texts in part.references().values())
    assert sorted(ann.auto_split) == sorted(f"v{i}" for i in range(30))


@needs_real
def test_msvd_corpus_csv_still_detects_as_msvd_and_json_layouts_unchanged(tmp_path):
    for name in ("val.csv", "test.csv"):
        assert detect_format(REAL / "annotations" / "msvd" / "english_csv" / name) == "msvd"
    assert detect_format(REAL / "annotations" / "msrvtt" / "test_videodatainfo.json") == "msrvtt"
    # A JSON object file that is not a captions line still goes to MSR-VTT's loader.
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"images": []}))
    assert detect_format(wrong) == "msrvtt"


def test_video_root_replaces_the_file_folder(tmp_path):
    touch(tmp_path / "store" / "a.mp4")
    (tmp_path / "ann").mkdir()
    path = tmp_path / "ann" / "captions.csv"
    path.write_text("video,caption,split\na,x,train\n", encoding="utf-8")
    ann = load_annotations(path, video_root=tmp_path / "store")
    assert ann.videos[0].path == tmp_path / "store" / "a.mp4"


def test_captions_csv_through_extract_train_and_caption(tmp_path, make_video, capsys):
    """The README's walk-through in small: a folder of clips + captions.csv, CLI in-process."""
    from s2vt.cli import main

    data = tmp_path / "my_videos"
    rows = ["video,caption,split"]
    for i, split in enumerate(["train", "train", "train", "val", "test"]):
        make_video(f"my_videos/clips/c{i}.mp4", num_frames=12, width=64, height=48)
        rows += [f"clips/c{i}.mp4,a square moves number {i},{split}",
                 f"clips/c{i}.mp4,\"a white square, moving\",{split}"]
    (data / "captions.csv").write_text("\r\n".join(rows) + "\r\n", encoding="utf-8")
    features, model = tmp_path / "features", tmp_path / "model"
    assert main(["extract", str(data / "captions.csv"), "--out", str(features),
                 "--encoder", "tiny", "--num-frames", "4", "--no-progress"]) == 0
    assert sorted(p.name for p in features.glob("*.npy")) == [f"c{i}.npy" for i in range(5)]
    assert main(["train", "--features", str(features), "--annotations",
                 str(data / "captions.csv"), "--out", str(model), "--epochs", "2",
                 "--batch-size", "4", "--set", "model.hidden_size=16",
                 "--set", "model.embed_size=8", "--no-progress"]) == 0
    card = (model / "README.md").read_text(encoding="utf-8")
    assert "Annotations: `captions.csv` (captions format)." in card
    assert "| train | 3 | 6 |" in card and "| val | 1 | 2 |" in card
    capsys.readouterr()
    assert main(["caption", str(data / "clips" / "c0.mp4"), "--model", str(model),
                 "--beam-size", "1"]) == 0
    assert capsys.readouterr().out.startswith(str(data / "clips" / "c0.mp4") + "\t")
