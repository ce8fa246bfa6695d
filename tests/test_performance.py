"""Performance behaviour, never timings: cheap imports, the fast encoder path computes the
same features, long clips stay bounded in memory, the benchmark's parts (the shape of its
figures, ratios of medians and their verdicts, the projection) and its precision
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


# A decode worker needs PyAV and decord only; measured 86-100 MiB (spawned interpreter ~15,
# PyAV ~16 and decord ~6 with their FFmpeg copies, the clip's buffers). Importing torch alone
# takes over 250 MiB, so the bound catches it with room for other CPUs' library builds.
DECODE_WORKER_MAX_MIB = 160
# Libraries a decode worker must never map: only the main process encodes.
NOT_FOR_DECODE_WORKERS = ("libtorch", "openvino", "cv2", "opencv", "libcudart", "onnxruntime")


def _decode_worker_peak(clip: Path) -> tuple[float, list[str]]:
    """Peak RSS (MiB) of a decode worker that sampled 32 frames of ``clip``, and the files
    of ``NOT_FOR_DECODE_WORKERS`` it maps."""
    from s2vt.decodepool import DecodePool
    from s2vt.inputs import VideoInput
    from s2vt.video import SamplingConfig

    pool = DecodePool(1, SamplingConfig(num_frames=32), timeout=120)
    try:
        decoded = list(pool.imap([VideoInput("clip", clip)], 224, max_ready=2))
        assert decoded[0].error is None and decoded[0].frames.shape == (32, 224, 224, 3)
        pid = pool.pids[0]
        status = Path(f"/proc/{pid}/status").read_text()
        maps = Path(f"/proc/{pid}/maps").read_text()
    finally:
        pool.close()
    hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    mapped = {line.split()[-1] for line in maps.splitlines() if "/" in line}
    heavy = sorted(f for f in mapped
                   if any(name in Path(f).name for name in NOT_FOR_DECODE_WORKERS))
    return int(hwm.split()[1]) / 1024, heavy


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_decode_worker_stays_small_whatever_the_clip_length(tmp_path: Path) -> None:
    from s2vt.bench.clips import write_long_clip

    long_clip = write_long_clip(tmp_path / "long.mp4", minutes=2)
    short_clip = write_long_clip(tmp_path / "short.mp4", minutes=3 / 60)
    long_peak, long_heavy = _decode_worker_peak(long_clip)
    short_peak, short_heavy = _decode_worker_peak(short_clip)
    assert long_heavy == short_heavy == [], f"the decode worker maps {long_heavy or short_heavy}"
    assert long_peak < DECODE_WORKER_MAX_MIB, f"decode worker peaked at {long_peak:.0f} MiB"
    assert long_peak - short_peak < 40, (f"a long clip took the worker {long_peak:.0f} MiB, "
                                        f"a short one {short_peak:.0f} MiB")


_FORKING_COMMAND = """
import multiprocessing, os, time
block = bytearray(200 * 1024 * 1024)  # the main process's memory, touched
child = os.fork()  # a library's fork without exec (OpenVINO's telemetry does this)
if child == 0:
    time.sleep(0.6)
    os._exit(0)
worker = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(0.6,))
worker.start()
worker.join()
os.waitpid(child, 0)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc (Linux)")
def test_memory_stage_tells_the_decode_worker_from_a_fork_of_the_main_process() -> None:
    from s2vt.bench.memory import _peak_rss_of_tree

    peaks = _peak_rss_of_tree([sys.executable, "-c", _FORKING_COMMAND], poll=0.02)
    assert peaks["main_mib"] > 200
    # The fork counts the main process's 200 MiB it shares; the spawned worker is a fresh
    # interpreter, whatever it showed before its exec.
    assert peaks["other_child_mib"] > 200
    assert 0 < peaks["decode_worker_mib"] < 100


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


