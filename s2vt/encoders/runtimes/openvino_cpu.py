"""OpenVINO on CPU: the frame network converted once, cached on disk, compiled per batch shape.

Conversion (``openvino.convert_model`` on the torch module, traced at the encoder's image
size) costs seconds, so the converted network (OpenVINO IR) is kept in the s2vt cache
(:mod:`s2vt.encoders.runtimes.cache`), and OpenVINO's own compiled-blob cache
(``CACHE_DIR``) sits beside it: a second run reads and compiles in a fraction of a second.

Why static batch shapes: compiled for a fixed batch, OpenVINO's CPU kernels ran faster
than with a dynamic batch dimension (measured at 128 and 224 px). Frames go through in
chunks of ``Mode.chunk`` (:data:`DEFAULT_MODE`, chosen by measurement); a shorter last
chunk is zero-padded up to a multiple of :data:`PAD_STEP`, so only a few shapes are ever
compiled, and every frame of a full chunk goes through the same kernels whatever its
neighbours.

uint8 frames at the network's size (what decoding for the encoder gives) go into the graph
as they are: OpenVINO converts, normalises and transposes them in its first kernels
(:func:`uint8_model`), on a model derived in memory from the cached one, so the on-disk
IR and its key do not depend on it.

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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import s2vt
from s2vt.encoders.runtimes import runtime_version
from s2vt.encoders.runtimes.cache import CachedFiles, cache_root, network_digest, source_digest

logger = logging.getLogger(__name__)

# A short last chunk is zero-padded up to a multiple of this (bounds the shapes compiled).
PAD_STEP = 4
_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
# precision -> the CPU capability OpenVINO reports when it runs that precision natively.
_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}


def openvino_module() -> Any:
    """``openvino``, imported without its import-time telemetry.

    Why: ``import openvino`` sends a usage event over the network (``openvino_telemetry``,
    on by default, from a thread that forks the whole process) and writes a consent folder
    under ``~/intel``. s2vt runs offline and sends nothing, so the telemetry package is
    hidden from OpenVINO while it is first imported: it then uses its own no-op stub.
    """
    import sys

    if "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
        try:
            import openvino
        finally:
            del sys.modules["openvino_telemetry"]
        return openvino
    import openvino

    return openvino


@functools.cache
def _core() -> Any:
    ov = openvino_module()

    return ov.Core()


def _folder() -> Path:
    return cache_root() / "openvino"


def _convert(net: nn.Module, image_size: int) -> Any:
    """The torch network as an OpenVINO model with input (batch, 3, S, S), batch dynamic."""
    ov = openvino_module()

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
    ov = openvino_module()

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


@dataclass(frozen=True)
class Mode:
    """How the compiled network is run.

    Attributes:
        hint: OpenVINO's ``PERFORMANCE_HINT``: ``THROUGHPUT`` (one stream per thread, each
            single-threaded, chunks in flight together) or ``LATENCY`` (one stream using
            every thread, one chunk at a time).
        chunk: frames per inference call (static batch shape).
    """

    hint: str
    chunk: int


# Chosen by measurement: `python scripts/bench.py --experiment openvino_modes --repeats 5`
# (EfficientNet-Lite0, uint8 frames at the encoder's size so the in-graph preprocessing is
# included, 2 threads, calls of 64 frames, alternating rounds, medians of 5; 2-core AMD EPYC
# with AVX512-BF16, under the exclusive lock, load 4.5 -> 2.8 from the jobs just before it
# and the run itself). images/s, idle / with one core kept busy by another process (as
# extract's decode worker does):
#
#   mode (chunk)      128 px fp32   128 px bf16   224 px fp32   224 px bf16
#   THROUGHPUT (4)    1149 /  835   1996 / 1641    369 / 241     599 / 526
#   THROUGHPUT (8)    1088 /  788   2241 / 1564    321 / 227     522 / 446
#   THROUGHPUT (16)   1005 /  732   2269 / 1495    325 / 199     493 / 401
#   LATENCY (16)      1084 /  580   1888 / 1209    331 / 157     511 / 321
#   LATENCY (64)       928 /  479   1902 / 1017    298 / 138     474 / 268
#   torch eager        384 /  240    935 /  569    138 /  78     160 / 118
#
# THROUGHPUT with one single-threaded stream per thread and chunks of 4 is fastest or within
# 12 % of it everywhere, and clearly fastest beside a busy core, where a LATENCY stream's
# threads wait on each other. (Fed float images preprocessed in torch instead, THROUGHPUT (8)
# ran 965 / 1591 / 251 / 329 idle: the in-graph preprocessing is worth 1.1-1.6x.)
DEFAULT_MODE = Mode("THROUGHPUT", 4)


class OpenVINONetwork:
    """A converted frame network, callable two ways, both giving (N, D) float32 features:

    - ``net(images)``: (N, 3, S, S) float32 normalised CPU images;
    - ``net.encode_uint8(frames)``: (N, S, S, 3) uint8 RGB frames, normalised inside the
      OpenVINO graph (:func:`uint8_model`), which needs ``mean`` and ``std``.

    Compiles lazily, once per (input kind, batch shape, thread count); the thread count
    follows ``torch.get_num_threads()`` so ``--threads`` means the same on every runtime.
    """

    def __init__(self, model: Any, image_size: int, precision: str,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 mode: Mode = DEFAULT_MODE) -> None:
        self.image_size = int(image_size)
        self.precision = precision
        self.hint = effective_hint(precision)
        self.version = runtime_version("openvino")
        self.mode = mode
        self.mean = None if mean is None else tuple(float(m) for m in mean)
        self.std = None if std is None else tuple(float(s) for s in std)
        self._model = model
        # (input kind, batch, threads) -> (AsyncInferQueue, feature width)
        self._queues: dict[tuple[str, int, int], tuple[Any, int]] = {}
        self._lock = threading.Lock()

    def takes_uint8(self, frames: Any) -> bool:
        """Whether ``frames`` can go to :meth:`encode_uint8` as they are: a uint8 numpy
        array (N, S, S, 3) at this network's size, with ``mean`` / ``std`` known."""
        size = self.image_size
        return (self.mean is not None and isinstance(frames, np.ndarray)
                and frames.dtype == np.uint8 and frames.shape[1:] == (size, size, 3))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) float32 normalised images -> (N, D) float32, N >= 1."""
        array = images.detach().to("cpu", torch.float32).contiguous().numpy()
        return self._run(array, "f32")

    def encode_uint8(self, frames: np.ndarray) -> torch.Tensor:
        """(N, S, S, 3) uint8 RGB frames -> (N, D) float32, N >= 1 (see :meth:`takes_uint8`)."""
        if not self.takes_uint8(frames):
            raise ValueError(f"encode_uint8 takes (N, {self.image_size}, {self.image_size}, 3) "
                             f"uint8 arrays (and mean/std), got {frames.shape} {frames.dtype}")
        if not frames.flags.writeable:  # OpenVINO shares the memory; it wants it writeable
            frames = frames.copy()
        return self._run(np.ascontiguousarray(frames), "u8")

    def _queue(self, kind: str, batch: int, threads: int) -> tuple[Any, int]:
        key = (kind, batch, threads)
        entry = self._queues.get(key)
        if entry is None:
            ov = openvino_module()

            model = self._model.clone()
            model.reshape([batch, 3, self.image_size, self.image_size])
            if kind == "u8":
                model = uint8_model(model, self.mean, self.std)
            folder = _folder() / "compiled"
            folder.mkdir(parents=True, exist_ok=True)
            config: dict[str, Any] = {
                "INFERENCE_PRECISION_HINT": self.hint,
                "INFERENCE_NUM_THREADS": threads,
                "PERFORMANCE_HINT": self.mode.hint,
                "CACHE_DIR": str(folder),
            }
            if self.mode.hint == "THROUGHPUT":
                config["NUM_STREAMS"] = threads  # one single-threaded stream per thread
            compiled = _core().compile_model(model, "CPU", config)
            jobs = max(1, int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
            queue = ov.AsyncInferQueue(compiled, jobs)
            queue.set_callback(_collect)
            entry = self._queues[key] = (queue, int(compiled.output(0).get_shape()[1]))
        return entry

    def _run(self, array: np.ndarray, kind: str) -> torch.Tensor:
        """Every chunk of ``array`` through the queue of its shape; outputs in order."""
        chunk = self.mode.chunk
        step = min(PAD_STEP, chunk)
        threads = max(1, torch.get_num_threads())
        parts, out = [], None
        with self._lock:  # the queues' requests are shared: one caller at a time
            used = []
            for start in range(0, len(array), chunk):
                part = array[start : start + chunk]
                size = len(part)
                batch = min(chunk, -(-size // step) * step)
                if batch != size:
                    padding = np.zeros((batch - size, *part.shape[1:]), dtype=part.dtype)
                    part = np.concatenate([part, padding])
                parts.append(part)  # shared with OpenVINO: alive until wait_all
                queue, width = self._queue(kind, batch, threads)
                if out is None:
                    out = np.empty((len(array), width), dtype=np.float32)
                if queue not in used:
                    used.append(queue)
                queue.start_async({0: part}, (out, start, size), share_inputs=True)
            for queue in used:
                queue.wait_all()
        return torch.from_numpy(out)


def _collect(request: Any, userdata: tuple[np.ndarray, int, int]) -> None:
    """An inference finished: copy its rows into the caller's output (before reuse)."""
    out, start, size = userdata
    out[start : start + size] = request.get_output_tensor(0).data[:size]


def uint8_model(model: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """``model`` ((B, 3, S, S) float32 normalised images) taking (B, S, S, 3) uint8 frames.

    OpenVINO's PrePostProcessor adds the conversion to float, ``(x - 255 mean) / (255 std)``
    per channel (the same as ``(x / 255 - mean) / std``) and the layout change to the graph,
    where the CPU plugin fuses them into its first kernels: done in torch, the same steps
    were several full passes over the frames, about a third of the bf16 encoder's time at
    224 px.
    """
    from openvino import Layout, Type
    from openvino.preprocess import PrePostProcessor

    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(Type.u8).set_layout(Layout("NHWC"))
    ppp.input().model().set_layout(Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(Type.f32).mean(
        [255.0 * m for m in mean]).scale([255.0 * s for s in std])
    return ppp.build()


def compile_network(
    net: nn.Module, *, identity: dict[str, Any], image_size: int, precision: str,
    mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
) -> OpenVINONetwork:
    """``net`` as an :class:`OpenVINONetwork` (see ``s2vt.encoders.runtimes.compile_network``)."""
    model = load_model(net, identity, image_size)
    return OpenVINONetwork(model, image_size, precision, mean, std)
