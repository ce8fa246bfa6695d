"""Benchmark recipes (`s2vt run msvd|msrvtt|vatex`) and `s2vt score` on each real format.

Fixture sets are written in each benchmark's own file format, with tiny real clips named
like the real ones (and one clip of each test split missing, as dead links are), then the
whole recipe runs in-process with the tiny encoder and a tiny model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from videos import write_video

from s2vt.cli import main
from s2vt.datasets import load_annotations
from s2vt.extraction import ExtractConfig
from s2vt.metrics import METRIC_KEYS
from s2vt.pipelines.benchmarks import BENCHMARKS, RunSettings, load_stage_configs
from s2vt.pipelines.recipe import Step, run_step
from s2vt.training import TrainConfig


def clip(path: Path) -> None:
    """A tiny real clip (8 frames, 64x48); the codec follows the suffix."""
    write_video(path, num_frames=8, fps=8, width=64, height=48)


CAPTIONS = (
    "A man is playing a guitar.",
    "a MAN plays the guitar!",
    "Someone is slicing an onion, quickly.",
    "a woman cuts an onion",
    "A dog runs on the grass.",
    "the dog is running",
)


def captions_for(index: int, count: int = 2) -> list[str]:
    return [CAPTIONS[(2 * index + k) % len(CAPTIONS)] for k in range(count)]


# ----------------------------------------------------------------------------- fixtures
# (clip key, vid number); YouTube ids contain "_" and "-".
MSVD_CLIPS = (
    ("-4wsuPCjDBc_5_15", 1), ("ab_c-d_E_10_20", 2), ("x-Y_z9_0_4", 3),
    ("val_clip-1_3_9", 1201),
    ("tst-_a_1_5", 1301), ("T_e-st2_7_12", 1302), ("gone_Clip-x_0_10", 1303),
)
MSVD_MISSING = "gone_Clip-x_0_10"
MSVD_TEST = ["tst-_a_1_5", "T_e-st2_7_12"]


def write_msvd(root: Path) -> Path:
    """MSVD: AllVideoDescriptions.txt, the CSV, youtube_mapping.txt, YouTubeClips/*.avi."""
    root.mkdir(parents=True)
    lines = ["# Microsoft Research Video Description Corpus", "# <clip> <description>", ""]
    rows = ["VideoID,Start,End,WorkerID,Source,AnnotationTime,Language,Description"]
    for index, (key, _) in enumerate(MSVD_CLIPS):
        youtube_id, start, end = key.rsplit("_", 2)
        for text in captions_for(index):
            lines.append(f"{key} {text}")
            rows.append(f'{youtube_id},{start},{end},1,clean,9,English,"{text}"')
        rows.append(f"{youtube_id},{start},{end},2,clean,9,German,ein Satz")
    (root / "AllVideoDescriptions.txt").write_text("\n".join(lines) + "\n")
    (root / "MSR Video Description Corpus.csv").write_text("\n".join(rows) + "\n")
    (root / "youtube_mapping.txt").write_text(
        "".join(f"{key} vid{number}\n" for key, number in MSVD_CLIPS))
    for key, _ in MSVD_CLIPS:
        if key != MSVD_MISSING:
            clip(root / "YouTubeClips" / f"{key}.avi")
    return root


MSRVTT_SPLITS = {"video0": "train", "video1": "train", "video2": "train",
                 "video3": "validate", "video7010": "test", "video7011": "test",
                 "video7012": "test"}
MSRVTT_MISSING = "video7012"
MSRVTT_TEST = ["video7010", "video7011"]


def write_msrvtt(root: Path) -> Path:
    """MSR-VTT: train_val/test_videodatainfo.json, TrainValVideo/ and TestVideo/ clips."""
    root.mkdir(parents=True)
    files: dict[str, dict] = {"train_val_videodatainfo.json": {"videos": [], "sentences": []},
                              "test_videodatainfo.json": {"videos": [], "sentences": []}}
    sen_id = 0
    for index, (vid, split) in enumerate(MSRVTT_SPLITS.items()):
        name = "test_videodatainfo.json" if split == "test" else "train_val_videodatainfo.json"
        files[name]["videos"].append({"category": index, "url": f"https://youtu.be/{index}",
                                      "video_id": vid, "start time": 1.5, "end time": 11.0,
                                      "split": split, "id": index})
        for text in captions_for(index):
            files[name]["sentences"].append({"caption": text, "video_id": vid,
                                             "sen_id": sen_id})
            sen_id += 1
        if vid != MSRVTT_MISSING:
            folder = "TestVideo" if split == "test" else "TrainValVideo"
            clip(root / folder / f"{vid}.mp4")
    for name, data in files.items():
        (root / name).write_text(json.dumps(data))
    return root


VATEX_FILES = {
    "vatex_training_v1.0.json": ["Ptf_2VRj-V0_000122_000132", "a-b_c_000001_000011",
                                 "Zz9-_q_000010_000020"],
    "vatex_validation_v1.0.json": ["val-_x1_000000_000010"],
    "vatex_public_test_english_v1.1.json": ["tst_A-1_000005_000015", "tst_B-2_000003_000013",
                                            "dead-link_000000_000010"],
}
VATEX_MISSING = "dead-link_000000_000010"
VATEX_BROKEN = "Zz9-_q_000010_000020"  # on disk but not a video: fails to decode
VATEX_TEST = ["tst_A-1_000005_000015", "tst_B-2_000003_000013"]


def write_vatex(root: Path) -> Path:
    """VATEX: the three JSON lists ({videoID, enCap, chCap}) and videos/<videoID>.mp4."""
    root.mkdir(parents=True)
    index = 0
    for name, ids in VATEX_FILES.items():
        entries = []
        for vid in ids:
            entries.append({"videoID": vid, "enCap": captions_for(index),
                            "chCap": ["一个男人在弹吉他。"]})
            if vid == VATEX_BROKEN:
                (root / "videos" / f"{vid}.mp4").write_bytes(b"not a video at all")
            elif vid != VATEX_MISSING:
                clip(root / "videos" / f"{vid}.mp4")
            index += 1
        (root / name).write_text(json.dumps(entries, ensure_ascii=False))
    return root


WRITERS = {"msvd": write_msvd, "msrvtt": write_msrvtt, "vatex": write_vatex}
TEST_SPLITS = {"msvd": MSVD_TEST, "msrvtt": MSRVTT_TEST, "vatex": VATEX_TEST}
MISSING = {"msvd": MSVD_MISSING, "msrvtt": MSRVTT_MISSING, "vatex": VATEX_MISSING}
TINY = [
    "--set", "extract.encoder.name=tiny", "--set", "extract.workers=1",
    "--set", "train.epochs=1", "--set", "train.batch_size=8",
    "--set", "train.model.hidden_size=16", "--set", "train.model.embed_size=8",
    "--set", "train.save_every_steps=0",
]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("datasets")
    return {name: writer(base / name) for name, writer in WRITERS.items()}


@pytest.fixture(scope="module")
def runs(datasets, tmp_path_factory) -> dict[str, Path]:
    """Each benchmark's recipe run once (shared by the tests that inspect run folders)."""
    base = tmp_path_factory.mktemp("runs")
    outs = {}
    for name, root in datasets.items():
        out = base / name
        # The official protocol (Java: PTB tokenizer + METEOR 1.5) on MSVD; the others
        # score without Java, which keeps this file fast on a busy 2-core machine.
        fast = [] if name == "msvd" else ["--no-java", "--beam-size", "1"]
        assert main(["run", name, "--root", str(root), "--out", str(out), "--no-progress",
                     *TINY, *fast]) == 0
        outs[name] = out
    return outs


# ----------------------------------------------------------------------------- s2vt run
@pytest.mark.parametrize("name", sorted(WRITERS))
def test_run_writes_scores_predictions_report_and_lists_the_missing_clip(name, runs):
    out = runs[name]
    scores = json.loads((out / "test" / "scores.json").read_text())
    expected = set(METRIC_KEYS) if name == "msvd" else set(METRIC_KEYS) - {"METEOR"}
    assert expected <= set(scores)
    assert all(0.0 <= scores[key] <= 10.0 for key in expected)
    assert scores["settings"]["official"] is (name == "msvd")
    assert scores["settings"]["split"] == "test"
    assert scores["settings"]["num_skipped"] == 1
    predictions = json.loads((out / "test" / "predictions.json").read_text())
    assert sorted(p["video_id"] for p in predictions) == sorted(TEST_SPLITS[name])
    assert all(isinstance(p["caption"], str) for p in predictions)
    assert "<html" in (out / "test" / "report.html").read_text().lower()

    missing = json.loads((out / "missing.json").read_text())
    assert missing["count"] == 1
    assert missing["videos"] == [{"video_id": MISSING[name], "split": "test"}]
    stored = list((out / "features").glob("*.npy"))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["counts"]["clips_missing"] == 1
    assert summary["counts"]["test_videos_scored"] == 2
    assert summary["counts"]["epochs"] == 1
    assert summary["counts"]["clips_found"] == 6
    broken = 1 if name == "vatex" else 0
    assert summary["counts"]["clips_failed"] == broken
    assert len(stored) == 6 - broken
    if broken:
        assert [f["video_id"] for f in summary["failed"]] == [VATEX_BROKEN]
    assert (out / "model" / "model.safetensors").is_file()


def test_run_features_cover_exactly_the_loaders_ids(datasets, runs):
    for name, root in datasets.items():
        ids = sorted(v.video_id for v in load_annotations(root, name).videos)
        stored = sorted(json.loads(p.read_text())["video_id"]
                        for p in (runs[name] / "features").glob("*.json")
                        if p.name not in ("meta.json",) and not p.name.startswith("."))
        assert MISSING[name] not in ids
        if name == "vatex":  # the undecodable clip is recorded as a failure instead
            assert VATEX_BROKEN in ids
            ids.remove(VATEX_BROKEN)
        assert stored == ids


def test_rerun_reuses_every_stage_and_prints_the_summary(datasets, runs, capsys):
    out = runs["msvd"]
    before = (out / "test" / "scores.json").read_text()
    assert main(["run", "msvd", "--root", str(datasets["msvd"]), "--out", str(out),
                 "--no-progress", *TINY]) == 0
    printed = capsys.readouterr().out
    assert "stages: extract reused, train reused, evaluate reused" in printed
    assert "6 clips found, 1 missing" in printed
    assert "METEOR" in printed and "29.2" in printed  # the paper's number beside ours
    assert f"missing clips: 1: {MSVD_MISSING} (all listed in" in printed
    assert (out / "test" / "scores.json").read_text() == before


def test_interrupted_run_resumes_and_reuses_the_finished_stages(datasets, runs, tmp_path,
                                                                 monkeypatch, capsys):
    import s2vt.training

    out = tmp_path / "run"
    shutil.copytree(runs["msrvtt"], out)
    args = ["run", "msrvtt", "--root", str(datasets["msrvtt"]), "--out", str(out),
            "--no-progress", "--no-java", "--beam-size", "1", *TINY, "--set", "train.seed=7"]

    def killed(config, features, annotations, model_dir, **kwargs):
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        (Path(model_dir) / "metrics.jsonl").write_text("")
        raise KeyboardInterrupt  # Ctrl-C before the first saved training state

    with monkeypatch.context() as patch:
        patch.setattr(s2vt.training, "train", killed)
        assert main(args) == 130
    capsys.readouterr()
    assert main(args) == 0
    assert "stages: extract reused, train ran, evaluate ran" in capsys.readouterr().out
    assert (out / "model" / "train_state.pt").is_file()
    assert (out / "test" / "scores.json").is_file()


def test_run_errors_are_one_line(tmp_path, datasets, capsys):
    assert main(["run", "msvd", "--root", str(tmp_path / "nope"), *TINY]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["run", "msvd", "--root", str(datasets["msvd"]), "--set", "model.x=1"]) == 2
    assert "run override 'model.x=1' must start with one of extract, train" in \
        capsys.readouterr().err
    # Annotations without any clip: nothing to extract, say where clips were looked for.
    only = tmp_path / "msrvtt_annotations"
    only.mkdir()
    for name in ("train_val_videodatainfo.json", "test_videodatainfo.json"):
        (only / name).write_bytes((datasets["msrvtt"] / name).read_bytes())
    assert main(["run", "msrvtt", "--root", str(only), "--out", str(tmp_path / "r"),
                 *TINY]) == 2
    assert "have no clip file" in capsys.readouterr().err
    # The MSVD recipe on an MSR-VTT folder: the loader names what it expected.
    assert main(["run", "msvd", "--root", str(datasets["msrvtt"]), "--out",
                 str(tmp_path / "r2"), *TINY]) == 2
    assert "no MSVD annotation file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "bogus", "--root", str(tmp_path)])


# ----------------------------------------------------------------------------- s2vt score
def _score(tmp_path: Path, predictions: dict[str, str], references: Path,
           *extra: str) -> dict:
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps([{"video_id": k, "caption": v} for k, v in predictions.items()]))
    out = tmp_path / "scores.json"
    assert main(["score", "--predictions", str(pred), "--references", str(references),
                 "--split", "test", "--out", str(out), "--no-java", *extra]) == 0
    return json.loads(out.read_text())


def _test_predictions(name: str, root: Path) -> dict[str, str]:
    """A prediction per test video of the official split (the missing clip included)."""
    refs = load_annotations(root, name, keep_missing=True).split("test").references()
    return {vid: captions[0] for vid, captions in refs.items()}


SCORE_PATHS = {
    "msvd": ("AllVideoDescriptions.txt", "MSR Video Description Corpus.csv"),
    "msrvtt": ("test_videodatainfo.json",),
    "vatex": ("vatex_public_test_english_v1.1.json",),
}


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_score_accepts_each_benchmarks_file_or_folder(name, datasets, tmp_path):
    root = datasets[name]
    predictions = _test_predictions(name, root)
    assert sorted(predictions) == sorted([*TEST_SPLITS[name], MISSING[name]])
    for references in (root, *(root / p for p in SCORE_PATHS[name])):
        for extra in ((), ("--format", name)):
            scores = _score(tmp_path, predictions, references, *extra)
            assert scores["CIDEr"] > 1.0  # every prediction is one of its references
            assert scores["BLEU-4"] > 0.9
            assert scores["settings"]["split"] == "test"


def test_score_msvd_predictions_keyed_by_vid_number(datasets, tmp_path, capsys):
    root = datasets["msvd"]
    by_key = _test_predictions("msvd", root)
    numbers = dict(MSVD_CLIPS)
    by_vid = {f"vid{numbers[key]}": caption for key, caption in by_key.items()}
    assert sorted(by_vid) == ["vid1301", "vid1302", "vid1303"]
    assert _score(tmp_path, by_vid, root) == _score(tmp_path, by_key, root) | {
        "settings": _score(tmp_path, by_vid, root)["settings"]}
    # The same clip under both names is refused, not silently counted once.
    both = dict(by_vid, **{MSVD_TEST[0]: "a man"})
    pred = tmp_path / "both.json"
    pred.write_text(json.dumps(both))
    assert main(["score", "--predictions", str(pred), "--references", str(root),
                 "--no-java"]) == 2
    assert "predicted twice" in capsys.readouterr().err
    # A prediction for a training clip is outside the test split.
    pred.write_text(json.dumps(dict(by_vid, vid1="a man")))
    assert main(["score", "--predictions", str(pred), "--references", str(root),
                 "--no-java"]) == 2
    assert "not in split 'test'" in capsys.readouterr().err


def test_score_official_split_needs_the_missing_clip_too(datasets, tmp_path, capsys):
    root = datasets["vatex"]
    predictions = _test_predictions("vatex", root)
    del predictions[VATEX_MISSING]
    pred = tmp_path / "p.json"
    pred.write_text(json.dumps(predictions))
    assert main(["score", "--predictions", str(pred), "--references", str(root),
                 "--no-java"]) == 2
    assert "have no prediction" in capsys.readouterr().err


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_benchmark_configs_load_into_the_stage_dataclasses(name):
    extract_config, train_config = load_stage_configs(BENCHMARKS[name], RunSettings())
    assert isinstance(extract_config, ExtractConfig)
    assert isinstance(train_config, TrainConfig)
    assert (train_config.model.name, train_config.model.hidden_size,
            train_config.model.embed_size, train_config.model.dropout,
            train_config.model.max_frames) == ("s2vt", 1000, 500, 0.5, 80)
    assert train_config.model.feature_dim == 0
    if name == "msvd":  # the paper: VGG16 fc7 of every 10th frame, at most 80 frames
        assert extract_config.encoder.name == "vgg16"
        assert (extract_config.sampling.mode, extract_config.sampling.stride,
                extract_config.sampling.max_frames) == ("stride", 10, 80)
    else:
        assert extract_config.encoder.name == "resnet152"
        assert extract_config.encoder.pool == "avg"


def test_run_overrides_reach_the_configs():
    settings = RunSettings(overrides={"extract": ["encoder.weights=/w/vgg16.pth"],
                                      "train": ["epochs=3", "optimizer.lr=0.001"]})
    extract_config, train_config = load_stage_configs(BENCHMARKS["msvd"], settings)
    assert extract_config.encoder.weights == "/w/vgg16.pth"
    assert (train_config.epochs, train_config.optimizer.lr) == (3, 0.001)


# ----------------------------------------------------------------------------- recipe cache
def test_step_resume_on_updates_in_place_and_other_changes_rebuild(tmp_path):
    out = tmp_path / "features"
    calls: list[bool] = []

    def action(resume: bool) -> None:
        calls.append(resume)
        out.mkdir(exist_ok=True)
        (out / f"run{len(calls)}").write_text("x")

    def step(videos: str, encoder: str) -> Step:
        return Step("extract", out, {"encoder": encoder, "videos": videos}, action,
                    resume_on=("videos",))

    assert run_step(step("a", "tiny")) is True
    assert run_step(step("a", "tiny")) is False          # up to date: reused
    assert run_step(step("a+b", "tiny")) is True         # new clips: added in place
    assert calls == [False, True]
    assert sorted(p.name for p in out.iterdir()) == ["run1", "run2"]
    assert run_step(step("a+b", "vgg16")) is True        # other features: from scratch
    assert calls == [False, True, False]
    assert sorted(p.name for p in out.iterdir()) == ["run3"]