def _fig(median: float, low: float | None = None, high: float | None = None,
         unit: str = "frames/s") -> dict:
    return {"median": median, "min": median if low is None else low,
            "max": median if high is None else high, "repeats": 3, "unit": unit}


def _report(decode: float = 200.0, encoder: float = 300.0, torch_encoder: float = 100.0,
            defaults: float = 170.0, torch_extract: float = 80.0, fp32: float = 120.0,
            fp32_torch: float = 60.0, naive: float = 10.0, separate: float = 8.0,
            cli: float = 4.0) -> dict:
    """A report with the figures the ratios read; min and max lie far on the other side
    of every target, so a ratio taken from them instead of the medians flips."""
    def extract(steady: float) -> dict:
        return {"steady_frames_per_s": _fig(steady, steady / 100, steady * 100),
                "frames_per_s": _fig(steady / 2)}

    return {
        "decode": {"sets": {"generated": {"decoders": {
            "decord": {"frames_per_s": _fig(decode, decode / 100, decode * 100)},
            "pyav": {"frames_per_s": _fig(decode * 10)}}}}},
        "encoder": {"chosen": {"runtime": "openvino", "precision": "bf16"},
                    "bf16": {"openvino": {"images_per_s": _fig(encoder, 1.0, 1e6)},
                             "torch": {"images_per_s": _fig(torch_encoder, 1.0, 1e6)}},
                    "fp32": {"openvino": {"images_per_s": _fig(encoder / 2)},
                             "torch": {"images_per_s": _fig(torch_encoder / 2)}}},
        "extract": {"decoder": {"requested": "auto", "first": "decord"}, "variants": {
            "defaults": extract(defaults), "torch": extract(torch_extract),
            "fp32": extract(fp32), "fp32_torch": extract(fp32_torch)}},
        "naive": {"same_process": {"frames_per_s": _fig(naive, 0.01, 1e6)},
                  "separate_process": {"frames_per_s": _fig(separate)}},
        "caption": {"batched_videos_per_s": _fig(20.0, 1.0, 1e3, "videos/s"),
                    "single_videos_per_s": _fig(5.0, 1.0, 1e3, "videos/s")},
        "caption_cli": {"seconds": _fig(cli, 0.1, 100.0, "s")},
    }


def test_ratios_divide_medians_and_are_met_only_when_this_run_met_them() -> None:
    from s2vt.bench.harness import TARGETS, ratios

    met = ratios(_report())
    assert set(met) == set(TARGETS) - {"batched_vs_single_caption_demo_size"}
    assert met["encoder_runtime_vs_torch"] == {
        "value": 3.0, "target": 2.5, "at": "least", "met": True,
        "numerator": "encoder.bf16.openvino.images_per_s",
        "denominator": "encoder.bf16.torch.images_per_s"}
    # min(decode alone 200, encoder alone 300) = 200: the decoder extract's auto tries first.
    assert met["extract_vs_min_decode_encoder"]["value"] == 0.85
    assert met["extract_vs_min_decode_encoder"]["denominator_min_of"] == [
        "decode.sets.generated.decoders.decord.frames_per_s",
        "encoder.bf16.openvino.images_per_s"]
    assert met["extract_defaults_vs_torch"]["value"] == 2.125
    # The pipeline comparison is at the same precision: fp32 extract vs the fp32 naive way.
    assert met["extract_fp32_vs_naive"]["value"] == 12.0
    assert met["batched_vs_single_caption"]["value"] == 4.0
    assert met["caption_cli_seconds"] == {"value": 4.0, "target": 5.0, "at": "most",
                                          "met": True, "figure": "caption_cli.seconds"}
    assert {name: entry["met"] for name, entry in met.items()} == {
        "encoder_runtime_vs_torch": True, "extract_vs_min_decode_encoder": True,
        "extract_defaults_vs_torch": True, "extract_fp32_vs_naive": True,
        "batched_vs_single_caption": False, "caption_cli_seconds": True}
    # The other way round on every target, by the medians alone.
    missed = ratios(_report(decode=300.0, torch_encoder=150.0, torch_extract=90.0,
                            fp32=90.0, cli=5.5))
    assert missed["encoder_runtime_vs_torch"]["value"] == 2.0
    assert missed["extract_vs_min_decode_encoder"]["value"] == round(170 / 300, 3)
    assert not any(entry["met"] for entry in missed.values())
    # The encoder becomes the smaller of the two when the decoder is faster.
    assert ratios(_report(decode=1000.0))["extract_vs_min_decode_encoder"]["value"] == 0.567
    assert ratios({}) == {}
    # The precision experiment is not a speed figure: its result never enters the ratios.
    assert ratios({"precision": {"gap": 0.05, "seed_spread": 0.08}}) == {}


