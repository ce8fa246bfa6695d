"""Performance behaviour, never timings: cheap imports, the fast encoder path computes the
same features, long clips stay bounded in memory, the benchmark's parts and its precision
experiment.

bf16 vs fp32 features (cosine >= 0.99) are checked in tests/test_encoders.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from s2vt.encoders import EncoderSpec, build_encoder
from s2vt.encoders.lite0 import EfficientNetLite0, fuse_batchnorm

HEAVY = ("torch", "timm", "torchvision", "transformers", "matplotlib", "nltk",
         "pycocoevalcap", "decord", "av")
# Never needed to caption a video with the default encoder.
NOT_FOR_CAPTION = ("timm", "torchvision", "transformers", "matplotlib", "nltk",
                   "pycocoevalcap", "torch._dynamo")


def _python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_cli_parser_imports_no_heavy_library() -> None:
    out = _python(
        "import sys, json\n"
        "import s2vt.cli\n"
        "s2vt.cli.build_parser().parse_args(['caption', 'x.mp4', '--model', 'm'])\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    assert json.loads(out) == []


@pytest.fixture(scope="module")
def random_lite0_encoder():
    # The torch runtime: these tests check torch's chunked CPU path (the other runtimes'
    # features are checked in tests/test_runtimes.py).
    return build_encoder(EncoderSpec(weights="random", precision="fp32", runtime="torch"))


def _random_model_dir(folder: Path) -> Path:
    from s2vt.bench.caption import caption_model_dir

    spec = dataclasses.asdict(EncoderSpec(weights="random"))
    sampling = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}
    return caption_model_dir(folder, 1280, 40, 8, spec, sampling)


def test_caption_path_loads_only_what_it_needs(tmp_path: Path, make_video) -> None:
    clip = make_video("clip.mp4", num_frames=12)
    model = _random_model_dir(tmp_path / "model")
    out = _python(
        "import sys, json, io, contextlib\n"
        "from s2vt.cli import main\n"
        "buffer = io.StringIO()\n"
        "with contextlib.redirect_stdout(buffer):\n"
        f"    code = main(['caption', {str(clip)!r}, '--model', {str(model)!r}])\n"
        f"print(json.dumps([code, buffer.getvalue(), "
        f"[m for m in {NOT_FOR_CAPTION!r} if m in sys.modules]]))\n"
    )
    code, printed, loaded = json.loads(out)
    assert code == 0 and printed.startswith(str(clip) + "\t")
    assert loaded == []


def test_lite0_equals_timm_layout_and_values() -> None:
    import timm

    torch.manual_seed(0)
    reference = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    ours = EfficientNetLite0().eval()
    state = reference.state_dict()
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)
    images = torch.randn(2, 3, 231, 200)  # odd sizes exercise TF "same" padding
    with torch.no_grad():
        expected = reference.forward_features(images)
        assert torch.equal(ours.forward_features(images), expected)
        fused = fuse_batchnorm(ours).forward_features(images)
    assert torch.allclose(fused, expected, atol=1e-3, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ours.modules())


def test_chunked_cpu_encode_equals_one_network_call(random_lite0_encoder) -> None:
    encoder = random_lite0_encoder
    frames = np.random.default_rng(0).integers(0, 256, (7, 224, 224, 3), dtype=np.uint8)
    chunked = encoder.encode(frames)  # 7 frames: two chunks, the last one shorter
    with torch.inference_mode():
        direct = encoder.net(encoder.preprocess(frames)).float()
    assert chunked.shape == (7, 1280) and chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, direct, atol=1e-4, rtol=1e-4)
    # A frame's features do not depend on which frames share its call.
    torch.testing.assert_close(encoder.encode(frames[3:5]), chunked[3:5], atol=1e-4, rtol=1e-4)
    # Torch's own thread setting is left as it was.
    threads = torch.get_num_threads()
    encoder.encode(frames)
    assert torch.get_num_threads() == threads


def _peak_read_mib(clip: Path, frames: int) -> float:
    out = _python(
        "import av, resource\n"
        "from pathlib import Path\n"
        "from s2vt.video import SamplingConfig, read_clip\n"
        f"clip = read_clip(Path({str(clip)!r}), SamplingConfig(num_frames={frames}), 224)\n"
        f"assert clip.frames.shape == ({frames}, 224, 224, 3)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    return float(out)


def test_sampling_a_long_clip_never_holds_it_in_memory(tmp_path: Path) -> None:
    from s2vt.bench.clips import write_long_clip

    # 2 minutes at 10 fps: decoded whole at 224 px it would take 1200 * 196 KiB = 230 MiB.
    long_clip = write_long_clip(tmp_path / "long.mp4", minutes=2)
    short_clip = write_long_clip(tmp_path / "short.mp4", minutes=3 / 60)
    extra = _peak_read_mib(long_clip, 32) - _peak_read_mib(short_clip, 32)
    assert extra < 40, f"reading 32 frames of a long clip took {extra:.0f} MiB more"


def test_naive_baseline_computes_the_same_features(tmp_path: Path) -> None:
    """The naive path (PyAV every frame, PIL resize, batch 1, BatchNorm not folded) does
    extract's work."""
    from s2vt.bench.clips import write_clips
    from s2vt.bench.config import BenchConfig
    from s2vt.bench.naive import naive_features
    from s2vt.encoders.efficientnet import frame_network
    from s2vt.video import SamplingConfig, read_clip

    spec = EncoderSpec(weights="random", precision="fp32")
    torch.manual_seed(0)
    encoder = build_encoder(spec)
    torch.manual_seed(0)
    plain_network = frame_network(spec, fold_batchnorm=False)
    config = BenchConfig(clips=1, width=160, height=120, seconds=0.8, fps=25)
    clip = write_clips(tmp_path / "clips", config)[0]
    sampling = SamplingConfig(num_frames=4)
    naive = torch.from_numpy(naive_features(clip, encoder, sampling, plain_network))
    ours = encoder.encode(read_clip(clip, sampling, 224).frames)
    assert naive.shape == ours.shape == (4, 1280)
    cosine = torch.nn.functional.cosine_similarity(naive, ours, dim=-1)
    assert bool((cosine > 0.95).all()), cosine


