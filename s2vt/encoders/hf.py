"""``hf:<model id or local folder>``: transformers vision models (CLIP, ViT, DINOv2, ...).

The per-frame vector is the model's pooled image embedding before any projection head:
CLIP's ``pooler_output`` (the post-layernormed class token; the 512-d text-aligned
projection is a linear map the caption model learns anyway, so it is not applied),
DINOv2's ``pooler_output`` (its layernormed class token), and for ViT the layernormed
class token of ``last_hidden_state`` (ViT's ``pooler_output`` goes through a tanh layer
that most checkpoints never trained). Other models use ``pooler_output`` when they have
one, else the mean of ``last_hidden_state``. ``grid2`` averages the patch tokens in 2x2
cells of the patch grid (4 x hidden size).

Normalisation and input size come from the folder's ``preprocessor_config.json``
(``image_mean``, ``image_std``, ``crop_size``/``size``) when present.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from s2vt.encoders.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    FrameEncoder,
    pool_feature_map,
    resolve_device,
)
from s2vt.encoders.registry import HF_PREFIX
from s2vt.encoders.spec import EncoderSpec
from s2vt.errors import S2VTError, one_line

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# model_type -> transformers class that gives the vision tower (default: AutoModel).
_VISION_CLASSES = {"clip": "CLIPVisionModel", "siglip": "SiglipVisionModel"}
# model_type -> how to read the pooled embedding (default: "pooler", falling back to "mean").
_POOLED = {"vit": "cls"}
# model_type -> (mean, std) when the folder has no preprocessor config.
_DEFAULT_NORM = {
    "clip": (CLIP_MEAN, CLIP_STD),
    "clip_vision_model": (CLIP_MEAN, CLIP_STD),
    "vit": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "siglip": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    "siglip_vision_model": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
}


def _hub_reachable() -> bool:
    """False when the Hub cannot be reached (offline flag or no DNS), decided in milliseconds.

    transformers would otherwise retry for about half a minute before failing.
    """
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _offline_error(model_id: str) -> S2VTError:
    return S2VTError(
        f"hf model {model_id!r} is not a local folder and cannot be downloaded here "
        f"(offline); download it elsewhere (e.g. `huggingface-cli download {model_id} "
        f"--local-dir DIR`), copy DIR here and use --encoder hf:DIR"
    )


def _load(source: str, local_only: bool, random_init: bool) -> tuple[nn.Module, Any]:
    """(vision model, its config) from a folder or Hub id."""
    import transformers

    config = transformers.AutoConfig.from_pretrained(source, local_files_only=local_only)
    class_name = _VISION_CLASSES.get(config.model_type)
    model_class = getattr(transformers, class_name) if class_name else transformers.AutoModel
    if random_init:
        vision_config = getattr(config, "vision_config", config) if class_name else config
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = model_class._from_config(vision_config)
    else:
        model = model_class.from_pretrained(source, local_files_only=local_only)
    return model, config


def _resolve_source(name: str, weights: str | None) -> tuple[str, bool]:
    """(folder or Hub id, local_only) for ``hf:<id|folder>`` (``weights`` may name a folder)."""
    source = name[len(HF_PREFIX) :]
    if weights not in (None, "random"):
        source = weights
    if not source:
        raise S2VTError("encoder hf: needs a model id or folder, e.g. hf:facebook/dinov2-small")
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path), True
    if path.exists():
        raise S2VTError(f"hf model {source!r} is a file; pass the model folder (with config.json)")
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise S2VTError(f"hf model folder not found: {source}")
    return source, False


def _read_preprocessor(source: str, local_only: bool) -> dict:
    """The model's preprocessor_config.json as a dict ({} when it has none)."""
    from transformers.utils import cached_file

    try:
        found = cached_file(
            source,
            "preprocessor_config.json",
            local_files_only=local_only,
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
    except OSError:
        found = None
    if not found:
        return {}
    try:
        return json.loads(Path(found).read_text())
    except (OSError, ValueError) as error:
        raise S2VTError(f"cannot read {found}: {error}") from error


def _size_from(preprocessor: dict, config: Any) -> int:
    """Native input side: the processor's crop size, else its resize size, else the config's."""
    for key in ("crop_size", "size"):
        value = preprocessor.get(key)
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            for sub in ("height", "shortest_edge", "width"):
                if isinstance(value.get(sub), int):
                    return value[sub]
    vision = getattr(config, "vision_config", config)
    size = getattr(vision, "image_size", None)
    if isinstance(size, (list, tuple)):
        size = size[0]
    return int(size) if size else 224


class _HFEmbed(nn.Module):
    """(N, 3, S, S) normalised images -> (N, D) pooled embeddings (or 2x2 patch-grid cells)."""

    def __init__(self, model: nn.Module, pooled: str, pool: str, patch_size: int | None,
                 interpolate: bool) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.pooled = pooled
        self.pool = pool
        self.patch_size = patch_size
        self.kwargs = {"interpolate_pos_encoding": True} if interpolate else {}

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=images, **self.kwargs)
        hidden = out.last_hidden_state
        if self.pool == "grid2":
            rows = images.shape[-2] // self.patch_size
            cols = images.shape[-1] // self.patch_size
            patches = hidden[:, -rows * cols :]  # after the class / register tokens
            # -1 for the batch, not len(hidden): a traced export (the OpenVINO runtime)
            # would freeze the example's batch size into the network.
            grid = patches.reshape(-1, rows, cols, hidden.shape[-1]).permute(0, 3, 1, 2)
            return pool_feature_map(grid, "grid2")
        if self.pooled == "cls":
            return hidden[:, 0]
        pooled = getattr(out, "pooler_output", None)
        if pooled is not None:
            return pooled.flatten(1)
        return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))


