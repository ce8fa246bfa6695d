"""The recipe cache and the demo recipe, end to end on a tiny synthetic set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2vt.cli import main
from s2vt.datasets import load_annotations
from s2vt.errors import ConfigError
from s2vt.evaluation import score_split
from s2vt.metrics import METRIC_KEYS
from s2vt.pipelines.recipe import Step, run_step
from s2vt.pipelines.synthetic import (
    MODELS,
    SPLITS,
    TABLE_METRICS,
    DemoSettings,
    run_demo,
    split_stage_overrides,
)
from s2vt.synth_attributes import ATTRIBUTE_KEYS


def _counting_step(out: Path, key: dict, calls: list[bool]) -> Step:
    def action(resume: bool) -> None:
        calls.append(resume)
        out.mkdir(parents=True, exist_ok=True)
        (out / "artifact.txt").write_text(json.dumps(key))

    return Step("count", out, key, action)


def test_step_runs_once_then_reuses(tmp_path: Path) -> None:
    calls: list[bool] = []
    assert run_step(_counting_step(tmp_path / "a", {"x": 1}, calls)) is True
    assert run_step(_counting_step(tmp_path / "a", {"x": 1}, calls)) is False
    assert calls == [False]


def test_step_rebuilds_when_key_changes(tmp_path: Path) -> None:
    calls: list[bool] = []
    run_step(_counting_step(tmp_path / "a", {"x": 1}, calls))
    (tmp_path / "a" / "stale.txt").write_text("old output")
    assert run_step(_counting_step(tmp_path / "a", {"x": 2}, calls)) is True
    assert calls == [False, False]
    assert not (tmp_path / "a" / "stale.txt").exists(), "old output must be cleared"


def test_interrupted_step_resumes_with_same_key(tmp_path: Path) -> None:
    out = tmp_path / "a"

    def crash(resume: bool) -> None:
        out.mkdir()
        (out / "partial.txt").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_step(Step("crash", out, {"x": 1}, crash))
    calls: list[bool] = []
    assert run_step(_counting_step(out, {"x": 1}, calls)) is True
    assert calls == [True], "same key after an interruption -> the stage resumes"
    assert (out / "partial.txt").exists(), "finished partial work is kept for the stage"


def test_recipes_are_installed_under_the_s2vt_name_with_their_configs() -> None:
    from importlib.metadata import distribution

    from s2vt.pipelines import CONFIG_ROOT
    from s2vt.pipelines.benchmarks import BENCHMARKS

    top_level = distribution("s2vt").read_text("top_level.txt") or ""
    assert top_level.split() == ["s2vt"], "no top-level 'pipelines' package may be installed"
    # The installed config folder is the repository's configs/: every demo config it holds
    # (the recipe's and the optional models') is there, and nothing else.
    repo_demo = Path(__file__).resolve().parents[1] / "configs" / "demo"
    installed = sorted(p.name for p in (CONFIG_ROOT / "demo").glob("*.yaml"))
    assert installed == sorted(p.name for p in repo_demo.glob("*.yaml"))
    assert {"extract.yaml", "meanpool.yaml", "s2vt.yaml"} <= set(installed)
    for benchmark in BENCHMARKS.values():
        assert (benchmark.config_dir / "train.yaml").is_file(), benchmark.name


def test_demo_overrides_name_their_stage() -> None:
    assert split_stage_overrides(["extract.encoder.name=tiny", "s2vt.epochs=2"]) == {
        "extract": ["encoder.name=tiny"],
        "s2vt": ["epochs=2"],
    }
    with pytest.raises(ConfigError, match="must start with one of"):
        split_stage_overrides(["epochs=2"])


TINY = {
    "extract": ["encoder.name=tiny", "encoder.pool=avg"],
    "s2vt": ["epochs=1", "model.hidden_size=32", "model.embed_size=16"],
    "meanpool": ["epochs=1", "model.hidden_size=32", "model.embed_size=16"],
}


def test_demo_runs_the_whole_chain_and_reuses_it(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = DemoSettings(num_videos=24, seed=3, beam_size=2, overrides=TINY)
    result = run_demo(out, settings)

    annotations = load_annotations(out / "data" / "annotations.json")
    table = result.table.splitlines()
    for model in MODELS:
        assert (out / model / "model" / "model.safetensors").is_file()
        for split in SPLITS:
            saved = json.loads((out / model / split / "scores.json").read_text())
            predictions = {p["video_id"]: p["caption"] for p in
                           json.loads((out / model / split / "predictions.json").read_text())}
            assert sorted(predictions) == sorted(v.video_id for v in
                                                 annotations.split(split).videos)
            # The scores are those of the saved captions on that split (official protocol,
            # attribute accuracy included), and the result and the table show them.
            expected = score_split(predictions, annotations, split=split, java=True).scores
            assert set(expected) == {*METRIC_KEYS, *ATTRIBUTE_KEYS}
            assert {k: v for k, v in saved.items() if k != "settings"} == pytest.approx(expected)
            assert result.scores[model][split] == pytest.approx(expected)
            column = table[0].index(f"{model} {split}") + len(f"{model} {split}")
            for metric in TABLE_METRICS:
                row = next(line for line in table if line.split()[0] == metric)
                assert row[:column].rstrip().endswith(f"{expected[metric]:.3f}"), (metric, row)
            assert (out / model / split / "report.html").is_file()
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sample = result.sample
    first_test = min(v.video_id for v in annotations.split("test").videos)
    assert sample["video_id"] == first_test
    assert sample["references"] == annotations.split("test").references()[first_test][:3]
    assert all(isinstance(sample[model], str) for model in MODELS)

    stamps = sorted(out.rglob(".*.step.json"))
    before = {p: p.read_text() for p in stamps}
    model_mtime = (out / "s2vt" / "model" / "model.safetensors").stat().st_mtime_ns
    again = run_demo(out, settings)
    assert {p: p.read_text() for p in stamps} == before, "a second run must reuse every stage"
    assert (out / "s2vt" / "model" / "model.safetensors").stat().st_mtime_ns == model_mtime
    assert again.scores == result.scores


def test_demo_cli_rejects_a_bad_override(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--set", "nonsense"]) == 2
    assert capsys.readouterr().err.startswith("error: demo override 'nonsense'")


# The README's headline, at a reduced size: S2VT reads the frames in order and names the
# primary object's motion far more often than the mean-pool baseline, which averages the
# frames and so cannot tell left from right, up from down or growing from shrinking. The
# demo's own recipe (configs/demo: default encoder, model sizes, epochs and schedules) on
# two thirds of its clips. The demo shows gaps of 0.32 (test) and 0.50 (test_novel); this
# size gave 0.22 over both splits (0.25 and 0.18), and 0.25 with another training seed and
# fp32 instead of bf16 features; the margin asked for is 0.10. With 800 clips the gap was
# 0.14, too close to a margin that must hold on every machine.
MOTION_CLIPS = 1200
MOTION_MARGIN = 0.10


def test_s2vt_names_the_motion_far_more_often_than_meanpool(tmp_path: Path) -> None:
    settings = DemoSettings(num_videos=MOTION_CLIPS, seed=0, report=False, flow=False)
    out = tmp_path / "run"
    scores = run_demo(out, settings).scores  # from each evaluation's scores.json
    annotations = load_annotations(out / "data" / "annotations.json")
    sizes = {split: len(annotations.split(split).videos) for split in SPLITS}

    def accuracy(model: str, kind: str) -> float:
        """Accuracy over test and test_novel together (each video counts once)."""
        return sum(scores[model][split][f"attr_{kind}"] * size
                   for split, size in sizes.items()) / sum(sizes.values())

    s2vt, meanpool = accuracy("s2vt", "motion"), accuracy("meanpool", "motion")
    assert s2vt >= meanpool + MOTION_MARGIN, (s2vt, meanpool, scores)
    for split in SPLITS:  # ahead on each held-out split, not only on the two together
        assert (scores["s2vt"][split]["attr_motion"] > scores["meanpool"][split]["attr_motion"]
                ), (split, scores)
    # Both models learnt the words (the gap is about frame order, not a baseline that
    # learnt nothing): each names the colour of most objects.
    for model in MODELS:
        assert accuracy(model, "color") >= 0.6, (model, scores)