def test_ratios_against_their_targets() -> None:
    from s2vt.bench.harness import ratios

    report = {
        "encoder": {"images_per_s": 100.0},
        "extract": {"frames_per_s": 85.0},
        "naive": {"frames_per_s": 10.0},
        "caption": {"batched_videos_per_s": 20.0, "single_videos_per_s": 5.0},
        "caption_cli": {"seconds": 6.0},
    }
    out = ratios(report)
    assert out["extract_vs_encoder"] == {"value": 0.85, "target": 0.8, "met": True}
    assert out["extract_vs_naive"]["value"] == 8.5 and not out["extract_vs_naive"]["met"]
    assert out["batched_vs_single_caption"] == {"value": 4.0, "target": 5.0, "met": False}
    assert out["caption_cli_seconds"]["met"] is False
    assert ratios({}) == {}
    # The precision experiment is not a speed figure: its result never enters the ratios.
    assert ratios({"precision": {"gap": 0.05, "seed_spread": 0.08}}) == {}


def test_stage_registry_drives_the_cli(capsys: pytest.CaptureFixture) -> None:
    from s2vt.bench.harness import DEFAULT_STAGES, EXPERIMENTS, STAGES
    from s2vt.cli import build_parser

    assert list(STAGES)[: len(DEFAULT_STAGES)] == list(DEFAULT_STAGES)
    assert "precision" not in STAGES and "precision" in EXPERIMENTS
    parser = build_parser()
    for name in STAGES:
        assert parser.parse_args(["bench", "--only", name]).only == [name]
    for name in EXPERIMENTS:
        assert parser.parse_args(["bench", "--experiment", name]).experiment == name
    for argv in (["bench", "--only", "precision"],
                 ["bench", "--only", "score", "--experiment", "precision"]):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
    capsys.readouterr()