def build(spec: EncoderSpec, device: str = "cpu") -> FrameEncoder:
    """A transformers vision model as a frame encoder (see module docstring)."""
    source, local_only = _resolve_source(spec.name, spec.weights)
    random_init = spec.weights == "random"
    try:
        try:
            model, config = _load(source, True, random_init)
            local_only = True
        except OSError:
            if local_only:
                raise
            if not _hub_reachable():
                raise _offline_error(source) from None
            model, config = _load(source, False, random_init)
    except S2VTError:
        raise
    except Exception as error:  # OSError, ValueError (unknown model type), ...
        raise S2VTError(f"cannot load hf model {source!r}: {one_line(error, 200)}") from error

    preprocessor = _read_preprocessor(source, local_only)
    default_mean, default_std = _DEFAULT_NORM.get(config.model_type, (IMAGENET_MEAN, IMAGENET_STD))
    mean = tuple(preprocessor.get("image_mean", default_mean))
    std = tuple(preprocessor.get("image_std", default_std))
    native = _size_from(preprocessor, config)
    image_size = spec.image_size or native

    vision = getattr(config, "vision_config", config)
    patch_size = getattr(vision, "patch_size", None)
    if isinstance(patch_size, (list, tuple)):
        patch_size = patch_size[0]
    if spec.pool == "grid2" and not patch_size:
        raise S2VTError(f"encoder {spec.name}: grid2 needs a patch-token model (ViT style)")
    accepts = inspect.signature(model.forward).parameters
    interpolate = image_size != native and "interpolate_pos_encoding" in accepts

    net = _HFEmbed(model, _POOLED.get(config.model_type, "pooler"), spec.pool, patch_size,
                   interpolate)  # fmt: skip
    torch_device = resolve_device(device)
    # The embedding size depends on the model family; one tiny forward pass settles it.
    with torch.inference_mode():
        probe = net.eval()(torch.zeros(1, 3, image_size, image_size))
    return FrameEncoder(
        net,
        spec=spec,
        feature_dim=probe.shape[-1],
        image_size=image_size,
        mean=mean,
        std=std,
        device=torch_device,
    )
