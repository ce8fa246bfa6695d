"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import av  # noqa: F401  (must load before decord: decord's bundled FFmpeg breaks av's VP9 encoder)
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from videos import write_video  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def s2vt_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Converted encoder networks go to a session temp folder, never the user's ~/.cache
    (set in os.environ so that subprocesses the tests start inherit it)."""
    import os

    folder = tmp_path_factory.mktemp("s2vt-cache")
    previous = os.environ.get("S2VT_CACHE")
    os.environ["S2VT_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("S2VT_CACHE", None)
    else:
        os.environ["S2VT_CACHE"] = previous


@pytest.fixture
def make_video(tmp_path: Path) -> Callable[..., Path]:
    """Write a small real video: ``make_video("a.mp4", num_frames=30, fps=25, width=160)``."""

    def _make(name: str = "clip.mp4", **kwargs) -> Path:
        return write_video(tmp_path / name, **kwargs)

    return _make


@pytest.fixture
def one_torch_thread():
    """Run a test on one torch thread: tiny models are fastest there and do not fight
    other processes (decode workers, other tests) for the cores."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
