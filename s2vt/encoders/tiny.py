"""``tiny``: a fast, deterministic encoder for tests that needs no weights.

Each frame becomes its 4x4 grid of average colours (48-d, values in [-1, 1]); with
``grid2`` the grid is 8x8, ordered as the four 2x2 quadrants of 4x4 cells each (192-d,
4 x 48), like grid2 elsewhere. It keeps colour and position, which is what the synthetic
benchmark's captions talk about, and costs almost nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from s2vt.encoders.base import FrameEncoder, resolve_device
from s2vt.encoders.spec import EncoderSpec
from s2vt.errors import S2VTError

NATIVE_SIZE = 32
GRID = 4


class ColourGrid(nn.Module):
    """(N, 3, S, S) -> (N, 3 * grid^2) cell means, or (N, 4 * 3 * grid^2) with grid2."""

    def __init__(self, pool: str) -> None:
        super().__init__()
        self.pool = pool

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool == "avg":
            return F.adaptive_avg_pool2d(images, GRID).flatten(1)
        cells = F.adaptive_avg_pool2d(images, 2 * GRID)  # (N, 3, 8, 8)
        n = cells.shape[0]
        # (N, 3, qy, y, qx, x) -> (N, qy, qx, 3, y, x): one 48-d block per quadrant.
        quadrants = cells.view(n, 3, 2, GRID, 2, GRID).permute(0, 2, 4, 1, 3, 5)
        return quadrants.flatten(1)


def build(spec: EncoderSpec, device: str = "cpu") -> FrameEncoder:
    """The tiny colour-grid encoder (48-d avg, 192-d grid2)."""
    if spec.weights not in (None, "random"):
        raise S2VTError(f"encoder tiny has no weights; got weights={spec.weights!r}")
    dim = 3 * GRID * GRID
    return FrameEncoder(
        ColourGrid(spec.pool),
        spec=spec,
        feature_dim=dim * (4 if spec.pool == "grid2" else 1),
        image_size=spec.image_size or NATIVE_SIZE,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        device=resolve_device(device),
        # A colour grid costs microseconds in torch; converting it would cost seconds.
        auto_runtime=False,
    )
