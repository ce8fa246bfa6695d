"""The score and evaluate stages and the HTML report, run in-process on tiny data."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from s2vt.cli import main
from s2vt.errors import S2VTError
from s2vt.evaluation import load_predictions, score_split
from s2vt.metrics import NO_JAVA_KEYS
from s2vt.report import ReportItem, group_items, render_report

FEATURE_DIM = 8
SAMPLING = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}
ENCODER = {"name": "tiny", "weights": None, "pool": "avg", "image_size": 32, "precision": "fp32"}


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic benchmark (real clips, ground-truth attributes): annotations.json."""
    from s2vt.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth"), num_videos=30, seed=0)


def _split_ids(annotations: Path, split: str) -> list[str]:
    data = json.loads(annotations.read_text())
    return [v["video_id"] for v in data["videos"] if v["split"] == split]


def _first_references(annotations: Path, split: str) -> dict[str, str]:
    data = json.loads(annotations.read_text())
    ids = set(_split_ids(annotations, split))
    first: dict[str, str] = {}
    for sentence in data["sentences"]:
        if sentence["video_id"] in ids:
            first.setdefault(sentence["video_id"], sentence["caption"])
    return first


def _make_store(root: Path, ids: list[str], dim: int = FEATURE_DIM) -> Path:
    from s2vt.features import FeatureStore

    store = FeatureStore.create(root, {"feature_dim": dim, "encoder": ENCODER,
                                       "image_size": 32, "sampling": SAMPLING})
    rng = np.random.default_rng(0)
    for vid in ids:
        store.write(vid, rng.standard_normal((5, dim)), np.arange(5), np.arange(5) / 10.0)
    return root


def _make_model_dir(root: Path, annotations: Path, dim: int = FEATURE_DIM) -> Path:
    import torch

    from s2vt.checkpoint import save_model_dir
    from s2vt.models import build_model
    from s2vt.models.config import ModelConfig
    from s2vt.text import Vocabulary

    captions = [s["caption"] for s in json.loads(annotations.read_text())["sentences"]]
    vocab = Vocabulary.build(captions)
    config = ModelConfig(feature_dim=dim, vocab_size=len(vocab), embed_size=8, hidden_size=8,
                         dropout=0.0, max_frames=8)
    torch.manual_seed(0)
    model = build_model(config)
    save_model_dir(root, model, config, vocab, encoder_spec=ENCODER, sampling=SAMPLING)
    return root


