"""Streams: what a feature store and a model dir record about the frames they were made of.

A store's ``meta.json`` and a model dir's ``config.json`` carry ``"stream"``:
``{"name": "rgb"}``, or ``{"name": "flow", "method", "gap", "size", "bound", "weights"}``
(the :class:`FlowConfig` fields). Records without one (made before streams existed) read
as rgb. Features of one stream never meet a model of the other: :func:`check_same_stream`
says so in one line wherever a store meets a model (train, resume, evaluate).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from s2vt.errors import S2VTError
from s2vt.flow.config import FlowConfig

logger = logging.getLogger(__name__)

STREAM_NAMES: tuple[str, ...] = ("rgb", "flow")
FLOW_DECODE_FN = "s2vt.flow.clip:read_flow_clip"
# Settings that change the features (the weights path may differ between machines).
_COMPARED = ("name", "method", "gap", "size", "bound")
_WARNED: set[str] = set()  # slow-on-CPU warnings already given in this process


def stream_meta(name: str, flow: FlowConfig | None = None) -> dict[str, Any]:
    """The ``stream`` record of a store made with stream ``name`` (and ``flow`` settings)."""
    if name not in STREAM_NAMES:
        raise S2VTError(f"unknown stream {name!r}; known streams: {', '.join(STREAM_NAMES)}")
    if name == "rgb":
        return {"name": "rgb"}
    return {"name": "flow", **dataclasses.asdict(flow or FlowConfig())}


def stream_of(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """The stream of a store meta / model config / recorded dict (no ``stream``: rgb)."""
    value = (record or {}).get("stream")
    if value is None:
        return {"name": "rgb"}
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, Mapping) or value.get("name") not in STREAM_NAMES:
        raise S2VTError(f"unreadable stream record {value!r} (expected a name of "
                        f"{', '.join(STREAM_NAMES)})")
    return dict(value)


def flow_config(stream: Mapping[str, Any]) -> FlowConfig:
    """The :class:`FlowConfig` of a flow stream record."""
    fields = {f.name for f in dataclasses.fields(FlowConfig)}
    return FlowConfig(**{k: v for k, v in stream.items() if k in fields})


def describe(stream: Mapping[str, Any]) -> str:
    """A few words for messages: ``rgb`` or ``flow (farneback, gap 1, 128 px)``."""
    if stream.get("name") != "flow":
        return str(stream.get("name"))
    return (f"flow ({stream.get('method')}, gap {stream.get('gap')}, "
            f"{stream.get('size')} px)")


def check_same_stream(
    store: Mapping[str, Any], model: Mapping[str, Any], where: str, source: str
) -> None:
    """Refuse a store of another stream (or other flow settings) than ``model``'s.

    Args:
        store: the store's stream record (:func:`stream_of` of its meta).
        model: the stream recorded by ``source``.
        where: the start of the message, naming the store.
        source: what recorded ``model`` (a model dir, a training state).

    Raises:
        S2VTError: one line naming both streams (or the differing flow setting).
    """
    for key in _COMPARED:
        if store.get(key) == model.get(key):
            continue
        if key == "name":
            raise S2VTError(f"{where}: the store holds {describe(store)} features but "
                            f"{source} is a {describe(model)} model (extract with "
                            f"--stream {model.get('name')}, or use a {store.get('name')} model)")
        raise S2VTError(f"{where}: flow {key} is {store.get(key)!r} in the store but "
                        f"{model.get(key)!r} in {source}")


def decode_call(stream: Mapping[str, Any], device: Any) -> tuple[str | None, dict[str, Any]]:
    """How a decode worker turns a video into this stream's frames.

    For flow, the method is built once here, in the calling process, so that a missing
    package or unreachable weights is one error line rather than one failure per video
    (a RAFT download also lands in the torch cache, where the workers then find it).

    Returns:
        (``"module:function"`` or None for the plain frame decoder, keyword arguments).

    Raises:
        S2VTError: the flow method cannot run here (the message says what to install or
            how to point at local weights).
    """
    if stream.get("name") != "flow":
        return None, {}
    from s2vt.flow.clip import flow_method
    from s2vt.flow.registry import method_info

    config = flow_config(stream)
    flow_method(config, "cpu")
    if method_info(config.method).gpu_recommended and str(device) == "cpu" and \
            config.method not in _WARNED:
        _WARNED.add(config.method)
        logger.warning("flow method %s runs on the CPU (about half a second per frame pair "
                       "at 128 px); a GPU (--device cuda) is recommended", config.method)
    return FLOW_DECODE_FN, {"flow": dataclasses.asdict(config), "device": str(device)}