def test_a_ratio_whose_figure_was_not_measured_is_not_met() -> None:
    from s2vt.bench.ratios import ratios, verdict

    report = _report()
    report["extract"]["variants"]["torch"]["steady_frames_per_s"] = {"skipped": "too few"}
    out = ratios(report)["extract_defaults_vs_torch"]
    assert out["value"] is None and out["met"] is False
    assert out["reason"] == "not measured: extract.variants.torch.steady_frames_per_s"
    assert verdict(2.0, 2.0, "least") and not verdict(1.99, 2.0, "least")
    assert verdict(5.0, 5.0, "most") and not verdict(5.01, 5.0, "most")
    assert not verdict(None, 1.0, "least")


def test_comparisons_show_what_pipeline_runtime_precision_and_process_add() -> None:
    from s2vt.bench.ratios import comparisons

    out = comparisons(_report())
    assert out["extract_fp32_torch_vs_naive"]["value"] == 6.0  # the pipeline alone
    assert out["extract_defaults_vs_fp32_torch"]["value"] == round(170 / 60, 3)
    assert out["extract_defaults_vs_naive"]["value"] == 17.0
    assert out["extract_fp32_vs_naive_separate_process"]["value"] == 15.0
    assert out["naive_same_vs_separate_process"]["value"] == 1.25
    assert out["encoder_runtime_vs_torch_fp32"]["value"] == 3.0
    assert out["encoder_bf16_vs_fp32"] == {
        "value": 2.0, "numerator": "encoder.bf16.openvino.images_per_s",
        "denominator": "encoder.fp32.openvino.images_per_s"}
    assert out["extract_end_to_end_defaults_vs_torch"]["value"] == 2.125
    assert all("target" not in entry and "met" not in entry for entry in out.values())


def test_shared_core_bound_is_what_decode_and_encode_on_the_same_cores_allow() -> None:
    from s2vt.bench.ratios import comparisons
    from s2vt.bench.summary import summary_lines

    report = _report()  # decode alone 200 frames/s, encoder alone 300, extract 170
    report["machine"] = {"cores": 4, "usable_cores": 2}
    report["encoder"]["threads"] = 2
    report["extract"]["workers"] = 1
    entry = comparisons(report)["extract_vs_shared_core_bound"]
    # A frame costs 1/200 core-seconds to decode and 2/300 to encode: 2 cores allow
    # 2 / (1/200 + 2/300) = 171.43 frames/s, 0.857 of min(200, 300).
    bound = 2 / (1 / 200 + 2 / 300)
    assert entry == {
        "value": round(170 / bound, 3),
        "numerator": "extract.variants.defaults.steady_frames_per_s",
        "bound_from": ["decode.sets.generated.decoders.decord.frames_per_s",
                       "encoder.bf16.openvino.images_per_s"],
        "cores": 2, "encoder_threads": 2, "decode_workers": 1,
        "bound_frames_per_s": round(bound, 2), "bound_vs_min_decode_encoder": 0.857}
    # Many cores: the bound is the slower side alone (here one decode worker, 200).
    report["machine"]["usable_cores"] = 16
    assert comparisons(report)["extract_vs_shared_core_bound"]["bound_frames_per_s"] == 200.0
    report["extract"]["workers"] = 4  # then the encoder alone
    assert comparisons(report)["extract_vs_shared_core_bound"]["bound_frames_per_s"] == 300.0
    del report["encoder"]["threads"]
    missing = comparisons(report)["extract_vs_shared_core_bound"]
    assert missing["value"] is None and missing["reason"] == "not measured: encoder.threads"
    report["encoder"]["threads"] = 2
    report["machine"]["usable_cores"] = 2
    report["extract"]["workers"] = 1
    line = next(line for line in summary_lines({"comparisons": comparisons(report)})
                if line.startswith("extract_vs_shared_core_bound"))
    assert line == (f"extract_vs_shared_core_bound: {round(170 / bound, 3):g} (extract's "
                    "steady rate over the 171.43 frames/s that decode and encode sharing 2 "
                    "cores allow; that bound is 0.857 x min(decode, encoder))")


