"""TV-L1 dense flow (OpenCV contrib's ``optflow`` module): the classic two-stream choice.

More accurate than Farneback on fast motion and about ten times slower on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2vt.errors import S2VTError
from s2vt.flow.base import to_gray
from s2vt.flow.config import FlowConfig

NAME = "tvl1"
_MISSING = ("flow method 'tvl1' needs OpenCV's contrib modules "
            "(cv2.optflow.DualTVL1OpticalFlow_create): pip install "
            "opencv-contrib-python-headless")


def unavailable() -> str | None:
    """Why this method cannot run here (no opencv-contrib), or None."""
    try:
        import cv2
    except ImportError:
        return _MISSING
    optflow = getattr(cv2, "optflow", None)
    if optflow is None or not hasattr(optflow, "DualTVL1OpticalFlow_create"):
        return _MISSING
    return None


class TVL1:
    """OpenCV contrib's Dual TV-L1 on the luma of each pair (default parameters)."""

    name = NAME

    def __init__(self) -> None:
        import cv2

        self._solver = cv2.optflow.DualTVL1OpticalFlow_create()

    def compute(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        a, b = to_gray(first), to_gray(second)
        out = np.empty((*a.shape, 2), dtype=np.float32)
        for i in range(len(a)):
            out[i] = self._solver.calc(a[i], b[i], None)
        return out


def build(config: FlowConfig, device: Any = "cpu") -> TVL1:
    """The TV-L1 method (CPU only; ``device`` is ignored)."""
    reason = unavailable()
    if reason is not None:
        raise S2VTError(reason)
    return TVL1()
