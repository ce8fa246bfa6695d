"""Caption metrics: known values, id checks, the no-Java path, awkward captions, and
equality with calling pycocoevalcap directly."""

from __future__ import annotations

import json
import logging
import math
import subprocess

import pytest

from s2vt import metrics
from s2vt.errors import S2VTError
from s2vt.metrics import METRIC_KEYS, score, score_captions, write_scores

# Distinct sentences (so CIDEr's idf is not zero), all with >= 4 words.
SENTENCES = {
    "v1": "a man is playing a guitar",
    "v2": "a woman is slicing an onion",
    "v3": "a red circle moves to the left",
    "v4": "two dogs run across the green field",
    "v5": "a child rides a bicycle down the street",
}


def test_identical_captions_score_one_with_java() -> None:
    refs = {vid: [text, text.replace("a ", "one ", 1)] for vid, text in SENTENCES.items()}
    result = score_captions(dict(SENTENCES), refs, java=True)
    assert set(result.scores) == set(METRIC_KEYS)
    for n in range(1, 5):
        assert result.scores[f"BLEU-{n}"] == pytest.approx(1.0, abs=1e-6)
    assert result.scores["ROUGE-L"] == pytest.approx(1.0)
    # METEOR keeps a small fragmentation penalty even for a perfect single chunk.
    assert result.scores["METEOR"] > 0.95
    assert result.scores["CIDEr"] > 1.0
    assert set(result.per_video) == set(SENTENCES)
    assert all(v["BLEU-4"] == pytest.approx(1.0, abs=1e-6) for v in result.per_video.values())
    assert result.settings["official"] is True
    assert "METEOR 1.5" in result.settings["meteor"]
    assert result.settings["num_videos"] == 5


def test_identical_captions_score_one_without_java() -> None:
    refs = {vid: [text] for vid, text in SENTENCES.items()}
    scores = score(dict(SENTENCES), refs, java=False)
    assert scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert scores["ROUGE-L"] == pytest.approx(1.0)
    assert "METEOR" not in scores


def test_disjoint_captions_score_zero() -> None:
    preds = {vid: "zebra xylophone quartz volcano jumps" for vid in SENTENCES}
    refs = {vid: [text] for vid, text in SENTENCES.items()}
    scores = score(preds, refs, java=False)
    for key in ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"):
        assert scores[key] == pytest.approx(0.0, abs=1e-6), key


def test_mismatched_ids_name_both_sides() -> None:
    preds = {"a": "x y", "b": "x y", "extra1": "x", "extra2": "x"}
    refs = {"a": ["x y"], "b": ["x y"], "gone": ["x y"]}
    with pytest.raises(S2VTError) as info:
        score(preds, refs, java=False)
    message = str(info.value)
    assert "2 predicted video(s) have no references" in message
    assert "extra1" in message and "extra2" in message
    assert "1 referenced video(s) have no prediction" in message and "gone" in message


def test_empty_reference_list_and_non_string_caption_are_errors() -> None:
    with pytest.raises(S2VTError, match="empty reference list"):
        score({"a": "x"}, {"a": []}, java=False)
    with pytest.raises(S2VTError, match="not a string"):
        score({"a": None}, {"a": ["x"]}, java=False)  # type: ignore[dict-item]
    with pytest.raises(S2VTError, match="nothing to score"):
        score({}, {}, java=False)


def test_java_false_never_starts_a_process(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args, **kwargs):
        raise AssertionError("java=False must not start a subprocess")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(subprocess, "run", forbidden)
    scores = score({"v": "a man runs fast"}, {"v": ["a man runs fast"]}, java=False)
    assert scores["BLEU-1"] == pytest.approx(1.0)