def _runs(cider: dict[str, list[float]], bleu: dict[str, list[float]]) -> list[dict]:
    return [{"precision": precision, "seed": seed, "val_CIDEr": cider[precision][seed],
             "val_BLEU-4": bleu[precision][seed]}
            for precision in ("fp32", "bf16") for seed in (0, 1)]


def test_precision_verdict_compares_the_cider_gap_with_the_seed_spread() -> None:
    from s2vt.bench.experiments.precision import verdict

    # Within noise by CIDEr (gap 0.05 <= spread 0.2), far apart by BLEU-4: a verdict
    # that compared any other figure, or the wrong spread, would say otherwise.
    close = verdict(_runs({"fp32": [1.0, 1.2], "bf16": [1.1, 1.2]},
                          {"fp32": [0.10, 0.11], "bf16": [0.50, 0.51]}))
    assert close == {"mean_val_CIDEr": {"fp32": 1.1, "bf16": 1.15}, "gap": 0.05,
                     "seed_spread": 0.2, "same_within_noise": True}
    # Apart by CIDEr (gap 0.5 > spread 0.1), the same by BLEU-4.
    apart = verdict(_runs({"fp32": [1.0, 1.1], "bf16": [1.55, 1.55]},
                          {"fp32": [0.30, 0.40], "bf16": [0.35, 0.35]}))
    assert apart == {"mean_val_CIDEr": {"fp32": 1.05, "bf16": 1.55}, "gap": 0.5,
                     "seed_spread": 0.1, "same_within_noise": False}


def test_precision_run_reports_its_best_epoch_not_its_last() -> None:
    from s2vt.bench.experiments.precision import best_figures

    history = [{"epoch": e, "val": {"CIDEr": c, "BLEU-4": b}}
               for e, c, b in ((1, 0.5, 0.31), (2, 0.812345, 0.2), (3, 0.7, 0.4))]
    assert best_figures(history, 2) == {"best_epoch": 2, "val_CIDEr": 0.8123,
                                        "val_BLEU-4": 0.2}


def test_bench_precision_reports_what_its_runs_logged(tmp_path: Path) -> None:
    """The experiment end to end on a tiny benchmark: four real runs (two precisions, two
    seeds, in spawned workers), each reporting the best epoch of its own metrics log."""
    from s2vt.bench.config import BenchConfig
    from s2vt.bench.experiments.precision import RUNS, bench_precision, run_folder, verdict

    config = dataclasses.replace(BenchConfig(), precision_videos=24, precision_epochs=2)
    result = bench_precision(tmp_path, config)
    assert [(run["precision"], run["seed"]) for run in result["runs"]] == list(RUNS)
    for run in result["runs"]:
        log = run_folder(tmp_path, run["precision"], run["seed"]) / "metrics.jsonl"
        rows = [json.loads(line) for line in log.read_text().splitlines()]
        assert [row["epoch"] for row in rows] == [1, 2]
        best = next(row for row in rows if row["epoch"] == rows[-1]["best_epoch"])
        assert run["best_epoch"] == best["epoch"]
        assert run["val_CIDEr"] == round(best["val"]["CIDEr"], 4)
        assert run["val_BLEU-4"] == round(best["val"]["BLEU-4"], 4)
    by_run = {(run["precision"], run["seed"]): run for run in result["runs"]}
    assert by_run[("fp32", 0)]["val_CIDEr"] != by_run[("fp32", 1)]["val_CIDEr"]  # seeds differ
    assert {k: result[k] for k in ("mean_val_CIDEr", "gap", "seed_spread",
                                   "same_within_noise")} == verdict(result["runs"])


def test_bench_cli_rejects_bad_sizes(capsys: pytest.CaptureFixture) -> None:
    from s2vt.cli import main

    assert main(["bench", "--clips", "0"]) == 2
    assert "--clips must be > 0, got 0" in capsys.readouterr().err