def test_figures_are_medians_of_repeats_with_min_and_max() -> None:
    from s2vt.bench.timing import alternate, figure, rate_figure

    assert figure([3.0, 1.0, 2.0], "s") == {"median": 2.0, "min": 1.0, "max": 3.0,
                                           "repeats": 3, "unit": "s"}
    # Rates per repeat: the slowest repeat is the min.
    assert rate_figure(10, [1.0, 2.0, 5.0], "frames/s") == {
        "median": 5.0, "min": 2.0, "max": 10.0, "repeats": 3, "unit": "frames/s"}
    calls: list[str] = []

    def run(name: str, seconds: float):
        return lambda: calls.append(name) or seconds

    assert alternate({"a": run("a", 1.0), "b": run("b", 2.0)}, 3) == {
        "a": [1.0, 1.0, 1.0], "b": [2.0, 2.0, 2.0]}
    assert calls == ["a", "b", "a", "b", "a", "b"]


def test_fewer_than_three_repeats_are_refused(capsys: pytest.CaptureFixture) -> None:
    from s2vt.bench.config import BenchConfig
    from s2vt.cli import main
    from s2vt.errors import ConfigError

    with pytest.raises(ConfigError, match="repeats must be >= 3"):
        BenchConfig(repeats=2)
    assert BenchConfig.quick().repeats >= 3
    assert main(["bench", "--repeats", "2"]) == 2
    assert "--repeats must be >= 3" in capsys.readouterr().err


def test_steady_extract_rate_is_the_slope_between_two_run_sizes() -> None:
    from s2vt.bench.extract import prefix_count, steady_figures

    # 24 clips vs 4 clips of 16 frames: 320 more frames in 3, 3.5, 3.5 more seconds.
    out = steady_figures([5.0, 6.0, 5.5], [2.0, 2.5, 2.0], 24, 4, 16)
    assert out["steady_frames_per_s"]["median"] == round(320 / 3.5, 2)
    assert out["steady_frames_per_s"]["max"] == round(320 / 3.0, 2)
    # The intercepts: (24 * 2 - 4 * 5) / 20 = 1.4 s of start-up, then 1.8 and 1.3 s.
    assert out["startup_seconds"] == {"median": 1.4, "min": 1.3, "max": 1.8, "repeats": 3,
                                      "unit": "s"}
    noisy = steady_figures([2.0, 2.1, 2.2], [2.0, 1.0, 1.0], 3, 1, 16)
    assert "skipped" in noisy["steady_frames_per_s"] and "startup_seconds" not in noisy
    assert "skipped" in steady_figures([1.0] * 3, [], 1, 0, 16)["steady_frames_per_s"]
    assert prefix_count(24, 1) == 8 and prefix_count(24, 12) == 12 and prefix_count(1, 1) == 0
    assert prefix_count(3, 8) == 2  # never all of them


