"""OpenVINO on CPU: the frame network converted once, cached on disk, compiled per batch shape.

Conversion (``openvino.convert_model`` on the torch module, traced at the encoder's image
size) costs seconds, so the converted network (OpenVINO IR) is kept in the s2vt cache
(:mod:`s2vt.encoders.runtimes.cache`), and OpenVINO's own compiled-blob cache
(``CACHE_DIR``) sits beside it: a second run reads and compiles in a fraction of a second.

Why static batch shapes: compiled for a fixed batch, OpenVINO's CPU kernels ran faster
than with a dynamic batch dimension (measured at 128 and 224 px). Frames go through in
chunks of :data:`CHUNK`; a shorter last chunk is zero-padded up to a multiple of
:data:`PAD_STEP`, so at most ``CHUNK / PAD_STEP`` shapes are ever compiled, and every
frame of a full chunk goes through the same kernels whatever its neighbours.

Precision is OpenVINO's ``INFERENCE_PRECISION_HINT`` (``f32`` / ``bf16`` / ``f16``). It
must be given even for fp32: on CPUs with native bf16 OpenVINO would otherwise pick bf16
by itself.
"""

from __future__ import annotations

import functools
import logging
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import s2vt
from s2vt.encoders.runtimes import runtime_version
from s2vt.encoders.runtimes.cache import CachedFiles, cache_root, network_digest, source_digest

logger = logging.getLogger(__name__)

# Frames per inference call (measured: batch 16 ran at least as fast as 4 or 8 at 128 and
# 224 px, and AMX tiles want large batches).
CHUNK = 16
PAD_STEP = 4
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# precision -> the CPU capability OpenVINO reports when it runs that precision natively.
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}


@functools.cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def _folder() -> Path:
    return cache_root() / "openvino"


def _convert(net: nn.Module, image_size: int) -> Any:
    """The torch network as an OpenVINO model with input (batch, 3, S, S), batch dynamic."""
    import openvino as ov

    example = torch.zeros(2, 3, image_size, image_size)
    with warnings.catch_warnings(), torch.no_grad():
        # Tracing warns that shapes become constants: they are, the size is in the key.
        warnings.simplefilter("ignore")
        return ov.convert_model(net, example_input=example,
                                input=[(-1, 3, image_size, image_size)])


def check_conversion(model: Any, net: nn.Module, image_size: int) -> None:
    """Raise ValueError unless ``model`` computes what ``net`` does, in fp32.

    Why: tracing turns Python numbers taken from shapes into constants, so a network that
    reads its batch size (``len(x)``) converts without error yet computes garbage for other
    batch sizes. The probe batch (3) differs from the traced example's (2) to catch that.
    """
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(3, 3, image_size, image_size, generator=generator)
    with torch.inference_mode():
        expected = net(probe).float()
    compiled = _core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = torch.from_numpy(np.array(compiled(probe.numpy())[0]))
    if got.shape != expected.shape:
        raise ValueError(f"the converted network gives shape {tuple(got.shape)} where torch "
                         f"gives {tuple(expected.shape)}")
    error = (got - expected).abs().max().item()
    scale = expected.abs().max().item()
    if not error <= 1e-3 * scale:
        raise ValueError(f"the converted network differs from torch by {error:.3g} "
                         f"(outputs up to {scale:.3g})")


def load_model(net: nn.Module, identity: dict[str, Any], image_size: int) -> Any:
    """The converted network from the cache, or converted now and cached.

    Args:
        net: the torch frame network (eval mode, fp32, CPU).
        identity: encoder name, weights and pooling (part of the cache key).
        image_size: S.

    Returns:
        An ``openvino.Model`` with input (batch, 3, S, S), batch dynamic.
    """
    import openvino as ov

    parts = {
        "runtime": "openvino",
        "openvino": runtime_version("openvino"),
        "torch": torch.__version__,
        "s2vt": s2vt.__version__,
        "source": source_digest(),
        "network": network_digest(net),
        "identity": identity,
        "image_size": int(image_size),
    }
    cached = CachedFiles(_folder(), parts)
    files = cached.load()
    if files is not None:
        logger.debug("openvino network from the cache: %s", files["xml"])
        return _core().read_model(str(files["xml"]), str(files["bin"]))
    logger.info("converting encoder %s to OpenVINO at %d px (once; cached in %s)",
                identity.get("name"), image_size, cached.folder)
    model = _convert(net, image_size)
    check_conversion(model, net, image_size)
    cached.folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cached.folder, prefix=".convert-") as tmp:
        xml = Path(tmp) / "network.xml"
        # compress_to_fp16 would round the weights; precision is chosen at compile time.
        ov.save_model(model, str(xml), compress_to_fp16=False)
        cached.store({"xml": xml, "bin": xml.with_suffix(".bin")})
    return model


def effective_hint(precision: str) -> str:
    """OpenVINO's precision hint for ``precision`` on this CPU (f32 where it is not native)."""
    capability = _CAPABILITY.get(precision)
    if capability is not None:
        available = _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        if capability not in available:
            logger.warning("this CPU has no native %s: OpenVINO runs the encoder in fp32",
                           precision)
            return "f32"
    return _HINTS[precision]


class OpenVINONetwork:
    """A converted frame network: (N, 3, S, S) float32 CPU images -> (N, D) float32 features.

    Compiles lazily, once per (batch shape, thread count); the thread count follows
    ``torch.get_num_threads()`` so ``--threads`` means the same on every runtime.
    """

    def __init__(self, model: Any, image_size: int, precision: str) -> None:
        self.image_size = int(image_size)
        self.precision = precision
        self.hint = effective_hint(precision)
        self.version = runtime_version("openvino")
        self._model = model
        self._requests: dict[tuple[int, int], Any] = {}
        self._lock = threading.Lock()

    def _request(self, batch: int, threads: int) -> Any:
        key = (batch, threads)
        request = self._requests.get(key)
        if request is None:
            model = self._model.clone()
            model.reshape([batch, 3, self.image_size, self.image_size])
            folder = _folder() / "compiled"
            folder.mkdir(parents=True, exist_ok=True)
            config = {
                "INFERENCE_PRECISION_HINT": self.hint,
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": "LATENCY",
                "CACHE_DIR": str(folder),
            }
            request = _core().compile_model(model, "CPU", config).create_infer_request()
            self._requests[key] = request
        return request

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) float32 -> (N, D) float32, N >= 1."""
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        threads = max(1, torch.get_num_threads())
        outputs = []
        with self._lock:  # one infer request per shape, so one caller at a time
            for start in range(0, len(array), CHUNK):
                part = array[start : start + CHUNK]
                size = len(part)
                batch = min(CHUNK, -(-size // PAD_STEP) * PAD_STEP)
                if batch != size:
                    padding = np.zeros((batch - size, *part.shape[1:]), dtype=part.dtype)
                    part = np.concatenate([part, padding])
                request = self._request(batch, threads)
                request.infer(part)
                outputs.append(np.array(request.get_output_tensor(0).data[:size]))
        return torch.from_numpy(np.concatenate(outputs)).float()


def compile_network(
    net: nn.Module, *, identity: dict[str, Any], image_size: int, precision: str
) -> OpenVINONetwork:
    """``net`` as an :class:`OpenVINONetwork` (see ``s2vt.encoders.runtimes.compile_network``)."""
    model = load_model(net, identity, image_size)
    return OpenVINONetwork(model, image_size, precision)
