"""RAFT (Teed & Deng 2020) through torchvision: the most accurate method, slow without a GPU.

Two registered sizes, ``raft_small`` (1 M parameters) and ``raft_large`` (5 M). Weights
come from torchvision's weights API when ``weights`` is None (downloaded once into the
torch hub cache, which then works offline), from a local state dict file, or are random
(``"random"``, for tests of the plumbing). An offline download ends in one line that says
how to point at a local file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from s2vt.errors import S2VTError, one_line
from s2vt.flow.config import FlowConfig

# Pairs per network call: bounds the correlation volume's memory (it grows with H*W squared).
_CHUNK = 8
# RAFT's feature maps are 1/8 of the input: sides must be multiples of 8, and at least
# 128 px for its 4-level correlation pyramid; smaller inputs are padded (edge pixels).
_MULTIPLE = 8
_MIN_SIDE = 128
_ITERATIONS = 12  # torchvision's default number of flow updates


def unavailable() -> str | None:
    """Why RAFT cannot run here (no torchvision optical_flow models), or None."""
    try:
        import torchvision.models.optical_flow  # noqa: F401
    except ImportError:
        return "flow methods 'raft_small'/'raft_large' need torchvision >= 0.12"
    return None


def _network(name: str, weights: str | None) -> Any:
    import torch
    from torchvision.models import optical_flow

    builder = getattr(optical_flow, name)
    if weights == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return builder(weights=None)
    network = builder(weights=None)
    if weights is None:
        enum = {"raft_small": optical_flow.Raft_Small_Weights,
                "raft_large": optical_flow.Raft_Large_Weights}[name].DEFAULT
        try:
            state = enum.get_state_dict(progress=False)
        except Exception as error:  # URLError, HTTPError, OSError: no network, no cache
            raise S2VTError(
                f"cannot download {name} weights through torchvision ({one_line(error)}); "
                "offline, pass --flow-weights PATH to a local state dict (the .pth "
                f"torchvision saves under ~/.cache/torch/hub/checkpoints, url {enum.url})"
            ) from None
    else:
        state = _load_state_dict(Path(weights), name)
    try:
        network.load_state_dict(state)
    except (RuntimeError, KeyError, TypeError) as error:
        raise S2VTError(f"flow weights {weights} do not fit {name}: {one_line(error)}") from None
    return network


def _load_state_dict(path: Path, name: str) -> dict[str, Any]:
    import pickle

    import torch

    if not path.is_file():
        raise S2VTError(f"flow weights file not found: {path} ({name} needs a local state "
                        "dict, .pth/.pt or .safetensors)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, TypeError) as error:
        raise S2VTError(f"cannot load flow weights {path} as a plain state dict "
                        f"({one_line(error)})") from None
    if not isinstance(state, dict):
        raise S2VTError(f"flow weights {path} hold a {type(state).__name__}, not a state dict")
    return state


class Raft:
    """A torchvision RAFT network on one device, in eval mode."""

    def __init__(self, name: str, weights: str | None, device: Any) -> None:
        from s2vt.devices import resolve_device

        self.name = name
        self.device = resolve_device(device)
        self.network = _network(name, weights).eval().to(self.device)

    def compute(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        height, width = first.shape[1:3]
        pad_h = max(_MIN_SIDE - height, -height % _MULTIPLE)
        pad_w = max(_MIN_SIDE - width, -width % _MULTIPLE)
        parts = []
        with torch.inference_mode():
            for start in range(0, len(first), _CHUNK):
                pair = [self._tensor(x[start : start + _CHUNK]) for x in (first, second)]
                if pad_h or pad_w:
                    pair = [F.pad(x, (0, pad_w, 0, pad_h), mode="replicate") for x in pair]
                flow = self.network(*pair, num_flow_updates=_ITERATIONS)[-1]
                flow = flow[:, :, :height, :width].permute(0, 2, 3, 1)
                parts.append(flow.float().cpu().numpy())
        return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)

    def _tensor(self, frames: np.ndarray) -> Any:
        import torch

        # RAFT's inputs are RGB in [-1, 1] (torchvision's OpticalFlow transforms).
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
        return x.permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def build_small(config: FlowConfig, device: Any = "cpu") -> Raft:
    """RAFT-small on ``device``."""
    return Raft("raft_small", config.weights, device)


def build_large(config: FlowConfig, device: Any = "cpu") -> Raft:
    """RAFT-large on ``device``."""
    return Raft("raft_large", config.weights, device)
