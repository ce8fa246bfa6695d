"""EfficientNet-Lite0 in plain torch, with timm's ``tf_efficientnet_lite0`` state-dict keys.

Why not ``timm.create_model``: ``import timm`` loads every timm layer plus
``torchvision.ops`` and ``torch._dynamo`` (about 3 s of CPU here), which alone broke the
``s2vt caption`` start-up budget (a few seconds); this network needs none of it. The layout
(tensor names, shapes, TF "same" padding on strided convs, BN eps 1e-3, ReLU6, skips)
follows timm exactly, so timm checkpoints load key for key, and
``tests/test_encoders.py`` checks the features against an independent timm model.

For inference, :func:`fuse_batchnorm` folds every BatchNorm into the convolution before
it (one kernel per conv instead of conv + BN + activation passes over memory).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

FEATURE_CHANNELS = 1280
STEM_CHANNELS = 32
BN_EPS = 1e-3
# (block kind, kernel, stride, expansion, output channels, repeats) per stage.
STAGES: tuple[tuple[str, int, int, int, int, int], ...] = (
    ("ds", 3, 1, 1, 16, 1),
    ("ir", 3, 2, 6, 24, 2),
    ("ir", 5, 2, 6, 40, 2),
    ("ir", 3, 2, 6, 80, 3),
    ("ir", 5, 1, 6, 112, 3),
    ("ir", 5, 2, 6, 192, 4),
    ("ir", 3, 1, 6, 320, 1),
)


class SameConv2d(nn.Conv2d):
    """A strided conv with TensorFlow's "same" padding (asymmetric: extra pixel at the end)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(reversed(x.shape[-2:]), reversed(self.kernel_size),
                                        reversed(self.stride), strict=True):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _conv(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:  # odd kernels: "same" is symmetric, a static padding does it
        return nn.Conv2d(cin, cout, kernel, padding=kernel // 2, groups=groups, bias=False)
    return SameConv2d(cin, cout, kernel, stride=stride, groups=groups, bias=False)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


class _Fusable(nn.Module):
    """A block whose (conv, batchnorm) attribute pairs :func:`fuse_batchnorm` can fold."""

    PAIRS: tuple[tuple[str, str], ...] = ()


class DepthwiseSeparable(_Fusable):
    """Depthwise conv -> BN -> ReLU6 -> pointwise conv -> BN (stage 0)."""

    PAIRS = (("conv_dw", "bn1"), ("conv_pw", "bn2"))

    def __init__(self, cin: int, cout: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv_dw = _conv(cin, cin, kernel, stride, groups=cin)
        self.bn1 = _bn(cin)
        self.conv_pw = nn.Conv2d(cin, cout, 1, bias=False)
        self.bn2 = _bn(cout)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.bn1(self.conv_dw(x)), inplace=True)
        y = self.bn2(self.conv_pw(y))
        return y + x if self.has_skip else y


class InvertedResidual(_Fusable):
    """Expand (1x1) -> depthwise -> project (1x1), with BN after each, ReLU6 after two."""

    PAIRS = (("conv_pw", "bn1"), ("conv_dw", "bn2"), ("conv_pwl", "bn3"))

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.conv_pw = nn.Conv2d(cin, mid, 1, bias=False)
        self.bn1 = _bn(mid)
        self.conv_dw = _conv(mid, mid, kernel, stride, groups=mid)
        self.bn2 = _bn(mid)
        self.conv_pwl = nn.Conv2d(mid, cout, 1, bias=False)
        self.bn3 = _bn(cout)
        self.has_skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self.bn1(self.conv_pw(x)), inplace=True)
        y = F.relu6(self.bn2(self.conv_dw(y)), inplace=True)
        y = self.bn3(self.conv_pwl(y))
        return y + x if self.has_skip else y


class EfficientNetLite0(_Fusable):
    """EfficientNet-Lite0; ``state_dict()`` keys equal timm's ``tf_efficientnet_lite0``.

    Args:
        num_classes: size of the ImageNet classifier; 0 = no classifier (``forward`` then
            returns the pooled 1280-d features).
    """

    PAIRS = (("conv_stem", "bn1"), ("conv_head", "bn2"))

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv_stem = _conv(3, STEM_CHANNELS, 3, stride=2)
        self.bn1 = _bn(STEM_CHANNELS)
        stages, cin = [], STEM_CHANNELS
        for kind, kernel, stride, expand, cout, repeats in STAGES:
            blocks = []
            for index in range(repeats):
                step = stride if index == 0 else 1
                if kind == "ds":
                    blocks.append(DepthwiseSeparable(cin, cout, kernel, step))
                else:
                    blocks.append(InvertedResidual(cin, cout, kernel, step, expand))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = nn.Conv2d(cin, FEATURE_CHANNELS, 1, bias=False)
        self.bn2 = _bn(FEATURE_CHANNELS)
        self.num_classes = num_classes
        self.classifier = (nn.Linear(FEATURE_CHANNELS, num_classes) if num_classes
                           else nn.Identity())

    def reset_classifier(self, num_classes: int = 0) -> None:
        """Drop the classifier (``0``), as timm's method of the same name does."""
        if num_classes != 0:
            raise ValueError("only num_classes=0 (no classifier) is supported")
        self.num_classes = 0
        self.classifier = nn.Identity()

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) images normalised to [-1, 1] -> (N, 1280, S/32, S/32)."""
        x = F.relu6(self.bn1(self.conv_stem(images)), inplace=True)
        x = self.blocks(x)
        return F.relu6(self.bn2(self.conv_head(x)), inplace=True)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, num_classes) logits, or (N, 1280) pooled features."""
        return self.classifier(self.forward_features(images).mean(dim=(2, 3)))


def fuse_batchnorm(model: nn.Module) -> nn.Module:
    """Fold each BatchNorm into the conv before it, in place (eval-mode inference only).

    The BN becomes an identity; outputs equal the unfused model's up to float rounding.

    Returns:
        ``model``, in eval mode.
    """
    model.eval()
    for module in list(model.modules()):
        if not isinstance(module, _Fusable):
            continue
        for conv_name, bn_name in module.PAIRS:
            bn = getattr(module, bn_name)
            if isinstance(bn, nn.BatchNorm2d):
                setattr(module, conv_name, fuse_conv_bn_eval(getattr(module, conv_name), bn))
                setattr(module, bn_name, nn.Identity())
    return model
