"""Decoding and frame sampling: every container/codec, every mode, odd sizes, bad files."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from videos import moving_square_frames, write_video

from s2vt.errors import ConfigError, VideoError
from s2vt.video import VIDEO_EXTENSIONS, SamplingConfig, read_clip, sample_indices

NUM_FRAMES = 20
FPS = 25
SIDE = 64  # square videos: no resize and no crop at size 64, so pixels can be checked
SQUARE = SIDE // 4

MODES = {
    "uniform": SamplingConfig(mode="uniform", num_frames=6),
    "stride": SamplingConfig(mode="stride", stride=3, max_frames=80),
    "fps": SamplingConfig(mode="fps", fps=10.0),
}
EXPECTED = {
    "uniform": [0, 4, 8, 11, 15, 19],
    "stride": [0, 3, 6, 9, 12, 15, 18],
    "fps": [0, 3, 5, 8, 10, 13, 15, 18],  # k * 2.5, halves rounded up
}


def square_frame_index(frame: np.ndarray, num_frames: int) -> int:
    """Which frame of moving_square_frames this is, from the square's horizontal position."""
    bright = frame.mean(axis=2) > 160
    columns = np.nonzero(bright.any(axis=0))[0]
    left = columns.mean() - (SQUARE - 1) / 2
    return int(round(left * (num_frames - 1) / (SIDE - SQUARE)))


@pytest.fixture(scope="module")
def square_videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        ext: write_video(folder / f"square{ext}", NUM_FRAMES, FPS, SIDE, SIDE)
        for ext in (".mp4", ".avi", ".webm")
    }


@pytest.mark.parametrize("ext", [".mp4", ".avi", ".webm"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_codec_and_mode_returns_the_right_frames(square_videos, ext, mode):
    clip = read_clip(square_videos[ext], MODES[mode], size=SIDE)
    assert clip.total_frames == NUM_FRAMES
    assert clip.fps == pytest.approx(FPS)
    assert clip.indices.dtype == np.int64 and clip.indices.tolist() == EXPECTED[mode]
    assert clip.frames.dtype == np.uint8
    assert clip.frames.shape == (len(EXPECTED[mode]), SIDE, SIDE, 3)
    assert clip.timestamps.dtype == np.float64
    np.testing.assert_allclose(clip.timestamps, clip.indices / FPS, atol=1e-3)
    seen = [square_frame_index(frame, NUM_FRAMES) for frame in clip.frames]
    assert seen == EXPECTED[mode]


def test_frames_match_an_independent_decoder(square_videos):
    with av.open(str(square_videos[".mp4"])) as container:
        reference = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    clip = read_clip(square_videos[".mp4"], MODES["uniform"], size=SIDE)
    difference = np.abs(clip.frames.astype(int) - reference[clip.indices].astype(int))
    assert difference.mean() < 3


def test_resize_keeps_aspect_then_centre_crops(tmp_path):
    # 160x120 -> shorter side 30 gives 40x30; the centre crop drops 5 columns each side.
    frames = np.zeros((3, 120, 160, 3), dtype=np.uint8)
    frames[:, :, :20] = 255  # a white band in the left 1/8, cut away by the crop
    frames[:, :, 70:90, 2] = 255  # a blue band in the middle, kept
    path = write_video(tmp_path / "bands.mp4", fps=FPS, frames=frames, pix_fmt="yuv444p")
    clip = read_clip(path, SamplingConfig(num_frames=3), size=30)
    assert clip.frames.shape == (3, 30, 30, 3)
    assert clip.frames[:, :, 0].mean() < 40  # left edge is not the white band
    middle = clip.frames[:, :, 14:16]
    assert middle[..., 2].mean() > 200 and middle[..., 0].mean() < 40


@pytest.mark.parametrize(
    ("name", "codec", "pix_fmt"),
    [("odd.mp4", "libx264", "yuv444p"), ("odd.avi", "mpeg4", "yuv420p"),
     ("odd.webm", "libvpx-vp9", "yuv420p")],
)  # fmt: skip
def test_odd_sized_video(tmp_path, name, codec, pix_fmt):
    frames = moving_square_frames(10, 17, 13)
    path = write_video(tmp_path / name, fps=FPS, frames=frames, codec=codec, pix_fmt=pix_fmt)
    for mode in ("uniform", "stride", "fps"):
        clip = read_clip(path, SamplingConfig(mode=mode, num_frames=4, stride=4, fps=5), 16)
        assert clip.total_frames == 10
        assert clip.frames.shape == (len(clip.indices), 16, 16, 3)
    clip = read_clip(path, SamplingConfig(mode="stride", stride=1), size=13)
    assert clip.indices.tolist() == list(range(10))
    # Native height: no scaling, the crop keeps columns 2..14.
    difference = np.abs(clip.frames.astype(int) - frames[:, :, 2:15].astype(int))
    assert difference.mean() < 12


@pytest.mark.parametrize("ext", [".mp4", ".webm"])
def test_one_frame_video(tmp_path, ext):
    path = write_video(tmp_path / f"one{ext}", num_frames=1)
    uniform = read_clip(path, SamplingConfig(num_frames=5), size=32)
    assert uniform.total_frames == 1
    assert uniform.indices.tolist() == [0] * 5 and uniform.frames.shape == (5, 32, 32, 3)
    assert np.array_equal(uniform.frames[0], uniform.frames[4])
    for mode in ("stride", "fps"):
        clip = read_clip(path, SamplingConfig(mode=mode), size=32)
        assert clip.indices.tolist() == [0] and clip.timestamps.tolist() == [0.0]


def test_uniform_repeats_frames_of_a_short_video(square_videos):
    clip = read_clip(square_videos[".mp4"], SamplingConfig(num_frames=39), size=SIDE)
    # linspace(0, 19, 39) steps by 0.5: frame 0 once, then every frame twice.
    assert clip.indices.tolist() == [(i + 1) // 2 for i in range(39)]
    assert np.array_equal(clip.frames[1], clip.frames[2])
    assert [square_frame_index(f, NUM_FRAMES) for f in clip.frames[::2]] == list(range(20))


def test_sample_indices_modes():
    uniform = sample_indices(100, 25.0, SamplingConfig(num_frames=5))
    assert uniform.tolist() == [0, 25, 50, 74, 99] and uniform.dtype == np.int64
    # S2VT: every 10th frame, at most 80.
    stride = sample_indices(2000, 30.0, SamplingConfig(mode="stride"))
    assert stride.tolist() == list(range(0, 800, 10))
    assert sample_indices(25, 25.0, SamplingConfig(mode="stride")).tolist() == [0, 10, 20]
    # 2 frames per second of a 30 fps, 3 s video: every 15th frame.
    fps = sample_indices(90, 30.0, SamplingConfig(mode="fps", fps=2.0))
    assert fps.tolist() == [0, 15, 30, 45, 60, 75]
    capped = sample_indices(30 * 600, 30.0, SamplingConfig(mode="fps", fps=1.0, max_frames=32))
    assert len(capped) == 32 and capped[-1] == 31 * 30
    # More frames per second than the source has: each frame at most once.
    assert sample_indices(5, 10.0, SamplingConfig(mode="fps", fps=50.0)).tolist() == [0, 1, 2, 3, 4]
    assert sample_indices(3, 25.0, SamplingConfig(mode="fps", fps=0.1)).tolist() == [0]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"mode": "random"}, "random"), ({"num_frames": 0}, "num_frames"),
     ({"stride": -1}, "stride"), ({"fps": 0.0}, "fps"), ({"max_frames": 0}, "max_frames")],
)  # fmt: skip
def test_bad_sampling_config(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        SamplingConfig(**kwargs)


def _audio_only(path: Path) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), dtype=np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            frame.pts = i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_unreadable_files_raise_one_line_naming_the_file(tmp_path):
    good = write_video(tmp_path / "good.mp4", num_frames=30)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    cases = {
        empty: "empty file",
        text: "not a readable video",
        truncated: "not a readable video",
        _audio_only(tmp_path / "audio.mp4"): "no video stream",
        tmp_path / "missing.mp4": "file not found",
    }
    for path, reason in cases.items():
        with pytest.raises(VideoError) as caught:
            read_clip(path, SamplingConfig(), size=32)
        message = str(caught.value)
        assert message.startswith(f"cannot decode video {path}: ") and "\n" not in message
        assert reason in message


