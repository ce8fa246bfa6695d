"""Performance behaviour (issue 6), never timings: cheap imports, the fast encoder path
computes the same features, long clips stay bounded in memory, the benchmark's parts.

bf16 vs fp32 features (cosine >= 0.99) are checked in tests/test_encoders.py."""

from __future__ import annotations

import dataclasses
import json
import platform
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
    return build_encoder(EncoderSpec(weights="random", precision="fp32"))


def _caption_model_dir(folder: Path) -> Path:
    from s2vt.speed import _caption_model_dir

    spec = dataclasses.asdict(EncoderSpec(weights="random"))
    sampling = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}
    return _caption_model_dir(folder, 1280, 40, 8, spec, sampling)


def test_caption_path_loads_only_what_it_needs(tmp_path: Path, make_video) -> None:
    clip = make_video("clip.mp4", num_frames=12)
    model = _caption_model_dir(tmp_path / "model")
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
    from s2vt.speed import write_long_clip

    # 2 minutes at 10 fps: decoded whole at 224 px it would take 1200 * 196 KiB = 230 MiB.
    long_clip = write_long_clip(tmp_path / "long.mp4", minutes=2)
    short_clip = write_long_clip(tmp_path / "short.mp4", minutes=3 / 60)
    extra = _peak_read_mib(long_clip, 32) - _peak_read_mib(short_clip, 32)
    assert extra < 40, f"reading 32 frames of a long clip took {extra:.0f} MiB more"


def test_naive_baseline_computes_the_same_features(tmp_path: Path) -> None:
    """The naive path (PyAV every frame, PIL resize, batch 1, BatchNorm not folded) does
    extract's work."""
    from s2vt.encoders.efficientnet import frame_network
    from s2vt.speed import BenchConfig, naive_features, write_clips
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


def test_ratios_against_the_issue_targets() -> None:
    from s2vt.speed import ratios

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
    precision = ratios({"precision": {"gap": 0.05, "seed_spread": 0.08}})
    assert precision["bf16_vs_fp32_val_CIDEr_gap"]["met"] is True


def test_bench_precision_trains_both_precisions_with_two_seeds(tmp_path: Path) -> None:
    """The bf16-vs-fp32 stage on a tiny benchmark: four real runs and a verdict."""
    from s2vt.speed import BenchConfig, bench_precision

    config = dataclasses.replace(BenchConfig(), precision_videos=24, precision_epochs=1)
    result = bench_precision(tmp_path, config)
    runs = {(run["precision"], run["seed"]): run for run in result["runs"]}
    assert set(runs) == {("fp32", 0), ("fp32", 1), ("bf16", 0), ("bf16", 1)}
    assert all(run["val_CIDEr"] >= 0 and run["best_epoch"] == 1 for run in runs.values())
    assert runs[("fp32", 0)]["val_CIDEr"] != runs[("fp32", 1)]["val_CIDEr"]  # seeds differ
    assert set(result["mean_val_CIDEr"]) == {"fp32", "bf16"}
    assert result["same_within_noise"] == (result["gap"] <= result["seed_spread"])


def test_bench_cli_rejects_bad_sizes(capsys: pytest.CaptureFixture) -> None:
    from s2vt.cli import main

    assert main(["bench", "--clips", "0"]) == 2
    assert "--clips must be > 0, got 0" in capsys.readouterr().err


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_keep_freed_memory_takes_effect_on_glibc() -> None:
    from s2vt.runtime import keep_freed_memory

    assert keep_freed_memory()
