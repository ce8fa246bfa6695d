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
    OPTIONAL_MODELS,
    SPLITS,
    TABLE_METRICS,
    TABLE_ORDER,
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


# The optional models at a tiny size: what `s2vt demo --models s2vt_att,transformer,s2vt_scst`
# adds to a run. No flow stream here, to keep the test short.
TINY_OPTIONAL = {
    **TINY,
    "s2vt_att": ["epochs=1", "model.hidden_size=32", "model.embed_size=16"],
    "transformer": ["epochs=1", "model.hidden_size=32", "model.embed_size=16",
                    "model.num_heads=2", "model.encoder_layers=1", "model.decoder_layers=1"],
    "s2vt_scst": ["epochs=1", "batch_size=4"],
}


def _sampling_script():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "scripts" / "sampling_diversity.py"
    spec = importlib.util.spec_from_file_location("sampling_diversity", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_trains_and_tables_the_optional_models(tmp_path: Path) -> None:
    out = tmp_path / "run"
    settings = DemoSettings(num_videos=24, seed=3, beam_size=2, overrides=TINY_OPTIONAL,
                            flow=False, extra_models=OPTIONAL_MODELS)
    result = run_demo(out, settings)

    # The table's columns: the paper's models first (no flow here), then the optional ones.
    assert list(result.scores) == [m for m in TABLE_ORDER if m in MODELS] + [*OPTIONAL_MODELS]
    header = result.table.splitlines()[0]
    summary = (out / "summary.md").read_text()
    for model in OPTIONAL_MODELS:
        config = json.loads((out / model / "model" / "config.json").read_text())
        # s2vt_scst keeps the S2VT it starts from; the others are their own architectures.
        assert config["model"]["name"] == ("s2vt" if model == "s2vt_scst" else model)
        for split in SPLITS:
            saved = json.loads((out / model / split / "scores.json").read_text())
            assert result.scores[model][split] == pytest.approx(
                {k: v for k, v in saved.items() if k != "settings"})
            assert f"{model} {split}" in header
        assert f"- {model}: {result.sample[model]}" in summary
    scst_log = (out / "s2vt_scst" / "model" / "metrics.jsonl").read_text().splitlines()
    assert "train_reward" in json.loads(scst_log[0]), "s2vt_scst trains self-critically"
    # SCST against its start, greedy and with the table's beam search, on val and test;
    # the beam-2 test rows are the table's own evaluations.
    gain = json.loads((out / "s2vt_scst" / "scst_gain.json").read_text())
    assert list(gain["rows"]) == ["val beam 1", "val beam 2", "test beam 1", "test beam 2"]
    for name, row in gain["rows"].items():
        folder = {"test beam 2": "test"}.get(name, name.replace(" beam ", "_beam"))
        cider = {m: json.loads((out / m / folder / "scores.json").read_text())["CIDEr"]
                 for m in ("s2vt", "s2vt_scst")}
        assert json.loads((out / "s2vt" / folder / "scores.json").read_text())["settings"][
            "beam_size"] == row["beam_size"]
        assert row["s2vt CIDEr"] == cider["s2vt"] and row["s2vt_scst CIDEr"] == cider["s2vt_scst"]
        # (a tiny model may score CIDEr 0: no relative gain then)
        expected = cider["s2vt_scst"] / cider["s2vt"] - 1 if cider["s2vt"] else None
        assert row["CIDEr gain"] == (None if expected is None else pytest.approx(expected))
    for model in ("s2vt", "s2vt_scst"):    # the comparison reuses the table's evaluation
        assert (out / model / "test" / "report.html").is_file()
        assert not (out / model / "test_beam2").exists()
    assert "## s2vt_scst against s2vt" in summary
    greedy_test = gain["rows"]["test beam 1"]
    assert f"{greedy_test['s2vt_scst CIDEr']:16.3f}" in summary
    with pytest.raises(ConfigError, match="optional models: s2vt_att, transformer, s2vt_scst"):
        DemoSettings(extra_models=("s2vt_nope",))

    # Sampling diversity of the demo's S2VT: the figures are those of the sampled captions
    # the JSON lists, and the fixed seed makes them reproducible.
    script = _sampling_script()
    json_path = tmp_path / "sampling.json"
    assert script.main([str(out), "--model", "s2vt", "--out", str(json_path)]) == 0
    measured = json.loads(json_path.read_text())
    annotations = load_annotations(out / "data" / "annotations.json")
    test = annotations.split("test")
    captions = measured["captions"]
    assert sorted(captions) == sorted(v.video_id for v in test.videos)
    assert all(len(c) == 5 for c in captions.values())
    distinct = [len(set(c)) for c in captions.values()]
    assert measured["frac_videos_3plus_distinct"] == pytest.approx(
        sum(d >= 3 for d in distinct) / len(distinct))
    for key in ATTRIBUTE_KEYS:
        pooled = [test.scorer.scores({vid: c[k] for vid, c in captions.items()})[key]
                  for k in range(5)]
        assert measured[key] == pytest.approx(sum(pooled) / 5)
    model_dir, features = out / "s2vt" / "model", out / "features"
    again = script.measure(model_dir, features, out / "data" / "annotations.json")
    assert again["captions"] == captions, "a fixed seed gives the same samples"
    # Temperature 0 is greedy search: one distinct caption per video, the greedy accuracy.
    cold = script.measure(model_dir, features, out / "data" / "annotations.json",
                          temperature=0.0)
    assert cold["distinct_histogram"] == {"1": len(captions)}
    assert cold["frac_videos_3plus_distinct"] == 0.0
    assert {k: cold[k] for k in ATTRIBUTE_KEYS} == pytest.approx(cold["greedy"])
    assert script.main([str(out), "--model", "nothing"]) == 2


def test_a_later_training_setting_at_its_default_keeps_cached_steps() -> None:
    from dataclasses import replace

    from s2vt.config import config_to_dict
    from s2vt.pipelines.synthetic import _train_key_config
    from s2vt.training import TrainConfig
    from s2vt.training.config import ScstConfig

    # Without the setting a run cached before it existed keeps its key; set, it counts.
    plain = _train_key_config(TrainConfig())
    assert "xe_weight" not in plain["scst"]
    assert plain == {**config_to_dict(TrainConfig()),
                     "scst": {k: v for k, v in config_to_dict(ScstConfig()).items()
                              if k != "xe_weight"}}
    mixed = _train_key_config(replace(TrainConfig(), scst=ScstConfig(xe_weight=0.5)))
    assert mixed["scst"]["xe_weight"] == 0.5
