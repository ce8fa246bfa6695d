"""The optical-flow stream: methods (registry-driven), flow images, extraction, stream checks.

Flow images: x and y around 128 (right / down above 128), magnitude from 0. The clips are
real encoded videos made here: a textured square moving right, and a still textured frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from videos import write_video

from s2vt.cli import main
from s2vt.errors import ConfigError, S2VTError
from s2vt.features import FeatureStore
from s2vt.flow import FLOW_METHOD_NAMES, FLOW_METHODS, FlowConfig, flow_method_names
from s2vt.flow.clip import flow_images, flow_method, pair_indices, read_flow_clip
from s2vt.flow.frames import read_frame_pairs
from s2vt.flow.registry import build_flow_method, method_info, method_unavailable
from s2vt.flow.render import flow_to_image
from s2vt.flow.stream import check_same_stream, stream_meta, stream_of
from s2vt.video import SamplingConfig, backend_names, decoder_chain, get_decoder, probe

pytestmark = pytest.mark.usefixtures("one_torch_thread")

STEP = 3  # pixels per frame the square moves at 96 px (the clips below)
SIDE = 96


def textured_frames(num_frames: int, step: int, side: int = SIDE, seed: int = 0) -> np.ndarray:
    """(T, side, side, 3): a random-texture square on a darker textured background moving
    ``step`` px right per frame (texture, so the flow is defined inside the square too)."""
    rng = np.random.default_rng(seed)
    background = rng.integers(0, 70, (side // 8, side // 8, 3), dtype=np.uint8)
    background = np.kron(background, np.ones((8, 8, 1), dtype=np.uint8))
    patch = rng.integers(80, 256, (8, 8, 3), dtype=np.uint8)
    patch = np.kron(patch, np.ones((4, 4, 1), dtype=np.uint8))  # 32 x 32
    frames = []
    for t in range(num_frames):
        frame = background.copy()
        x = 8 + step * t
        frame[32:64, x : x + 32] = patch
        frames.append(frame)
    return np.stack(frames)


def square_region(t: int, step: int = STEP) -> tuple[slice, slice]:
    """Inner part of the square at frame t (rows, cols) at the 96 px frame size."""
    x = 8 + step * t
    return slice(38, 58), slice(x + 6, x + 26)


# ----------------------------------------------------------------- config and registry
def test_config_names_follow_the_registry() -> None:
    assert FLOW_METHOD_NAMES == tuple(FLOW_METHODS) == tuple(flow_method_names())
    for name in flow_method_names():
        assert method_info(name).name == name


def test_unknown_method_lists_the_known_ones(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="known methods: farneback, tvl1, raft_small, raft_large"):
        FlowConfig(method="lucas")
    with pytest.raises(ConfigError, match="known methods: farneback"):
        method_info("lucas")
    with pytest.raises(ConfigError, match="flow gap must be an integer >= 1"):
        FlowConfig(gap=0)
    write_video(tmp_path / "v" / "a.mp4", num_frames=8, width=64, height=48)
    code = main(["extract", str(tmp_path / "v"), "--out", str(tmp_path / "f"), "--stream", "flow",
                 "--flow-method", "lucas", "--encoder", "tiny", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("error: unknown flow method 'lucas'; known methods: farneback")


def test_missing_opencv_contrib_is_one_line_naming_the_package(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cv2 = pytest.importorskip("cv2")
    if hasattr(cv2, "optflow"):
        monkeypatch.delattr(cv2, "optflow")  # as with plain opencv-python-headless
    reason = method_unavailable("tvl1")
    assert reason is not None and "pip install opencv-contrib-python-headless" in reason
    with pytest.raises(S2VTError, match=r"DualTVL1OpticalFlow_create\): pip install "
                                        "opencv-contrib-python-headless"):
        build_flow_method(FlowConfig(method="tvl1"))


def test_importing_the_flow_package_stays_cheap() -> None:
    import subprocess
    import sys

    code = ("import sys, s2vt.flow, s2vt.flow.stream, s2vt.extraction; "
            "print(sorted(m for m in ('cv2', 'torch', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"


def test_flow_image_scale() -> None:
    bound = 10.0
    flow = np.array([[[[0.0, 0.0], [10.0, -10.0], [5.0, 0.0], [40.0, -3.0], [20.0, 20.0]]]])
    image = flow_to_image(flow, bound)
    assert image.dtype == np.uint8 and image.shape == (1, 1, 5, 3)
    assert image[0, 0, 0].tolist() == [128, 128, 0]          # still
    assert image[0, 0, 1].tolist() == [255, 1, 180]          # +-bound; |f| = 14.14 -> 179.6
    assert image[0, 0, 2].tolist() == [192, 128, 64]         # half the bound: 128 + 63.5
    assert image[0, 0, 3, :2].tolist() == [255, 90]          # x clipped, y = 128 - 38.1
    assert image[0, 0, 4, 2] == 255                          # magnitude saturates at 2 bounds


def test_pairs_use_last_minus_k_at_the_end() -> None:
    first, second = pair_indices(np.array([0, 5, 9, 9]), 10, 1)
    assert first.tolist() == [0, 5, 8, 8] and second.tolist() == [1, 6, 9, 9]
    first, second = pair_indices(np.array([0, 5, 8, 9]), 10, 3)
    assert first.tolist() == [0, 5, 6, 6] and second.tolist() == [3, 8, 9, 9]
    first, second = pair_indices(np.array([0, 1]), 2, 4)     # shorter than K+1 frames
    assert first.tolist() == [0, 0] and second.tolist() == [1, 1]
    first, second = pair_indices(np.array([0]), 1, 1)        # one frame: zero flow
    assert first.tolist() == [0] and second.tolist() == [0]


def _method_config(name: str) -> FlowConfig:
    """Offline settings of a registered method: networks get seeded random weights."""
    info = method_info(name)
    return FlowConfig(method=name, weights="random" if info.needs_weights else None)


@pytest.mark.parametrize("name", flow_method_names())
def test_every_method_runs_on_frame_pairs(name: str) -> None:
    reason = method_unavailable(name)
    if reason is not None:
        pytest.skip(reason)
    config = _method_config(name)
    frames = textured_frames(3, STEP)
    flow = build_flow_method(config).compute(frames[:-1], frames[1:])
    assert flow.shape == (2, SIDE, SIDE, 2) and flow.dtype == np.float32
    assert np.all(np.isfinite(flow))
    if method_info(name).needs_weights:
        return  # random weights: the plumbing only (real weights are not offline)
    rows, cols = square_region(0)
    assert flow[0, rows, cols, 0].mean() == pytest.approx(STEP, abs=0.75)
    assert abs(flow[0, rows, cols, 1].mean()) < 0.5
    corner = flow[0, 80:, 80:]  # background the square never reaches
    assert np.abs(corner).mean() < 0.3


# ----------------------------------------------------------------- flow images of videos
def _clip(path: Path, frames: np.ndarray) -> Path:
    return write_video(path, frames=frames, fps=10, pix_fmt="yuv444p")


def test_farneback_square_moving_right_lights_up_the_x_channel(tmp_path: Path) -> None:
    path = _clip(tmp_path / "right.mp4", textured_frames(12, STEP))
    config = FlowConfig(size=SIDE)  # work at the clip's own size: the square stays put
    clip = read_flow_clip(path, SamplingConfig(num_frames=4), SIDE, flow=config)
    assert clip.frames.shape == (4, SIDE, SIDE, 3) and clip.frames.dtype == np.uint8
    assert clip.indices.tolist() == [0, 4, 7, 10]   # 11 is the last frame: pair (10, 11)
    expected = 128 + 127 * STEP / config.bound       # 166
    for row, t in enumerate(clip.indices):
        rows, cols = square_region(int(t))
        x, y, magnitude = (clip.frames[row, rows, cols, c].astype(float) for c in range(3))
        assert x.mean() > 150 and x.mean() == pytest.approx(expected, abs=10)
        assert abs(y.mean() - 128) < 4
        assert magnitude.mean() > 25
    # Moving left is below 128.
    left = _clip(tmp_path / "left.mp4", textured_frames(12, STEP)[::-1])
    flipped = read_flow_clip(left, SamplingConfig(num_frames=4), SIDE, flow=config)
    rows, cols = square_region(4)
    assert flipped.frames[1, rows, cols, 0].mean() < 106   # frame 4 of the reversed clip


def test_still_clip_is_128_128_0(tmp_path: Path) -> None:
    still = np.repeat(textured_frames(1, 0), 10, axis=0)
    path = _clip(tmp_path / "still.mp4", still)
    clip = read_flow_clip(path, SamplingConfig(num_frames=5), 32, flow=FlowConfig())
    assert clip.frames.shape == (5, 32, 32, 3)
    deviation = np.abs(clip.frames.astype(int) - np.array([128, 128, 0]))
    assert deviation.mean() < 0.5 and deviation.max() <= 2


def test_raft_offline_without_weights_is_one_clear_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if method_unavailable("raft_small") is not None:
        pytest.skip(method_unavailable("raft_small"))
    import urllib.error

    import torch.hub

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # an empty cache
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(S2VTError) as caught:
        build_flow_method(FlowConfig(method="raft_small"))
    message = str(caught.value)
    assert "\n" not in message and "cannot download raft_small weights" in message
    assert "--flow-weights PATH" in message
    with pytest.raises(S2VTError, match="flow weights file not found: .*missing.pth"):
        build_flow_method(FlowConfig(method="raft_small", weights=str(tmp_path / "missing.pth")))


def test_raft_loads_a_local_state_dict_with_weights_only(tmp_path: Path) -> None:
    if method_unavailable("raft_small") is not None:
        pytest.skip(method_unavailable("raft_small"))
    import pickle

    import torch
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(1)
    state = raft_small(weights=None).state_dict()
    local = tmp_path / "raft_small.pth"
    torch.save(state, local)
    frames = textured_frames(2, STEP, side=64)
    got = build_flow_method(FlowConfig(method="raft_small", weights=str(local)))
    random = build_flow_method(FlowConfig(method="raft_small", weights="random"))
    a = got.compute(frames[:1], frames[1:])
    assert a.shape == (1, 64, 64, 2)
    assert not np.allclose(a, random.compute(frames[:1], frames[1:]))  # the file's weights
    bad = tmp_path / "evil.pth"
    bad.write_bytes(pickle.dumps(print))
    with pytest.raises(S2VTError, match="cannot load flow weights .*evil.pth"):
        build_flow_method(FlowConfig(method="raft_small", weights=str(bad)))
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(S2VTError, match="do not fit raft_small"):
        build_flow_method(FlowConfig(method="raft_small", weights=str(wrong)))


# ----------------------------------------------------------------- stream records
def test_stream_records_and_old_stores_read_as_rgb(tmp_path: Path) -> None:
    assert stream_of({}) == {"name": "rgb"} and stream_of({"stream": "flow"}) == {"name": "flow"}
    old = tmp_path / "old"
    old.mkdir()
    (old / "meta.json").write_text(json.dumps({"feature_dim": 4, "encoder": {"name": "tiny"}}))
    assert FeatureStore.open(old).meta["stream"] == {"name": "rgb"}
    # An old store reopens for writing with today's rgb meta.
    FeatureStore.create(old, {"feature_dim": 4, "encoder": {"name": "tiny"},
                              "stream": {"name": "rgb"}})
    flow = stream_meta("flow", FlowConfig(gap=2))
    assert flow == {"name": "flow", "method": "farneback", "gap": 2, "size": 128,
                    "bound": 10.0, "weights": None}
    check_same_stream(flow, dict(flow, weights="/elsewhere/raft.pth"), "here", "there")
    with pytest.raises(S2VTError, match="flow gap is 2 in the store but 1 in there"):
        check_same_stream(flow, stream_meta("flow"), "here", "there")
    with pytest.raises(S2VTError, match=r"holds flow \(farneback, gap 2, 128 px\) features "
                                        "but there is a rgb model"):
        check_same_stream(flow, {"name": "rgb"}, "here", "there")


# ----------------------------------------------------------------- extract, train, caption
def _annotations(root: Path, ids: list[str], words: dict[str, str]) -> Path:
    videos = [{"video_id": vid, "split": "train" if i < len(ids) - 2 else "validate"}
              for i, vid in enumerate(ids)]
    sentences = [{"video_id": vid, "caption": f"a square moves {words[vid]}"} for vid in ids]
    path = root / "annotations.json"
    path.write_text(json.dumps({"videos": videos, "sentences": sentences}))
    return path


@pytest.fixture(scope="module")
def flow_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Six real clips, their rgb and flow stores (tiny encoder), and a model of each."""
    root = tmp_path_factory.mktemp("flowdata")
    words = {}
    for i in range(6):
        frames = textured_frames(10 + i, 2, seed=i)
        if i % 2:
            frames = frames[::-1]
        vid = f"clip{i}"
        words[vid] = "left" if i % 2 else "right"
        write_video(root / "videos" / f"{vid}.mp4", frames=frames, fps=10, pix_fmt="yuv444p")
    annotations = _annotations(root, sorted(words), words)
    common = ["--encoder", "tiny", "--num-frames", "5", "--workers", "1", "--no-progress"]
    assert main(["extract", str(root / "videos"), "--out", str(root / "flow"), "--stream",
                 "flow", "--flow-size", "64", *common]) == 0
    assert main(["extract", str(root / "videos"), "--out", str(root / "rgb"), *common]) == 0
    train = ["--annotations", str(annotations), "--epochs", "1", "--device", "cpu",
             "--no-progress", "--set", "model.embed_size=8", "--set", "model.hidden_size=8",
             "--set", "batch_size=4"]
    for stream in ("flow", "rgb"):
        assert main(["train", "--features", str(root / stream), "--out",
                     str(root / f"model_{stream}"), *train]) == 0
    return {"root": root, "videos": root / "videos", "annotations": annotations,
            "flow": root / "flow", "rgb": root / "rgb", "model_flow": root / "model_flow",
            "model_rgb": root / "model_rgb"}