@pytest.mark.parametrize("fast_bf16", ["0", "1"])
def test_extract_variants_that_resolve_alike_run_once(monkeypatch, fast_bf16: str) -> None:
    from s2vt.bench.extract import EXTRACT_VARIANTS, variant_plan
    from s2vt.encoders.runtimes import is_installed

    monkeypatch.setenv("S2VT_ASSUME_FAST_BF16", fast_bf16)
    plan = variant_plan(EncoderSpec())
    assert list(plan) == list(EXTRACT_VARIANTS)
    assert plan["torch"]["spec"].runtime == "torch"
    assert plan["fp32_torch"]["resolved"] == {"runtime": "torch", "precision": "fp32"}
    auto = "openvino" if is_installed("openvino") else "torch"
    assert plan["defaults"]["resolved"]["runtime"] == auto
    twins = {name: row["same_as"] for name, row in plan.items() if row["same_as"]}
    expected = {"fp32": "defaults", "fp32_torch": "torch"} if fast_bf16 == "0" else {}
    if auto == "torch":  # no faster runtime: forcing torch changes nothing either
        expected = {"torch": "defaults", "fp32_torch": "fp32" if fast_bf16 == "1" else
                    "defaults", **({"fp32": "defaults"} if fast_bf16 == "0" else {})}
    assert twins == expected


def test_projection_fits_decode_by_clip_length_and_takes_the_bottleneck() -> None:
    from s2vt.bench.projection import DATASETS, decode_seconds_per_clip, project

    def point(frames: int, length: float, seconds: float) -> dict:
        return {"frames_per_clip": frames, "clip_seconds": length,
                "seconds_per_clip": _fig(seconds, unit="s/clip")}

    points = [point(40, 10.0, 0.2), point(40, 30.0, 0.4), point(32, 10.0, 0.1),
              point(32, 30.0, 0.3)]
    assert decode_seconds_per_clip(points, 40, 15.0) == (pytest.approx(0.25), False)
    assert decode_seconds_per_clip(points, 40, 40.0) == (pytest.approx(0.5), True)
    # Longer clips timed faster (noise): never extrapolated below the faster point.
    falling = [point(40, 3.0, 0.09), point(40, 6.0, 0.07)]
    assert decode_seconds_per_clip(falling, 40, 15.0) == (pytest.approx(0.07), True)
    assert decode_seconds_per_clip(falling, 40, 4.5) == (pytest.approx(0.08), False)
    clip_decode = {"points": points}
    # A fast encoder (1000 img/s: 0.04 s per MSR-VTT clip): decode-bound.
    fast = project(clip_decode, 1000.0, 0.8)
    msrvtt = fast["msrvtt"]
    assert msrvtt["bound"] == "decode" and msrvtt["decode_seconds_per_clip"] == 0.25
    assert msrvtt["hours"] == round(10_000 * 0.25 / 0.8 / 3600, 2)
    assert fast["vatex"]["clips"] == 34_991 and fast["vatex"]["frames_per_clip"] == 32
    assert fast["vatex"]["hours"] == round(34_991 * 0.1 / 0.8 / 3600, 2)
    # A slow one (50 img/s: 0.8 s per MSR-VTT clip): encoder-bound.
    slow = project(clip_decode, 50.0, 1.0)["msrvtt"]
    assert slow["bound"] == "encoder" and slow["hours"] == round(10_000 * 0.8 / 3600, 2)
    assert set(fast) == set(DATASETS)


