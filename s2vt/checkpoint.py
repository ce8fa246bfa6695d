"""The model dir: ``config.json`` + ``model.safetensors`` + ``vocab.json``, nothing pickled.

Loading a model dir someone else made must never run code from it, so weights are read
only with safetensors, the config and vocabulary only with ``json``, and a pickle (or a
``torch.save`` zip, or a ``.pt``/``.bin``/``.pkl`` file instead of the safetensors) is
refused with a clear message before anything parses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.config import config_from_dict, config_to_dict
from s2vt.errors import ConfigError, S2VTError, one_line
from s2vt.fileio import atomic_write, atomic_write_json
from s2vt.models.config import ModelConfig
from s2vt.text import Vocabulary

if TYPE_CHECKING:
    import torch

    from s2vt.models.base import CaptionModel

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.json"
# Weight files of other tools that are pickles underneath; we name them in the error.
_PICKLED_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt")


@dataclass
class LoadedModel:
    """A model dir loaded for inference.

    Attributes:
        model: the caption model on the requested device, in eval mode.
        config: its architecture config.
        vocab: the vocabulary it was trained with.
        encoder_spec: the frame encoder spec (``EncoderSpec`` fields) of its features.
        sampling: the frame sampling (``SamplingConfig`` fields) of its features.
        features: feature store info (feature_dim, image_size, dtype) of its training data.
        info: free-form training info (epoch, step, validation scores...).
        path: the model dir.
        stream: the stream of its features (``{"name": "rgb"}``, or ``flow`` with the flow
            settings; see :mod:`s2vt.flow.stream`); rgb for dirs made before streams.
    """

    model: CaptionModel
    config: ModelConfig
    vocab: Vocabulary
    encoder_spec: dict[str, Any]
    sampling: dict[str, Any]
    features: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    stream: dict[str, Any] = field(default_factory=lambda: {"name": "rgb"})


def save_model_dir(
    directory: Path,
    model: CaptionModel,
    model_config: ModelConfig,
    vocab: Vocabulary,
    encoder_spec: dict[str, Any],
    sampling: dict[str, Any],
    features: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
    stream: dict[str, Any] | None = None,
) -> None:
    """Write a model dir; each file atomically (weights, then vocab, then config).

    Args:
        directory: created if needed; files already there are replaced.
        model: the model (its ``state_dict`` includes the standardisation buffers).
        model_config: its architecture config.
        vocab: the vocabulary (``len(vocab)`` must equal ``model_config.vocab_size``).
        encoder_spec / sampling: how the training features were made (feature store meta).
        features: feature store info (feature_dim, image_size, dtype) for compatibility checks.
        info: extra JSON-safe training info recorded in config.json.
        stream: the features' stream record (None: rgb).
    """
    from safetensors.torch import save

    if len(vocab) != model_config.vocab_size:
        raise S2VTError(f"vocabulary has {len(vocab)} words but the model expects "
                        f"{model_config.vocab_size}")
    directory = Path(directory)
    tensors = {name: tensor.detach().to("cpu").contiguous()
               for name, tensor in model.state_dict().items()}
    payload = save(tensors, metadata={"format": "pt", "s2vt_format_version": str(FORMAT_VERSION)})
    atomic_write(directory / WEIGHTS_FILE, lambda handle: handle.write(payload))
    vocab.save(directory / VOCAB_FILE)
    atomic_write_json(directory / CONFIG_FILE, {
        "format_version": FORMAT_VERSION,
        "model": config_to_dict(model_config),
        "encoder": dict(encoder_spec),
        "sampling": dict(sampling),
        "features": dict(features or {}),
        "info": dict(info or {}),
        "stream": dict(stream or {"name": "rgb"}),
    })


def _looks_pickled(head: bytes) -> str | None:
    """Name the pickle-like format of a file from its first bytes, or None."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle"
    if head[:4] == b"PK\x03\x04":
        return "a zip archive (torch.save format, pickle inside)"
    if head[:1] in (b"(", b"]", b"}", b"c"):
        # Protocol-0/1 pickles start with one of these opcodes; JSON never does.
        return "possibly a Python pickle"
    return None


