"""Flow fields -> "flow images", the paper's input to the flow CNN.

The x and y components are centred at 128 and scaled linearly into 0-255 after clipping at
``bound`` pixels; the magnitude is the third channel, on the same scale from 0 (so a still
video is 128/128/0 everywhere). Fixed scaling, not per-frame normalisation, keeps the
images of different videos comparable: the same motion gives the same pixel values.
"""

from __future__ import annotations

import numpy as np


def flow_to_image(flow: np.ndarray, bound: float) -> np.ndarray:
    """Render flow fields as uint8 images.

    Args:
        flow: (..., H, W, 2) float displacements in pixels (x to the right, y down).
        bound: displacement that reaches the end of the range (see the module docstring).

    Returns:
        (..., H, W, 3) uint8: ``128 + 127 * clip(fx / bound)``, the same for fy, and
        ``min(255, 127 * |f| / bound)``.
    """
    flow = np.asarray(flow, dtype=np.float32)
    if flow.shape[-1] != 2:
        raise ValueError(f"flow must end in 2 components (x, y), got shape {flow.shape}")
    scale = np.float32(127.0 / bound)
    xy = 128.0 + scale * np.clip(flow, -bound, bound)
    magnitude = np.minimum(255.0, scale * np.hypot(flow[..., 0], flow[..., 1]))
    image = np.concatenate([xy, magnitude[..., None]], axis=-1)
    return np.rint(image).astype(np.uint8)
