"""What a flow method is: frame pairs in, displacement fields out."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class FlowMethod(Protocol):
    """A built optical-flow method (OpenCV or a network), ready for frame pairs."""

    name: str

    def compute(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """Dense flow from each frame of ``first`` to the same row of ``second``.

        Args:
            first: (N, H, W, 3) uint8 RGB frames.
            second: (N, H, W, 3) uint8 RGB frames, the partners K frames later.

        Returns:
            (N, H, W, 2) float32 displacements in pixels: where each pixel of ``first``
            moved in ``second`` (x to the right, y down).
        """
        ...


def to_gray(frames: np.ndarray) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> (N, H, W) uint8 luma (the classic methods work on grey)."""
    import cv2

    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in frames])
