"""Farneback dense flow (OpenCV): the offline default, a few milliseconds per pair on a CPU.

Parameters are OpenCV's documented example values (pyramid scale 0.5, 3 levels, window 15,
3 iterations, polynomial neighbourhood 5 with sigma 1.2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from s2vt.flow.base import to_gray
from s2vt.flow.config import FlowConfig

NAME = "farneback"
_PARAMS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5,
           "poly_sigma": 1.2, "flags": 0}


def unavailable() -> str | None:
    """Why this method cannot run here (a missing package), or None."""
    try:
        import cv2
    except ImportError:
        return ("flow method 'farneback' needs OpenCV: pip install "
                "opencv-contrib-python-headless")
    if not hasattr(cv2, "calcOpticalFlowFarneback"):
        return "this OpenCV build has no calcOpticalFlowFarneback"
    return None


class Farneback:
    """OpenCV's ``calcOpticalFlowFarneback`` on the luma of each pair."""

    name = NAME

    def compute(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        import cv2

        a, b = to_gray(first), to_gray(second)
        out = np.empty((*a.shape, 2), dtype=np.float32)
        for i in range(len(a)):
            out[i] = cv2.calcOpticalFlowFarneback(a[i], b[i], None, **_PARAMS)
        return out


def build(config: FlowConfig, device: Any = "cpu") -> Farneback:
    """The Farneback method (CPU only; ``device`` is ignored)."""
    return Farneback()