def test_decode_stage_reports_every_registered_decoder(tmp_path: Path, make_video) -> None:
    from s2vt.bench.decode import bench_decode
    from s2vt.video import SamplingConfig, backend_names, get_decoder

    clip = make_video("clip.mp4", num_frames=20, width=96, height=64)
    out = bench_decode({"generated": [clip]}, {"real": "real videos folder not found"},
                       SamplingConfig(num_frames=4), 32, 3)
    assert out["sets"]["real"] == {"skipped": "real videos folder not found"}
    decoders = out["sets"]["generated"]["decoders"]
    assert list(decoders) == list(backend_names())
    for name, row in decoders.items():
        reason = get_decoder(name).unavailable()
        if reason is not None:
            assert row == {"skipped": reason}
            continue
        assert row["frames"] == 4 and row["failed"] == []
        fig = row["frames_per_s"]
        assert fig["repeats"] == 3 and fig["unit"] == "frames/s"
        assert fig["min"] <= fig["median"] <= fig["max"]


def test_real_clips_are_found_or_skipped_with_a_reason(tmp_path: Path) -> None:
    from s2vt.bench.decode import real_clip_paths

    paths, root, reason = real_clip_paths(tmp_path / "absent")
    assert paths == [] and "not found" in reason
    for name in ("clips/b.mp4", "clips/notes.txt", "benchmark/a.avi", "edge/c.mp4"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    paths, root, reason = real_clip_paths(tmp_path)
    assert reason is None and root == str(tmp_path)
    assert paths == [tmp_path / "benchmark/a.avi", tmp_path / "clips/b.mp4"]


def _figures(node, path: str = ""):
    if isinstance(node, dict):
        if "median" in node:
            yield path, node
        else:
            for key, value in node.items():
                yield from _figures(value, f"{path}.{key}" if path else key)


def test_a_bench_run_reports_every_figure_as_a_median_of_repeats(tmp_path: Path) -> None:
    """A real (tiny) run of the caption stage: every figure has the one shape, the
    ratios carry verdicts, the method says how it was measured."""
    from s2vt.bench.config import BenchConfig
    from s2vt.bench.harness import REPORT_FORMAT, run_benchmark

    config = BenchConfig(caption_videos=4, single_videos=2, beam_size=2, repeats=3)
    report = run_benchmark(config, tmp_path, ("caption",))
    assert report["format"] == REPORT_FORMAT
    assert report["method"]["repeats"] == 3 and report["method"]["ratios"] == "median / median"
    figures = dict(_figures({k: report[k] for k in ("caption", "caption_demo_size")}))
    assert set(figures) == {f"{key}.{rate}" for key in ("caption", "caption_demo_size")
                            for rate in ("batched_videos_per_s", "single_videos_per_s")}
    for fig in figures.values():
        assert set(fig) == {"median", "min", "max", "repeats", "unit"}
        assert fig["repeats"] == 3 and fig["unit"] == "videos/s"
        assert fig["min"] <= fig["median"] <= fig["max"]
    entry = report["ratios"]["batched_vs_single_caption"]
    assert isinstance(entry["met"], bool)
    assert entry["value"] == round(figures["caption.batched_videos_per_s"]["median"]
                                   / figures["caption.single_videos_per_s"]["median"], 3)
    assert set(report["stage_wall_seconds"]) == {"caption"}


def test_summary_prints_verdicts_and_projections() -> None:
    from s2vt.bench.ratios import ratios
    from s2vt.bench.summary import summary_lines

    report = {"ratios": ratios(_report(cli=6.0)), "projection": {"datasets": {"msrvtt": {
        "name": "MSR-VTT", "hours": 1.5, "clips": 10_000, "mean_clip_seconds": 15.0,
        "frames_per_clip": 40, "bound": "decode", "extrapolated": False}}}}
    lines = summary_lines(report)
    assert "caption_cli_seconds: 6 (target <= 5) NOT met" in lines
    assert "encoder_runtime_vs_torch: 3 (target >= 2.5) met" in lines
    assert lines[-1] == ("projected extract of MSR-VTT on this machine: 1.5 h (10,000 clips, "
                         "mean 15 s, 40 frames each; decode-bound)")


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
    assert main(["bench", "--real-videos", "/no/such/folder"]) == 2
    assert "--real-videos: no such folder" in capsys.readouterr().err
