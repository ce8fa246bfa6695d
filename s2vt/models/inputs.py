"""How frame features become model inputs: the one frame subsampling and the one padding.

Training (its batches and its validation captions) and the captioner all go through these
two functions, so a model meets the same frames and the same padding whether it reads a
feature store or a raw video.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def fit_frames(features: np.ndarray, max_frames: int) -> np.ndarray:
    """Evenly subsample features to at most ``max_frames`` rows.

    Args:
        features: ``(T, D)`` frame features of one video.
        max_frames: the most rows kept (a model's ``max_frames``).

    Returns:
        ``(min(T, max_frames), D)``: ``features`` itself when it is short enough, else the
        rows at evenly spaced positions from the first to the last frame.
    """
    if len(features) <= max_frames:
        return features
    keep = np.linspace(0, len(features) - 1, max_frames).round().astype(np.int64)
    return features[keep]


def pad_frames(videos: Sequence[torch.Tensor | np.ndarray],
               device: torch.device | str | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad the feature sequences of several videos into one batch and its mask.

    Args:
        videos: ``B`` sequences of shape ``(T_i, D)`` (any float dtype, tensors or arrays),
            each with at least one frame.
        device: where the batch goes (default: the CPU).

    Returns:
        ``frames`` ``(B, T, D)`` float32 with ``T = max(T_i)`` and zeros after each video's
        last frame, and ``mask`` ``(B, T)`` bool, True for real frames (what
        :meth:`CaptionModel.forward` and ``generate`` take as ``feature_mask``).

    Raises:
        ValueError: no videos, or sequences that are not ``(T_i, D)`` with one ``D``.
    """
    import torch
    from torch.nn.utils.rnn import pad_sequence

    if not videos:
        raise ValueError("pad_frames needs at least one video")
    tensors = [torch.as_tensor(video) for video in videos]
    if any(t.dim() != 2 or t.shape[1] != tensors[0].shape[1] for t in tensors):
        raise ValueError(f"videos must be (T, D) with one D, got "
                         f"{[tuple(t.shape) for t in tensors]}")
    frames = pad_sequence(tensors, batch_first=True).to(device=device, dtype=torch.float32)
    lengths = torch.tensor([len(t) for t in tensors], device=frames.device)
    mask = torch.arange(frames.shape[1], device=frames.device)[None] < lengths[:, None]
    return frames, mask
