"""torchvision CNNs: vgg16 / alexnet fc7 (4096-d, S2VT's feature) and pooled ResNets.

Weights: ``spec.weights`` None -> torchvision's weights API (``DEFAULT``: from the torch
hub cache, downloading when online); a path -> a local state dict (``weights_only``);
``"random"`` -> random initialisation (seeded, for testing pipelines and dimensions).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from s2vt.encoders.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ConvPool,
    FrameEncoder,
    load_state_dict_file,
    load_weights_into,
    resolve_device,
)
from s2vt.encoders.spec import EncoderSpec
from s2vt.errors import S2VTError, one_line

NATIVE_SIZE = 224


class _Fc7(nn.Module):
    """VGG/AlexNet up to the ReLU after fc7: (N, 3, S, S) -> (N, 4096)."""

    def __init__(self, model: nn.Module, classifier_end: int) -> None:
        super().__init__()
        self.features = model.features
        self.avgpool = model.avgpool  # adaptive: any input size gives the fc6 input size
        self.classifier = model.classifier[:classifier_end]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(images)), 1))


class _ResNetTrunk(nn.Module):
    """ResNet up to layer4: (N, 3, S, S) -> (N, 2048, S/32, S/32)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(
            model.conv1, model.bn1, model.relu, model.maxpool,
            model.layer1, model.layer2, model.layer3, model.layer4,
        )  # fmt: skip

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)


@dataclass(frozen=True)
class _Family:
    """How to cut one torchvision model into a frame encoder."""

    head: Callable[[nn.Module, str, str], nn.Module]  # (model, pool, name) -> net
    channels: int
    conv: bool  # True: pooled conv features (grid2 allowed); False: fc7


def _fc7_head(classifier_end: int) -> Callable[[nn.Module, str, str], nn.Module]:
    def head(model: nn.Module, pool: str, name: str) -> nn.Module:
        return _Fc7(model, classifier_end)

    return head


def _resnet_head(model: nn.Module, pool: str, name: str) -> nn.Module:
    return ConvPool(_ResNetTrunk(model), pool)


# torchvision classifier layout: vgg16 [fc6, relu, drop, fc7, relu, drop, fc8];
# alexnet [drop, fc6, relu, drop, fc7, relu, fc8] -> keep up to fc7's ReLU.
FAMILIES: dict[str, _Family] = {
    "vgg16": _Family(_fc7_head(5), 4096, conv=False),
    "alexnet": _Family(_fc7_head(6), 4096, conv=False),
    "resnet50": _Family(_resnet_head, 2048, conv=True),
    "resnet152": _Family(_resnet_head, 2048, conv=True),
}


def _hub_checkpoint_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _pretrained_model(name: str) -> nn.Module:
    """The torchvision model with its DEFAULT weights, or S2VTError saying how to supply them."""
    import torchvision

    weights = torchvision.models.get_model_weights(name).DEFAULT
    file_name = Path(weights.url).name
    try:
        return torchvision.models.get_model(name, weights=weights)
    except Exception as error:  # URLError, OSError, HTTP errors, a corrupt download...
        reason = one_line(error, 160)
        raise S2VTError(
            f"cannot get {name} weights {weights} ({reason}); offline? download {weights.url} "
            f"elsewhere and pass --weights PATH, or place {file_name} in "
            f"{_hub_checkpoint_dir()}"
        ) from error


def create_model(name: str, weights: str | None) -> nn.Module:
    """A full torchvision classifier with the requested weights (see module docstring)."""
    import torchvision

    if weights is None:
        return _pretrained_model(name)
    if weights == "random":
        # Seeded without touching the caller's global RNG: the same random encoder every time.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return torchvision.models.get_model(name, weights=None)
    state = load_state_dict_file(weights)  # first: a bad file fails before the slow init
    model = torchvision.models.get_model(name, weights=None)
    load_weights_into(model, state, str(weights))
    return model


def build(spec: EncoderSpec, device: str = "cpu") -> FrameEncoder:
    """A torchvision frame encoder named by ``spec.name`` (one of :data:`FAMILIES`)."""
    family = FAMILIES[spec.name]
    if spec.pool == "grid2" and not family.conv:
        raise S2VTError(
            f"encoder {spec.name} gives fc7 vectors, which have no spatial grid; "
            f"use --pool avg, or a conv encoder (resnet50, resnet152, efficientnet_lite0) "
            f"for grid2"
        )
    model = create_model(spec.name, spec.weights)
    pool_factor = 4 if spec.pool == "grid2" else 1
    return FrameEncoder(
        family.head(model, spec.pool, spec.name),
        spec=spec,
        feature_dim=family.channels * pool_factor,
        image_size=spec.image_size or NATIVE_SIZE,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        device=resolve_device(device),
        channels_last=True,
    )