def test_without_java_meteor_is_omitted_and_never_mislabelled(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(metrics.shutil, "which", lambda name, *a, **k: None)

    def forbidden(*args, **kwargs):
        raise AssertionError("no Java: nothing may try to run it")

    monkeypatch.setattr(subprocess, "Popen", forbidden)
    monkeypatch.setattr(subprocess, "run", forbidden)
    refs = {vid: [text] for vid, text in SENTENCES.items()}
    with caplog.at_level(logging.WARNING, logger="s2vt.metrics"):
        result = score_captions(dict(SENTENCES), refs)  # java=None: auto
    assert "METEOR" not in result.scores
    assert not any("meteor" in key.lower() for key in result.scores)
    assert result.scores["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert {"BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr"} <= set(result.scores)
    assert result.settings["official"] is False
    assert "omitted" in result.settings["meteor"]
    assert "apt-get install default-jre-headless" in caplog.text
    with pytest.raises(S2VTError, match="apt-get install default-jre-headless"):
        score(dict(SENTENCES), refs, java=True)


def test_awkward_captions_go_through_meteor() -> None:
    preds = {
        "empty": "",
        "pipes": "a man ||| plays|||guitar",
        "newline": "a woman\nslices an onion\r\nquickly",
        "punct": "...",
        "unicode": "un café brûlé est servi",
        "same": "a child rides a bicycle down the street",
        "disjoint": "zebra xylophone quartz volcano",
    }
    refs = {
        "empty": ["a dog runs", ""],
        "pipes": ["a man plays the guitar ||| loudly", "someone\nplays guitar"],
        "newline": ["a woman slices an onion quickly"],
        "punct": ["a cat sits", "!!!"],
        "unicode": ["un café est servi"],
        "same": ["a child rides a bicycle down the street"],
        "disjoint": ["a red circle moves to the left"],
    }
    result = score_captions(preds, refs, java=True)
    assert set(result.scores) == set(METRIC_KEYS)
    assert all(math.isfinite(v) for v in result.scores.values())
    assert set(result.per_video) == set(preds)
    assert result.per_video["same"]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)
    assert result.per_video["same"]["METEOR"] > 0.9
    assert result.per_video["disjoint"]["BLEU-4"] == pytest.approx(0.0, abs=1e-6)
    assert result.per_video["disjoint"]["METEOR"] == 0.0
    assert result.per_video["empty"]["METEOR"] == 0.0
    # The newline caption is one sentence: it matches its reference word for word.
    assert result.per_video["newline"]["BLEU-4"] == pytest.approx(1.0, abs=1e-6)


def test_matches_pycocoevalcap_called_directly() -> None:
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    preds = {
        "video1": "A man is playing a guitar.",
        "video2": "a woman slices an onion",
        "video3": "The cat's jumping!",
        "video4": "a dog runs on the grass",
        "video5": "two people are talking",
    }
    refs = {
        "video1": ["a man plays the guitar", "A man is playing guitar.", "someone plays music"],
        "video2": ["someone is cutting an onion", "a woman is slicing onions"],
        "video3": ["a cat jumps", "the cat is jumping over a box"],
        "video4": ["a dog is running", "dogs run on grass", "A dog runs."],
        "video5": ["two men talk", "people are having a conversation"],
    }
    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in refs.items()})
    res = tokenizer.tokenize({k: [{"caption": v}] for k, v in preds.items()})
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected = {f"BLEU-{n + 1}": bleu[n] for n in range(4)}
    expected["METEOR"] = Meteor().compute_score(gts, res)[0]
    expected["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    expected["CIDEr"] = Cider().compute_score(gts, res)[0]

    ours = score(preds, refs, java=True)
    assert ours == {key: float(value) for key, value in expected.items()}
    assert 0.0 < ours["METEOR"] < 1.0


def test_write_scores_json(tmp_path) -> None:
    path = tmp_path / "out" / "scores.json"
    write_scores(path, {"BLEU-4": 0.5, "CIDEr": 1.25}, {"split": "test", "official": True})
    data = json.loads(path.read_text())
    assert data == {"BLEU-4": 0.5, "CIDEr": 1.25, "settings": {"split": "test", "official": True}}


def test_format_table_orders_metrics() -> None:
    table = metrics.format_table({"CIDEr": 1.5, "BLEU-1": 0.25, "attr_motion": 0.5})
    lines = table.splitlines()
    assert lines[2].startswith("BLEU-1") and "0.2500" in lines[2]
    assert lines[3].startswith("CIDEr")
    assert lines[4].startswith("attr_motion")


def test_one_spelling_of_every_metric_name() -> None:
    """scores.json keeps the paper's names; validation, reports and recipes use the same."""
    import typing

    from s2vt.pipelines.benchmarks import SUMMARY_METRICS
    from s2vt.pipelines.synthetic import TABLE_METRICS
    from s2vt.report import CARD_METRICS
    from s2vt.synth_attributes import ATTRIBUTE_KEYS
    from s2vt.training import TrainConfig

    assert METRIC_KEYS == ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr")
    assert metrics.NO_JAVA_KEYS == ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "CIDEr")
    # Validation scores without Java, so it can pick any metric but METEOR.
    val_metric = typing.get_type_hints(TrainConfig)["val_metric"]
    assert set(typing.get_args(val_metric)) == set(metrics.NO_JAVA_KEYS)
    assert set(CARD_METRICS) <= set(METRIC_KEYS) and set(SUMMARY_METRICS) == set(METRIC_KEYS)
    assert set(TABLE_METRICS) <= {*METRIC_KEYS, *ATTRIBUTE_KEYS}
    assert ATTRIBUTE_KEYS == ("attr_color", "attr_shape", "attr_motion")
    per_video = score_captions({"a": "a red circle moves left"},
                               {"a": ["a red circle moves to the left"]}, java=False).per_video
    assert set(per_video["a"]) == set(metrics.NO_JAVA_KEYS)
