"""FrameEncoder: uint8 frames in, one float32 feature vector per frame out."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from s2vt.devices import resolve_device  # noqa: F401  (re-exported for the encoders)
from s2vt.encoders.spec import EncoderSpec
from s2vt.errors import S2VTError, one_line

if TYPE_CHECKING:
    from s2vt.encoders.runtimes import CompiledNetwork

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}

# Frames per network call on CPU. Measured on a 2-core AVX2 CPU (docs/performance.md):
# EfficientNet-Lite0 fp32 runs 2-4x faster per image in chunks of 4
# than in one batch of 64 (activations stay in cache); AMX bf16 tiles want larger chunks.
CPU_CHUNK = 4
CPU_CHUNK_FAST_BF16 = 16


# "1" / "0" overrides what /proc/cpuinfo says, so the test suite (or a user) can run as a
# fast-bf16 CPU (Intel AMX) or a plain AVX2 CPU would decide, on any machine.
ASSUME_FAST_BF16_ENV = "S2VT_ASSUME_FAST_BF16"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def cpu_has_fast_bf16() -> bool:
    """True when the CPU runs bf16 matmuls natively (AMX or AVX512-BF16 in /proc/cpuinfo).

    ``S2VT_ASSUME_FAST_BF16=1`` (or ``0``) overrides the CPU's answer; any other value is an
    error, so a typo never silently runs the other way.
    """
    forced = os.environ.get(ASSUME_FAST_BF16_ENV, "").strip().lower()
    if forced in _TRUE:
        return True
    if forced in _FALSE:
        return False
    if forced:
        raise S2VTError(
            f"{ASSUME_FAST_BF16_ENV}={os.environ[ASSUME_FAST_BF16_ENV]!r}: use 1 or 0 "
            "(or unset it to ask the CPU)"
        )
    return _cpuinfo_has_fast_bf16()


@functools.cache
def _cpuinfo_has_fast_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return bool(flags & {"amx_bf16", "avx512_bf16"})


def resolve_precision(precision: str, device: torch.device) -> str:
    """Turn ``auto`` into ``bf16`` (CPU with AMX/AVX512-BF16), ``fp16`` (CUDA) or ``fp32``."""
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def pool_feature_map(feature_map: torch.Tensor, pool: str) -> torch.Tensor:
    """Pool a conv feature map to one vector per image.

    Args:
        feature_map: (N, C, H, W).
        pool: ``avg`` -> (N, C); ``grid2`` -> (N, 4*C): the average of each 2x2 cell,
            concatenated cell by cell (top-left, top-right, bottom-left, bottom-right).

    Returns:
        (N, D) features.
    """
    if pool == "avg":
        return feature_map.mean(dim=(2, 3))
    cells = F.adaptive_avg_pool2d(feature_map, 2)  # (N, C, 2, 2)
    return cells.permute(0, 2, 3, 1).flatten(1)


class ConvPool(nn.Module):
    """A backbone that returns a feature map (N, C, H, W), followed by avg/grid2 pooling."""

    def __init__(self, backbone: nn.Module, pool: str) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = pool

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, D)."""
        return pool_feature_map(self.backbone(images), self.pool)


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file, never running pickled code.

    Accepts a plain state dict or one nested under ``state_dict`` / ``model``.
    """
    path = Path(path)
    if not path.is_file():
        raise S2VTError(f"weights file not found: {path}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise S2VTError(f"cannot read weights file {path}: {one_line(error, 200)}") from error
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise S2VTError(f"weights file {path} does not hold a state dict of tensors")
    return state


def load_weights_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """``model.load_state_dict(state)`` with a one-line S2VTError naming ``source`` on mismatch."""
    # Checkpoints saved from DataParallel / torch.compile carry prefixes.
    for prefix in ("module.", "_orig_mod."):
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()
        detail = " ".join(line.strip() for line in first[:3])[:300]
        raise S2VTError(f"weights {source} do not fit this encoder: {detail}") from error


class FrameEncoder(nn.Module):
    """Turns uint8 RGB frames into one float32 feature vector per frame.

    Attributes:
        name: the encoder name from the spec.
        spec: the :class:`EncoderSpec` it was built from.
        feature_dim: D, after pooling (grid2 = 4 x channels).
        image_size: S, the input side frames should be decoded at.
        precision: the resolved precision (``fp32``, ``bf16`` or ``fp16``).
        device: where the network runs.
        runtime: what runs the network (``torch`` or ``openvino``): ``spec.runtime``
            resolved, or ``torch`` when the network could not be converted (logged).
        runtime_version: that runtime's package version.
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        spec: EncoderSpec,
        feature_dim: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device,
        channels_last: bool = False,
        auto_runtime: bool = True,
    ) -> None:
        """Wrap ``net`` ((N, 3, S, S) normalised images -> (N, D)) as a frame encoder.

        ``auto_runtime=False`` keeps ``runtime: auto`` on torch, for networks so small that
        converting them costs more than it saves; an explicit runtime still applies.
        """
        super().__init__()
        self.name = spec.name
        self.spec = spec
        self.feature_dim = int(feature_dim)
        self.image_size = int(image_size)
        self.device = device
        self.precision = resolve_precision(spec.precision, device)
        if self.precision == "bf16" and device.type == "cpu" and not cpu_has_fast_bf16():
            # Without AMX/AVX512-BF16, PyTorch falls back to slow per-group bf16 convs.
            logger.warning(
                "bf16 asked for on a CPU without AMX or AVX512-BF16: expect it to be much "
                "slower than fp32 (use --precision auto or fp32)"
            )
        self.channels_last = channels_last
        self._pool: ThreadPoolExecutor | None = None  # CPU chunk workers, made on first use
        self._pool_size = 0
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        self.to(device)
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.runtime = "torch"
        self.runtime_version = ""
        self._compiled: CompiledNetwork | None = None
        self._attach_runtime(auto_runtime)

    def _attach_runtime(self, auto_allowed: bool) -> None:
        """Convert the network for ``spec.runtime`` when that is not torch.

        A network the runtime cannot convert (some transformers models) stays on torch,
        said in one log line: the features are the same, only slower.
        """
        from s2vt.encoders import runtimes

        self.runtime_version = runtimes.runtime_version("torch")
        name = runtimes.resolve_runtime(self.spec.runtime, self.device.type,
                                        auto_allowed=auto_allowed)
        if name == "torch":
            return
        identity = {"name": self.spec.name, "weights": self.spec.weights,
                    "pool": self.spec.pool}
        try:
            self._compiled = runtimes.compile_network(
                name, self.net, identity=identity, image_size=self.image_size,
                precision=self.precision, mean=self.mean.flatten().tolist(),
                std=self.std.flatten().tolist(),
            )
        except Exception as error:  # conversion failures come as any exception type
            logger.warning("encoder %s cannot run on %s (%s); running it on torch",
                           self.name, name, one_line(error, 200))
            return
        self.runtime = name
        self.runtime_version = runtimes.runtime_version(name)

    def runtime_meta(self) -> dict[str, str]:
        """``{"name", "version"}`` of the runtime that computes the features (for store metas)."""
        return {"name": self.runtime, "version": self.runtime_version}

    def preprocess(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) uint8 -> (N, 3, S, S) normalised float32 on the encoder's device.

        Frames not already S x S are resized (bilinear, antialiased); callers should
        decode at ``image_size`` so this costs nothing.
        """
        if isinstance(frames, np.ndarray):
            # torch warns on read-only arrays (e.g. from np.asarray(PIL image)); copy those.
            if not frames.flags.writeable:
                frames = frames.copy()
            frames = torch.from_numpy(np.ascontiguousarray(frames))
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"frames must be (N, H, W, 3), got {tuple(frames.shape)}")
        if frames.dtype != torch.uint8:
            raise ValueError(f"frames must be uint8, got {frames.dtype}")
        images = frames.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(
                images,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        images = (images / 255.0 - self.mean) / self.std
        if self.channels_last and self._compiled is None:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised images -> (N, D) features (in the autocast dtype)."""
        return self.net(images)

    @torch.inference_mode()
    def encode(self, frames: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Encode a batch of frames.

        Args:
            frames: (N, S, S, 3) uint8 RGB (numpy or torch); N may be 0.

        Returns:
            (N, D) float32 features on the CPU.
        """
        if len(frames) == 0:
            return torch.zeros(0, self.feature_dim)
        if self._compiled is not None:
            if torch.is_tensor(frames) and frames.device.type == "cpu":
                frames = frames.numpy()
            if self._compiled.takes_uint8(frames):  # normalised in the runtime's graph
                return self._compiled.encode_uint8(frames)
            return self._compiled(self.preprocess(frames))
        images = self.preprocess(frames)
        if self.device.type != "cpu":
            return self._run(images).float().cpu()
        return self._run_chunked(images)

    def _run(self, images: torch.Tensor) -> torch.Tensor:
        """The network under this encoder's autocast (thread-local, so set per call)."""
        dtype = _AUTOCAST_DTYPES.get(self.precision)
        with torch.inference_mode(), torch.autocast(
            device_type=self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            return self.net(images).float()

    def _run_chunked(self, images: torch.Tensor) -> torch.Tensor:
        """CPU: the network on fixed-size chunks, one chunk per core at a time.

        Why: small chunks keep activations in cache, and one single-threaded chunk per core
        (Python threads; torch releases the GIL) scales where intra-op threads stall on
        their barriers as soon as another process (a decode worker) takes a core. A
        frame's features depend on its neighbours in a call only by float rounding (about
        1e-5), so extract and caption agree however frames are grouped.
        """
        fast_bf16 = self.precision != "fp32" and cpu_has_fast_bf16()
        chunk = CPU_CHUNK_FAST_BF16 if fast_bf16 else CPU_CHUNK
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        parts = images.split(chunk)
        threads = torch.get_num_threads()
        if threads <= 1 or len(parts) <= 1:
            return torch.cat([self._run(part) for part in parts])
        if self._pool is None or self._pool_size != threads:
            if self._pool is not None:
                self._pool.shutdown()
            self._pool = ThreadPoolExecutor(threads, thread_name_prefix="s2vt-encode")
            self._pool_size = threads
        previous = torch.get_num_threads()
        # Pool threads take the intra-op thread count current at their first torch call.
        torch.set_num_threads(1)
        try:
            outputs = list(self._pool.map(self._run, parts))
        finally:
            torch.set_num_threads(previous)
        return torch.cat(outputs)