def test_flow_extraction_end_to_end(flow_data: dict[str, Path],
                                    capsys: pytest.CaptureFixture) -> None:
    store = FeatureStore.open(flow_data["flow"])
    assert store.meta["stream"] == {"name": "flow", "method": "farneback", "gap": 1,
                                    "size": 64, "bound": 10.0, "weights": None}
    assert FeatureStore.open(flow_data["rgb"]).meta["stream"] == {"name": "rgb"}
    rgb = FeatureStore.open(flow_data["rgb"])
    assert store.ids() == rgb.ids() == [f"clip{i}" for i in range(6)]
    for vid in store.ids():
        flow, frames = store.read(vid), rgb.read(vid)
        assert flow.features.shape == frames.features.shape == (5, 48)
        # Same positions as the rgb stream, except the last: its pair is (last-1, last).
        assert flow.indices[:-1].tolist() == frames.indices[:-1].tolist()
        assert flow.indices[-1] == frames.indices[-1] - 1
        assert not np.allclose(flow.features, frames.features)
    # Moving right and moving left give different flow features (they do not in colour).
    right, left = store.read("clip0").features, store.read("clip1").features
    assert np.abs(right.astype(float) - left.astype(float)).mean() > 1e-2
    # A rerun skips everything; an rgb run into the flow store is one line naming the stream.
    common = ["--encoder", "tiny", "--num-frames", "5", "--no-progress"]
    capsys.readouterr()
    assert main(["extract", str(flow_data["videos"]), "--out", str(flow_data["flow"]),
                 "--stream", "flow", "--flow-size", "64", *common]) == 0
    assert "0 done, 6 skipped" in capsys.readouterr().out
    assert main(["extract", str(flow_data["videos"]), "--out", str(flow_data["flow"]),
                 *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "different stream.name: 'flow' there, 'rgb' now" in err


def _one_error_line(capsys: pytest.CaptureFixture, code: int) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_model_dirs_record_their_stream(flow_data: dict[str, Path]) -> None:
    from s2vt.checkpoint import load_model_dir

    flow = load_model_dir(flow_data["model_flow"])
    assert flow.stream == FeatureStore.open(flow_data["flow"]).meta["stream"]
    assert load_model_dir(flow_data["model_rgb"]).stream == {"name": "rgb"}
    assert json.loads((flow_data["model_flow"] / "config.json").read_text())["stream"][
        "name"] == "flow"


def test_train_refuses_to_mix_streams(flow_data: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    base = ["--annotations", str(flow_data["annotations"]), "--epochs", "2", "--device", "cpu",
            "--no-progress"]
    # Resuming the rgb run on the flow store.
    code = main(["train", "--features", str(flow_data["flow"]), "--out",
                 str(flow_data["model_rgb"]), "--resume", *base])
    line = _one_error_line(capsys, code)
    assert "holds flow (farneback, gap 1, 64 px) features" in line
    assert "train_state.pt is a rgb model" in line
    # Starting from the flow model on the rgb store.
    code = main(["train", "--features", str(flow_data["rgb"]), "--out", str(tmp_path / "m"),
                 "--init-from", str(flow_data["model_flow"]), *base])
    line = _one_error_line(capsys, code)
    assert "the store holds rgb features but model dir" in line and "flow (farneback" in line


def test_evaluate_refuses_to_mix_streams(flow_data: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    for model, store in (("model_rgb", "flow"), ("model_flow", "rgb")):
        code = main(["evaluate", "--model", str(flow_data[model]), "--features",
                     str(flow_data[store]), "--annotations", str(flow_data["annotations"]),
                     "--split", "val", "--out", str(tmp_path / model), "--no-report"])
        line = _one_error_line(capsys, code)
        assert f"the store holds {store}" in line and "model dir" in line


def test_captioner_computes_flow_exactly_as_extraction(flow_data: dict[str, Path]) -> None:
    from s2vt.captioner import Captioner

    captioner = Captioner.from_pretrained(flow_data["model_flow"], beam_size=1)
    store = FeatureStore.open(flow_data["flow"])
    paths = sorted(flow_data["videos"].glob("*.mp4"))
    stored = [store.read(path.stem).features for path in paths]
    for path, features in zip(paths, stored, strict=True):
        np.testing.assert_array_equal(captioner.video_features(path), features)
    # In a decode worker (as `s2vt caption` with several videos): the same captions.
    results = list(captioner.caption_videos(paths, contained=True))
    assert [r.error for r in results] == [None] * len(paths)
    assert [r.caption for r in results] == captioner.caption_features(stored)


def test_caption_cli_on_a_flow_model(flow_data: dict[str, Path],
                                     capsys: pytest.CaptureFixture) -> None:
    video = flow_data["videos"] / "clip0.mp4"
    assert main(["caption", str(video), "--model", str(flow_data["model_flow"]),
                 "--beam-size", "1"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{video}\t") and len(line.split("\t")[1]) > 0


# ----------------------------------------------------------------- frame pairs: decoding
def _pairs_from_every_frame(path: Path, sampling: SamplingConfig, size: int, gap: int,
                            decoder: str) -> tuple[np.ndarray, ...]:
    """Frame pairs the long way: every frame up to the last one the pairs need (stride 1),
    the pairs picked from there (how flow read them before it could ask for indices)."""
    from s2vt.video import read_clip

    positions = read_clip(path, sampling, size, decoder=decoder)
    first, second = pair_indices(positions.indices, positions.total_frames, gap)
    last = int(max(first.max(), second.max()))
    every = read_clip(path, SamplingConfig(mode="stride", stride=1, max_frames=last + 1), size,
                      decoder=decoder)
    row = {int(index): r for r, index in enumerate(every.indices)}
    rows_first, rows_second = [row[i] for i in first.tolist()], [row[i] for i in second.tolist()]
    return (every.frames[rows_first], every.frames[rows_second], first,
            every.timestamps[rows_first], positions.indices)


@pytest.fixture(scope="module")
def pair_clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pairs")
    frames = textured_frames(23, 2)
    return {ext: write_video(folder / f"moving{ext}", frames=frames, fps=10)
            for ext in (".mp4", ".avi")}


PAIR_SAMPLINGS = {"uniform": SamplingConfig(num_frames=6),
                  "stride": SamplingConfig(mode="stride", stride=4),
                  "fps": SamplingConfig(mode="fps", fps=3.0)}


@pytest.mark.parametrize("decoder", ["auto", *backend_names()])
@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_frame_pairs_equal_decoding_every_frame(pair_clips: dict[str, Path], decoder: str,
                                                ext: str) -> None:
    """Only the pairs' frames are decoded, and they are the very frames (and features) that
    decoding every frame up to the last pair gives, with every backend (decord's in-order
    AVI path included), sampling mode and gap (30: longer than the clip)."""
    path = pair_clips[ext]
    if decoder != "auto":
        reason = get_decoder(decoder).unavailable() or get_decoder(decoder).refuses(probe(path))
        if reason is not None:
            pytest.skip(f"decoder {decoder}: {reason}")
    for mode, sampling in PAIR_SAMPLINGS.items():
        for gap in (1, 3, 30):
            pairs = read_frame_pairs(path, sampling, 64, gap, decoder=decoder)
            first, second, indices, times, positions = _pairs_from_every_frame(
                path, sampling, 64, gap, decoder)
            where = f"{mode}, gap {gap}"
            assert pairs.indices.tolist() == indices.tolist(), where
            assert pairs.clip.indices.tolist() == positions.tolist(), where
            np.testing.assert_array_equal(pairs.timestamps, times, err_msg=where)
            np.testing.assert_array_equal(pairs.first, first, err_msg=where)
            np.testing.assert_array_equal(pairs.second, second, err_msg=where)
            assert pairs.first.shape == pairs.second.shape == (len(indices), 64, 64, 3)
    # The flow images (what the encoder sees) are therefore those of every-frame decoding.
    config = FlowConfig(size=64)
    images = read_flow_clip(path, PAIR_SAMPLINGS["uniform"], 32, flow=config, decoder=decoder)
    first, second, *_ = _pairs_from_every_frame(path, PAIR_SAMPLINGS["uniform"], 64, 1, decoder)
    np.testing.assert_array_equal(
        images.frames, flow_images(first, second, config, 32, flow_method(config)))


def test_frame_pairs_of_a_long_clip_hold_two_frames_per_position(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    from s2vt import videowriter
    from s2vt.flow import frames as frames_module

    # 600 frames (a minute at 10 fps), written one at a time: a 50-frame cycle repeats.
    cycle = textured_frames(50, 1)
    path = videowriter.write_video(tmp_path / "long.mp4", (cycle[i % 50] for i in range(600)),
                                   10, options={"preset": "ultrafast"})
    held: list[tuple[str, int]] = []
    for name in ("read_clip", "read_frames"):
        def spy(*args, _real=getattr(frames_module, name), _name=name, **kwargs):
            clip = _real(*args, **kwargs)
            held.append((_name, len(clip.frames)))
            return clip

        monkeypatch.setattr(frames_module, name, spy)
    sampling = SamplingConfig(mode="stride", stride=40)  # 15 positions, up to frame 560
    tracemalloc.start()
    try:
        pairs = read_frame_pairs(path, sampling, 128, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    count = len(pairs.indices)
    assert count == 15 and pairs.indices[-1] == 560
    # The positions, then the frame after each: 2 frames per position were decoded.
    assert held == [("read_clip", count), ("read_frames", count)]
    frame = 128 * 128 * 3
    # Decoding every frame up to 561 peaks at 80 MiB (562 frames, decoded and stacked);
    # the pairs alone at about 4 MiB.
    assert peak < 12 * count * frame, f"peak {peak / 2**20:.1f} MiB for {count} positions"


def test_flow_decoding_uses_the_decoder_it_is_given(
    pair_clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """read_flow_clip's decoder reaches both reads (the other frames of the pairs come
    from the backend that read the positions)."""
    from s2vt.flow import frames as frames_module

    asked: list[tuple[str, str]] = []
    for name in ("read_clip", "read_frames"):
        def spy(*args, _real=getattr(frames_module, name), _name=name, **kwargs):
            asked.append((_name, kwargs.get("decoder")))
            return _real(*args, **kwargs)

        monkeypatch.setattr(frames_module, name, spy)
    clip = read_flow_clip(pair_clips[".mp4"], SamplingConfig(num_frames=4), 32,
                          flow=FlowConfig(size=32), decoder="pyav")
    assert clip.decoder == "pyav"
    assert asked == [("read_clip", "pyav"), ("read_frames", "pyav")]
    asked.clear()
    auto = read_flow_clip(pair_clips[".mp4"], SamplingConfig(num_frames=4), 32,
                          flow=FlowConfig(size=32), decoder="auto")
    assert asked == [("read_clip", "auto"), ("read_frames", auto.decoder)]
    assert auto.decoder == decoder_chain("auto")[0].name


def test_flow_extraction_passes_its_decoder_to_the_workers(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    write_video(videos / "a.mp4", frames=textured_frames(10, 2), fps=10)
    expected = {}
    for decoder in ("pyav", "auto"):
        out = tmp_path / decoder
        assert main(["extract", str(videos), "--out", str(out), "--stream", "flow",
                     "--flow-size", "32", "--decoder", decoder, "--encoder", "tiny",
                     "--num-frames", "4", "--workers", "1", "--no-progress"]) == 0
        assert json.loads((out / "meta.json").read_text())["decoder"] == decoder
        expected[decoder] = json.loads((out / "a.json").read_text())["decoding"]["decoder"]
    assert expected == {"pyav": "pyav", "auto": decoder_chain("auto")[0].name}
