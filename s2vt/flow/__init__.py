"""The optical-flow stream: flow methods (a registry), flow images, stream records.

- :mod:`s2vt.flow.config`: :class:`FlowConfig` (method, gap K, working size, bound, weights).
- :mod:`s2vt.flow.registry`: ``farneback`` (OpenCV, the offline default), ``tvl1`` (OpenCV
  contrib), ``raft_small`` / ``raft_large`` (torchvision); one module each.
- :mod:`s2vt.flow.render`: flow -> the paper's flow image (x, y around 128, magnitude).
- :mod:`s2vt.flow.clip`: a video -> frame pairs -> flow images, run in decode workers.
- :mod:`s2vt.flow.stream`: the ``stream`` record of stores and model dirs, and the check
  that a flow store never meets an rgb model (or the reverse).

Importing this package imports neither OpenCV nor torch.
"""

from s2vt.flow.config import FLOW_METHOD_NAMES, FlowConfig
from s2vt.flow.registry import FLOW_METHODS, build_flow_method, flow_method_names
from s2vt.flow.stream import STREAM_NAMES, check_same_stream, stream_meta, stream_of

__all__ = [
    "FLOW_METHODS", "FLOW_METHOD_NAMES", "STREAM_NAMES", "FlowConfig", "build_flow_method",
    "check_same_stream", "flow_method_names", "stream_meta", "stream_of",
]
