"""The one PyAV writer (s2vt.videowriter): round trip, settings that reach the encoder,
no half files."""

from __future__ import annotations

import re
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from s2vt.videowriter import write_video


def _frames(count: int = 6, width: int = 64, height: int = 48) -> np.ndarray:
    frames = np.full((count, height, width, 3), 50, dtype=np.uint8)
    for t in range(count):
        frames[t, 10:30, 4 + 8 * t : 20 + 8 * t] = (230, 40, 40)
    return frames


def _decode(path: Path) -> tuple[str, float, list[np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return stream.codec_context.name, float(stream.average_rate), frames


@pytest.mark.parametrize(("name", "codec", "decoded_as"), [
    ("clip.mp4", "libx264", "h264"), ("clip.avi", "mpeg4", "mpeg4"),
    ("clip.webm", "libvpx-vp9", "vp9"),
])
def test_round_trip(tmp_path: Path, name: str, codec: str, decoded_as: str) -> None:
    frames = _frames()
    path = write_video(tmp_path / "sub" / name, iter(frames), 10, codec=codec,
                       pix_fmt="yuv444p" if codec == "libx264" else "yuv420p")
    assert path == tmp_path / "sub" / name
    assert [p.name for p in path.parent.iterdir()] == [name]  # no temp file left
    codec_name, fps, decoded = _decode(path)
    assert (codec_name, fps, len(decoded)) == (decoded_as, 10.0, len(frames))
    for got, want in zip(decoded, frames, strict=True):
        assert got.shape == want.shape
        assert np.abs(got.astype(int) - want).mean() < 6


def test_pil_images_and_arrays_give_the_same_bytes(tmp_path: Path) -> None:
    frames = _frames()
    options = {"preset": "ultrafast", "crf": "20"}
    arrays = write_video(tmp_path / "a.mp4", frames, 15, options=options, threads=1)
    images = write_video(tmp_path / "b.mp4", (Image.fromarray(f) for f in frames), 15,
                         options=options, threads=1)
    assert arrays.read_bytes() == images.read_bytes()


def test_options_threads_and_faststart_reach_the_file(tmp_path: Path) -> None:
    path = write_video(tmp_path / "x.mp4", _frames(), 10,
                       options={"preset": "ultrafast", "crf": "31"}, threads=1)
    settings = re.search(rb"options: [^\x00]*", path.read_bytes()).group(0)  # x264's SEI
    assert b" crf=31.0 " in settings and b" threads=1 " in settings
    data = path.read_bytes()
    assert data.index(b"moov") > data.index(b"mdat")
    data = write_video(tmp_path / "f.mp4", _frames(), 10, faststart=True).read_bytes()
    assert data.index(b"moov") < data.index(b"mdat")
    noise = np.random.default_rng(0).integers(0, 256, (10, 120, 160, 3), dtype=np.uint8)
    low = write_video(tmp_path / "low.avi", noise, 10, codec="mpeg4", bit_rate=300_000)
    high = write_video(tmp_path / "high.avi", noise, 10, codec="mpeg4", bit_rate=1_500_000)
    assert 1.5 * low.stat().st_size < high.stat().st_size


def test_no_half_file_on_failure(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no frames"):
        write_video(tmp_path / "empty.mp4", [], 10)

    def broken():
        yield from _frames(3)
        raise RuntimeError("renderer died")

    with pytest.raises(RuntimeError, match="renderer died"):
        write_video(tmp_path / "broken.mp4", broken(), 10)
    assert list(tmp_path.iterdir()) == []