def _read_head(path: Path, what: str) -> bytes:
    if not path.is_file():
        raise S2VTError(f"model dir {path.parent} has no {path.name} ({what})")
    with path.open("rb") as handle:
        return handle.read(16)


def read_model_json(path: Path, what: str) -> Any:
    """The JSON file ``path`` of a model dir (``what`` names it in errors); pickles refused."""
    head = _read_head(path, what)
    kind = _looks_pickled(head)
    if kind is not None:
        raise S2VTError(f"{path} is {kind}, not JSON; refusing to load it "
                        "(model dirs never contain pickles)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise S2VTError(f"{path} is not valid JSON: {error}") from None


def read_vocab(directory: Path) -> Vocabulary:
    """The vocabulary of a model dir (its config checked first; pickles refused)."""
    directory = Path(directory)
    read_model_dir_config(directory)
    path = directory / VOCAB_FILE
    return Vocabulary.from_dict(read_model_json(path, "the vocabulary"), source=str(path))


def read_model_dir_config(directory: Path) -> dict[str, Any]:
    """Read and check ``config.json`` of a model dir (no torch needed).

    Returns:
        The JSON object, with ``model`` checked to be a valid ``ModelConfig`` mapping.
    Raises:
        S2VTError: missing dir/file, bad JSON, a pickle, or a wrong format_version.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise S2VTError(f"model dir not found: {directory}")
    path = directory / CONFIG_FILE
    data = read_model_json(path, "the model config")
    if not isinstance(data, dict):
        raise S2VTError(f"{path} must hold a JSON object")
    if data.get("kind") == "fused":
        raise S2VTError(f"{directory} is a fused model dir (s2vt fuse), not a single model "
                        "dir; use one of its members/ here")
    version = data.get("format_version")
    if version != FORMAT_VERSION:
        raise S2VTError(f"{path} has format_version {version!r}; this s2vt reads "
                        f"format_version {FORMAT_VERSION}")
    for key in ("model", "encoder", "sampling"):
        if not isinstance(data.get(key), dict):
            raise S2VTError(f"{path} needs a '{key}' object")
    if not isinstance(data.get("stream", {}), dict):
        raise S2VTError(f"{path}: 'stream' must be an object")
    try:
        config_from_dict(ModelConfig, data["model"], where="model")
    except ConfigError as error:
        raise S2VTError(f"{path}: {error}") from None
    return data


def check_weights_file(directory: Path) -> Path:
    """The model dir's safetensors weights file, checked by its header; pickles refused."""
    path = directory / WEIGHTS_FILE
    if not path.is_file():
        others = sorted(p.name for p in directory.iterdir()
                        if p.suffix.lower() in _PICKLED_WEIGHT_SUFFIXES)
        if others:
            raise S2VTError(f"model dir {directory} has {', '.join(others)} but no {WEIGHTS_FILE}; "
                            "s2vt loads weights only from safetensors and never unpickles "
                            "(.pt/.bin/.pkl files can run code)")
        raise S2VTError(f"model dir {directory} has no {WEIGHTS_FILE} (the model weights)")
    head = _read_head(path, "the model weights")
    # safetensors = 8-byte little-endian header size, then a JSON header. Checking that
    # shape first matters: a valid header size can itself begin with pickle-like bytes.
    header_size = int.from_bytes(head[:8], "little")
    if len(head) > 8 and head[8:9] == b"{" and 0 < header_size <= path.stat().st_size - 8:
        return path
    kind = _looks_pickled(head)
    if kind is None:
        raise S2VTError(f"{path} is not a valid safetensors file (bad header)")
    raise S2VTError(f"{path} is {kind}, not safetensors; refusing to load it "
                    "(model dirs never contain pickles)")


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as error:
        raise S2VTError(f"{path} is not a valid safetensors file: {one_line(error)}") from None


def _skip_normal_init() -> Any:
    """A torch function mode that turns ``normal_`` into a no-op (for meta-device builds).

    Why: on the meta device ``normal_`` runs a Python reference that imports
    ``torch._dynamo`` (1-3 s, most of ``s2vt caption``'s start-up time); meta tensors
    hold no values, so skipping the fill changes nothing.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    skipped = {torch.nn.init.normal_, torch.Tensor.normal_}

    class SkipNormalInit(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            tensor = args[0] if args else kwargs.get("tensor")
            if func in skipped and tensor is not None and tensor.device.type == "meta":
                return tensor
            return func(*args, **kwargs)

    return SkipNormalInit()


def _check_weight_shapes(path: Path, config: ModelConfig) -> None:
    """Compare the tensor shapes in the safetensors header with what ``config`` builds."""
    import torch
    from safetensors import SafetensorError, safe_open

    from s2vt.models import build_model

    try:
        with torch.device("meta"), _skip_normal_init():
            expected = {name: tuple(tensor.shape)
                        for name, tensor in build_model(config).state_dict().items()}
    except (RuntimeError, ValueError, OverflowError, ConfigError) as error:
        raise S2VTError(f"{path.parent / CONFIG_FILE}: the model config cannot be built "
                        f"({one_line(error)})") from None
    try:
        with safe_open(str(path), framework="pt") as handle:
            names = handle.keys()  # safe_open handles are not iterable
            shapes = {name: tuple(handle.get_slice(name).get_shape()) for name in names}
    except (SafetensorError, OSError, ValueError) as error:
        raise S2VTError(f"{path} is not a valid safetensors file: {one_line(error)}") from None
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    if missing or unexpected:
        raise S2VTError(f"{path} does not fit the model config: missing "
                        f"{missing[:5]}, unexpected {unexpected[:5]}")
    for name, shape in shapes.items():
        if shape != expected[name]:
            raise S2VTError(f"{path}: tensor {name} has shape {shape}, "
                            f"the config needs {expected[name]}")


def load_model_dir(directory: Path, device: str = "cpu") -> LoadedModel:
    """Load a model dir for inference, never unpickling anything.

    Args:
        directory: a folder written by :func:`save_model_dir` (e.g. ``s2vt train --out``).
        device: where the model goes (``cpu``, ``cuda``, ``cuda:1``...).
    Returns:
        A :class:`LoadedModel` with the model in eval mode.
    Raises:
        S2VTError: missing files, pickles, bad JSON, wrong format_version, weights that do
            not fit the config, or a vocabulary of the wrong size.
    """
    from s2vt.models import build_model

    directory = Path(directory)
    data = read_model_dir_config(directory)
    weights_path = check_weights_file(directory)
    vocab_path = directory / VOCAB_FILE
    vocab = Vocabulary.from_dict(read_model_json(vocab_path, "the vocabulary"),
                                 source=str(vocab_path))
    config = config_from_dict(ModelConfig, data["model"], where="model")
    if config.vocab_size != len(vocab):
        raise S2VTError(f"{vocab_path} has {len(vocab)} words but {directory / CONFIG_FILE} "
                        f"says vocab_size {config.vocab_size}")
    # Shapes first, from the safetensors header against a model built on the meta device
    # (no memory): a hostile config.json asking for a huge model must not allocate it.
    _check_weight_shapes(weights_path, config)
    model = build_model(config)
    # Names and shapes were checked above against a model of this very config.
    model.load_state_dict(_load_weights(weights_path))
    model.to(device).eval()
    return LoadedModel(model=model, config=config, vocab=vocab, encoder_spec=data["encoder"],
                       sampling=data["sampling"], features=dict(data.get("features") or {}),
                       info=dict(data.get("info") or {}), path=directory,
                       stream=dict(data.get("stream") or {"name": "rgb"}))