# --------------------------------------------------------------------------- score
def test_score_cli_list_and_mapping_formats(
    synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    preds = _first_references(synth_data, "test")
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps([{"video_id": k, "caption": v} for k, v in preds.items()]))
    assert main(["score", "--predictions", str(as_list), "--references", str(synth_data),
                 "--no-java"]) == 0
    scores = json.loads((tmp_path / "scores.json").read_text())
    assert scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["attr_color"] == scores["attr_shape"] == scores["attr_motion"] == 1.0
    assert scores["settings"]["split"] == "test"
    assert scores["settings"]["num_videos"] == len(preds)
    assert "BLEU-4" in capsys.readouterr().out

    as_map = tmp_path / "map.json"
    as_map.write_text(json.dumps(preds))
    out = tmp_path / "elsewhere" / "s.json"
    assert main(["score", "--predictions", str(as_map), "--references", str(synth_data),
                 "--no-java", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["BLEU-4"] == scores["BLEU-4"]


def test_score_cli_names_missing_and_foreign_predictions(
    synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    preds = _first_references(synth_data, "test")
    dropped = sorted(preds)[0]
    del preds[dropped]
    foreign = _split_ids(synth_data, "train")[0]
    preds[foreign] = "a red circle"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(preds))
    assert main(["score", "--predictions", str(path), "--references", str(synth_data),
                 "--no-java"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "1 prediction(s) are for videos not in split 'test'" in err and foreign in err
    assert "have no prediction" in err and dropped in err
    assert not (tmp_path / "scores.json").exists()


def test_load_predictions_rejects_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps([{"video_id": "a", "caption": "x"},
                                {"video_id": "a", "caption": "y"}]))
    with pytest.raises(S2VTError, match="predicted twice"):
        load_predictions(path)
    path.write_text(json.dumps([{"video": "a", "caption": "x"}]))
    with pytest.raises(S2VTError, match="needs 'video_id'"):
        load_predictions(path)
    path.write_text("{not json")
    with pytest.raises(S2VTError, match="cannot read predictions"):
        load_predictions(path)
    with pytest.raises(S2VTError, match="not found"):
        load_predictions(tmp_path / "nope.json")


def test_score_split_attribute_accuracy_counts_wrong_words(synth_data: Path) -> None:
    from s2vt.datasets import load_annotations

    annotations = load_annotations(synth_data)
    preds = _first_references(synth_data, "test")
    # One caption names no attribute words at all: that video is wrong on all three.
    wrong = sorted(preds)[0]
    preds[wrong] = "something happens"
    result = score_split(preds, annotations, split="test", java=False)
    expected = (len(preds) - 1) / len(preds)
    for kind in ("color", "shape", "motion"):
        assert result.scores[f"attr_{kind}"] == pytest.approx(expected)


def test_score_split_adds_whatever_the_dataset_scorer_offers(synth_data: Path) -> None:
    from s2vt.datasets import load_annotations

    annotations = load_annotations(synth_data)
    preds = _first_references(synth_data, "test")

    class Counting:
        def __init__(self) -> None:
            self.seen: list[str] = []

        def scores(self, predictions):
            self.seen = sorted(predictions)
            return {"extra_words": float(sum(len(c.split()) for c in predictions.values()))}

        def checks(self, video_id, caption):
            return {}

    scorer = Counting()
    annotations.scorer = scorer
    result = score_split(preds, annotations, split="test", java=False)
    assert scorer.seen == sorted(preds)
    assert result.scores["extra_words"] == sum(len(c.split()) for c in preds.values())
    assert not any(key.startswith("attr_") for key in result.scores)
    annotations.scorer = None
    plain = score_split(preds, annotations, split="test", java=False)
    assert set(plain.scores) == set(NO_JAVA_KEYS)


# --------------------------------------------------------------------------- evaluate
def test_evaluate_writes_predictions_scores_and_report(synth_data: Path, tmp_path: Path) -> None:
    test_ids = _split_ids(synth_data, "test")
    store = _make_store(tmp_path / "features", test_ids)
    model = _make_model_dir(tmp_path / "model", synth_data)
    out = tmp_path / "eval"
    code = main(["evaluate", "--model", str(model), "--features", str(store),
                 "--annotations", str(synth_data), "--split", "test", "--out", str(out),
                 "--beam-size", "2", "--batch-size", "3"])
    assert code == 0
    predictions = {p["video_id"]: p["caption"]
                   for p in json.loads((out / "predictions.json").read_text())}
    assert sorted(predictions) == sorted(test_ids)
    # Each caption is the model's own for that video's features (batches of 3 change nothing).
    from s2vt.captioner import Captioner
    from s2vt.features import FeatureStore

    captioner = Captioner.from_pretrained(model, beam_size=2)
    features = FeatureStore.open(store)
    assert predictions == {vid: captioner.caption_features([features.read(vid).features])[0]
                           for vid in test_ids}

    # The scores are those of exactly these captions against the test split's references,
    # with the official protocol, and the attribute accuracy of exactly these captions.
    from s2vt.datasets import load_annotations
    from s2vt.metrics import METRIC_KEYS, score_captions
    from s2vt.synth_attributes import ATTRIBUTE_KEYS, attribute_accuracy

    scores = json.loads((out / "scores.json").read_text())
    test = load_annotations(synth_data).split("test")
    expected = score_captions(predictions, test.references(), java=True).scores
    assert set(scores) == {*METRIC_KEYS, *ATTRIBUTE_KEYS, "settings"}
    for key in METRIC_KEYS:
        assert scores[key] == pytest.approx(expected[key], abs=1e-9), key
        assert 0.0 <= scores[key] <= (10.0 if key == "CIDEr" else 1.0), key
    accuracy = attribute_accuracy(predictions, test.videos)
    for kind, value in accuracy.items():
        assert scores[f"attr_{kind}"] == pytest.approx(value, abs=1e-12), kind
    settings = scores["settings"]
    assert settings["split"] == "test" and settings["beam_size"] == 2
    assert settings["official"] is True and settings["num_skipped"] == 0

    page = (out / "report.html").read_text()
    assert page.count('class="card"') == len(test_ids)
    # Every video has a real clip: one thumbnail strip each, four JPEG frames per strip.
    assert page.count("data:image/jpeg;base64,") == 4 * len(test_ids)
    assert 'class="noframes"' not in page
    # The synthetic set's attribute checks: three labels per card, right or wrong as scored.
    assert page.count('<div class="attr">') == len(test_ids)
    right = sum(round(scores[key] * len(test_ids)) for key in ATTRIBUTE_KEYS)
    assert page.count('class="ok"') == right
    assert page.count('class="bad"') == 3 * len(test_ids) - right
    for heading in ("Best third", "Middle third", "Worst third"):
        assert heading in page
    assert "ranked by their own <b>METEOR</b>" in page
    assert "<script" not in page.lower()
    assert "http://" not in page and "https://" not in page  # nothing fetched from a network


def test_evaluate_missing_features_error_or_skip(synth_data: Path, tmp_path: Path) -> None:
    test_ids = _split_ids(synth_data, "test")
    store = _make_store(tmp_path / "features", test_ids[1:])
    model = _make_model_dir(tmp_path / "model", synth_data)
    args = ["evaluate", "--model", str(model), "--features", str(store), "--annotations",
            str(synth_data), "--out", str(tmp_path / "eval"), "--no-java", "--beam-size", "1"]
    with pytest.raises(S2VTError, match=rf"1 of {len(test_ids)} videos .* no features.*"
                                        rf"{test_ids[0]}.*--skip-missing"):
        from s2vt.evaluation import evaluate

        evaluate(model, store, synth_data, tmp_path / "eval", java=False)
    assert main(args + ["--skip-missing", "--no-report"]) == 0
    scores = json.loads((tmp_path / "eval" / "scores.json").read_text())
    assert scores["settings"]["num_skipped"] == 1
    assert scores["settings"]["skipped"] == [test_ids[0]]
    assert scores["settings"]["num_videos"] == len(test_ids) - 1
    assert "METEOR" not in scores
    assert not (tmp_path / "eval" / "report.html").exists()


def test_evaluate_refuses_features_of_another_dimension(
    synth_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    store = _make_store(tmp_path / "features", _split_ids(synth_data, "test"), dim=6)
    model = _make_model_dir(tmp_path / "model", synth_data)
    code = main(["evaluate", "--model", str(model), "--features", str(store), "--annotations",
                 str(synth_data), "--out", str(tmp_path / "eval"), "--no-java"])
    assert code == 2
    err = capsys.readouterr().err
    assert "dimension 6" in err and "expects 8" in err
    assert not (tmp_path / "eval" / "predictions.json").exists()


# --------------------------------------------------------------------------- report
def test_report_escapes_captions_and_embeds_frames(
    make_video: Callable[..., Path], tmp_path: Path
) -> None:
    clip = make_video("clip.mp4", num_frames=12, width=96, height=64)
    items = [
        ReportItem("good", "<script>alert('x')</script> & a dog", ["a <b>dog</b> runs"],
                   {"BLEU-4": 0.9, "METEOR": 0.8, "CIDEr": 2.0}, clip,
                   checks={"motion": (False, "said up, is <left>")}),
        ReportItem("gone<img>", "", ["x"], {"BLEU-4": 0.0, "METEOR": 0.1, "CIDEr": 0.0},
                   tmp_path / "missing.mp4"),
        ReportItem("nofile", "a cat", ["a cat"], {"BLEU-4": 0.5, "METEOR": 0.4, "CIDEr": 1.0},
                   None),
    ]
    page = render_report(items, {"BLEU-4": 0.5}, {"model": "m<1>", "beam_size": 5},
                         rank_metric="METEOR", num_frames=3, thumb_size=48)
    assert page.startswith("<!DOCTYPE html>")
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "a &lt;b&gt;dog&lt;/b&gt; runs" in page and "is &lt;left&gt;" in page
    assert "gone&lt;img&gt;" in page and "m&lt;1&gt;" in page
    assert page.count("data:image/jpeg;base64,") == 3
    assert "video not found" in page and "no video file known" in page
    assert "(empty caption)" in page
    # Order on the page follows METEOR: good (best) before nofile before gone (worst).
    assert page.index(">good<") < page.index(">nofile<") < page.index(">gone&lt;img&gt;<")


def test_report_thumbnails_decode_as_jpeg(make_video: Callable[..., Path]) -> None:
    import base64
    import io

    from PIL import Image

    from s2vt.report import thumbnails

    uris = thumbnails(make_video("c.mp4", num_frames=10, width=80, height=60), 2, 40)
    assert len(uris) == 2
    image = Image.open(io.BytesIO(base64.b64decode(uris[0].split(",", 1)[1])))
    assert image.format == "JPEG" and image.size == (40, 40)


def test_group_items_thirds_by_rank_metric() -> None:
    items = [ReportItem(f"v{i}", "c", ["r"], {"CIDEr": float(i)}) for i in range(7)]
    groups = group_items(items, "CIDEr")
    assert [i.video_id for i in groups["best"]] == ["v6", "v5", "v4"]
    assert [i.video_id for i in groups["middle"]] == ["v3", "v2"]
    assert [i.video_id for i in groups["worst"]] == ["v1", "v0"]
    one = group_items(items[:1], "CIDEr")
    assert len(one["best"]) == 1 and not one["middle"] and not one["worst"]


def test_report_renders_in_headless_browser_when_available(tmp_path: Path) -> None:
    """With Chromium installed, the page loads from disk and its images decode; without it,
    the page is checked to be a complete document that references nothing external."""
    items = [ReportItem("v", "a cat", ["a cat"], {"CIDEr": 1.0}, None)]
    page = render_report(items, {"CIDEr": 1.0}, {}, rank_metric="CIDEr")
    path = tmp_path / "report.html"
    path.write_text(page)
    browser = next((shutil.which(name) for name in ("chromium", "chromium-browser",
                                                     "google-chrome") if shutil.which(name)),
                   None)
    if browser is not None:
        import subprocess

        shot = tmp_path / "shot.png"
        subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox",
                        f"--screenshot={shot}", path.as_uri()], check=True, timeout=60,
                       capture_output=True)
        assert shot.stat().st_size > 0
    assert page.rstrip().endswith("</html>")
    assert "src=\"http" not in page and "<link" not in page