def test_truncated_stream_decodes_what_exists(tmp_path):
    # A .webm cut in half keeps its header: the frames before the cut are returned.
    full = write_video(tmp_path / "full.webm", num_frames=20, fps=FPS, width=SIDE, height=SIDE)
    cut = tmp_path / "cut.webm"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    clip = read_clip(cut, SamplingConfig(mode="stride", stride=1), size=SIDE)
    assert 1 <= clip.total_frames < 20
    seen = [square_frame_index(f, 20) for f in clip.frames]
    assert seen == clip.indices.tolist()


def test_only_sampled_frames_are_decoded_in_bounded_chunks(tmp_path, monkeypatch):
    import decord

    from s2vt import video

    calls: list[list[int]] = []
    real = decord.VideoReader

    class Recorder(real):
        def get_batch(self, indices):
            calls.append(list(indices))
            return super().get_batch(indices)

    monkeypatch.setattr(decord, "VideoReader", Recorder)
    path = write_video(tmp_path / "long.mp4", num_frames=120, width=32, height=32)
    clip = read_clip(path, SamplingConfig(num_frames=40), size=16)
    decoded = [i for call in calls for i in call]
    assert sorted(decoded) == sorted(set(clip.indices.tolist()))
    assert max(len(call) for call in calls) <= video._DECODE_CHUNK


def test_video_extensions():
    for ext in (".mp4", ".avi", ".webm", ".mkv", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv",
                ".3gp"):  # fmt: skip
        assert ext in VIDEO_EXTENSIONS


@pytest.mark.parametrize("size", [16, 24, 48])
def test_sizes_decord_cannot_resize_to_directly(square_videos, size):
    # decord 0.6.0 fails to resize to a width of 16/24/48/...; read_clip must still work.
    clip = read_clip(square_videos[".mp4"], SamplingConfig(mode="stride", stride=5), size=size)
    assert clip.frames.shape == (4, size, size, 3)
