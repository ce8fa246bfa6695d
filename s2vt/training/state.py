"""What a training run keeps on disk to resume: the state file, the metrics log, the checks.

``train_state.pt`` holds only tensors, numbers, strings and plain containers, so it loads
with ``torch.load(weights_only=True)`` and a pickle payload planted there cannot run; it is
checked field by field on load so that a damaged file ends in one clear line.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.errors import S2VTError, one_line
from s2vt.flow.stream import check_same_stream, stream_of

if TYPE_CHECKING:
    import torch

    from s2vt.features import FeatureStore

STATE_FORMAT_VERSION = 1
STATE_FILE = "train_state.pt"
METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "train_config.yaml"
LAST_DIR = "last"
# train_state.pt keys -> accepted types (checked on load; bool is only accepted where listed).
_STATE_FIELDS: dict[str, tuple[type, ...]] = {
    "model": (dict,), "optimizer": (dict,), "epoch": (int,), "batch_in_epoch": (int,),
    "step": (int,), "loss_sum": (int, float), "loss_tokens": (int,),
    "epoch_seconds": (int, float), "best_score": (int, float, type(None)),
    "best_epoch": (int, type(None)), "bad_epochs": (int,), "stopped_early": (bool,),
    "rng": (list, tuple), "vocab": (dict,), "model_config": (dict,), "store": (dict,),
}
# Encoder settings that change the features; "precision" only changes rounding.
_ENCODER_KEYS = ("name", "weights", "pool", "image_size")


def has_saved_state(out: Path) -> bool:
    """Whether ``out`` holds a training state to ``--resume`` from (a run stopped before
    its first saved state has nothing to resume and starts anew)."""
    return (Path(out) / STATE_FILE).is_file()


def store_info(store: FeatureStore) -> dict[str, Any]:
    """What a model dir / training state records about its features."""
    return {
        "feature_dim": store.feature_dim,
        "encoder": dict(store.meta.get("encoder") or {}),
        "sampling": dict(store.meta.get("sampling") or {}),
        "image_size": store.meta.get("image_size"),
        "dtype": store.meta.get("dtype"),
        "stream": stream_of(store.meta),
        # how its videos were decoded: the captioner decodes raw videos the same way
        "decoder": store.meta.get("decoder"),
    }


def check_store_matches(store: FeatureStore, recorded: dict[str, Any], source: str) -> None:
    """Refuse a feature store whose stream, dim, encoder or sampling differ from ``recorded``.

    Args:
        store: the feature store about to be used.
        recorded: ``feature_dim``, ``encoder``, ``sampling``, ``stream`` as recorded by
            ``source`` (no ``stream``: recorded before streams, so rgb).
        source: what recorded them, for the message (a model dir, a training state).
    Raises:
        S2VTError: naming the setting and both values.
    """
    where = f"feature store {store.root} does not match {source}"
    check_same_stream(stream_of(store.meta), stream_of(recorded), where, source)
    if recorded.get("feature_dim") not in (None, store.feature_dim):
        raise S2VTError(f"{where}: feature_dim is {store.feature_dim} in the store but "
                        f"{recorded['feature_dim']} in {source}")
    mine = store.meta.get("encoder") or {}
    theirs = recorded.get("encoder") or {}
    for key in _ENCODER_KEYS:
        if key in mine and key in theirs and mine[key] != theirs[key]:
            raise S2VTError(f"{where}: encoder.{key} is {mine[key]!r} in the store but "
                            f"{theirs[key]!r} in {source}")
    mine_s = store.meta.get("sampling") or {}
    theirs_s = recorded.get("sampling") or {}
    for key in sorted(set(mine_s) & set(theirs_s)):
        if mine_s[key] != theirs_s[key]:
            raise S2VTError(f"{where}: sampling.{key} is {mine_s[key]!r} in the store but "
                            f"{theirs_s[key]!r} in {source}")


def rng_state(device: torch.device) -> dict[str, Any]:
    """This process's RNG states as plain tensors / ints (loadable with weights_only=True)."""
    import numpy as np
    import torch

    _, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    """Restore what :func:`rng_state` returned (the CUDA state only on a CUDA device)."""
    import numpy as np
    import torch

    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and state.get("cuda") is not None:
        torch.cuda.set_rng_state(state["cuda"], device)
    numpy_state = state["numpy"]
    np.random.set_state(("MT19937", numpy_state["keys"].numpy().astype(np.uint32),
                         numpy_state["pos"], numpy_state["has_gauss"], numpy_state["cached"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def save_train_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (the keys :func:`load_train_state` checks) atomically, with the
    format version, so a kill mid-write leaves the previous state in place."""
    import torch

    from s2vt.fileio import atomic_write

    state = {"format_version": STATE_FORMAT_VERSION, **state}
    atomic_write(Path(path), lambda handle: torch.save(state, handle))


def load_train_state(path: Path) -> dict[str, Any]:
    """Load ``train_state.pt`` with ``weights_only=True`` (a pickle payload is refused).

    Raises:
        S2VTError: missing, corrupt, carrying arbitrary objects, or of another format.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise S2VTError(f"nothing to resume: {path} not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, TypeError) as error:
        raise S2VTError(f"refusing training state {path}: not a plain tensor/number file "
                        f"({one_line(error)})") from None
    if not isinstance(state, dict) or state.get("format_version") != STATE_FORMAT_VERSION:
        version = state.get("format_version") if isinstance(state, dict) else None
        raise S2VTError(f"training state {path} has format_version {version!r}; expected "
                        f"{STATE_FORMAT_VERSION}")
    # A damaged or hand-made state must end in one clear line, not a KeyError deep in resume.
    for key, kinds in _STATE_FIELDS.items():
        if key not in state:
            raise S2VTError(f"training state {path} is malformed: no '{key}'")
        if not isinstance(state[key], kinds) or isinstance(state[key], bool) and bool not in kinds:
            raise S2VTError(f"training state {path} is malformed: '{key}' is a "
                            f"{type(state[key]).__name__}")
    return state


def read_metrics(path: Path, upto_epoch: int) -> list[dict[str, Any]]:
    """Complete metric lines of epochs <= ``upto_epoch`` (drops a line cut by a kill)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and \
                row["epoch"] <= upto_epoch:
            rows.append(row)
    return rows


def write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rewrite the metrics log (one JSON line per epoch) atomically."""
    from s2vt.fileio import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def config_difference(old: dict[str, Any], new: dict[str, Any]) -> str | None:
    """The first key (sorted) whose value differs between two config dicts, or None."""
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            return key
    return None
