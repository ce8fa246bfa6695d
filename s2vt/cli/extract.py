"""``s2vt extract INPUT --out DIR``: videos -> per-frame CNN features in a feature store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from s2vt.devices import DEVICE_HELP
from s2vt.video import DECODER_HELP

# CLI flag (argparse dest) -> dotted ExtractConfig key.
_FLAG_KEYS: dict[str, str] = {
    "encoder": "encoder.name",
    "weights": "encoder.weights",
    "precision": "encoder.precision",
    "runtime": "encoder.runtime",
    "decoder": "decoder",
    "pool": "encoder.pool",
    "image_size": "encoder.image_size",
    "sampling": "sampling.mode",
    "num_frames": "sampling.num_frames",
    "stride": "sampling.stride",
    "fps": "sampling.fps",
    "max_frames": "sampling.max_frames",
    "batch_size": "batch_size",
    "device": "device",
    "workers": "workers",
    "threads": "threads",
    "decode_timeout": "decode_timeout",
    "shard": "shard",
    "stream": "stream",
    "flow_method": "flow.method",
    "flow_gap": "flow.gap",
    "flow_size": "flow.size",
    "flow_weights": "flow.weights",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``extract``."""
    parser = subparsers.add_parser(
        "extract",
        help="decode + sample frames, encode them with a CNN, cache features on disk",
        description=(
            "Extract per-frame CNN features into a feature store (one .npy per video). "
            "A rerun skips finished videos; failures are recorded and the run goes on "
            "(exit code 1 if any video failed)."
        ),
    )
    parser.add_argument(
        "input", type=Path,
        help="a folder of videos, a text file with one path per line, or an annotation JSON",
    )
    parser.add_argument("--out", type=Path, required=True, help="feature store folder")
    parser.add_argument("--encoder", help="frame encoder (default efficientnet_lite0)")
    parser.add_argument("--weights", help="local weights file or folder for the encoder")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--runtime", choices=["auto", "torch", "openvino"],
                        help="what runs the encoder: auto (OpenVINO on CPU when installed, "
                        "else torch), torch, openvino (CPU)")
    parser.add_argument("--pool", choices=["avg", "grid2"], help="avg or a 2x2 grid of cells")
    parser.add_argument("--image-size", type=int, help="encoder input side (default native)")
    parser.add_argument("--sampling", choices=["uniform", "stride", "fps"])
    parser.add_argument("--num-frames", type=int, help="uniform: frames per video")
    parser.add_argument("--stride", type=int, help="stride: take every K-th frame")
    parser.add_argument("--fps", type=float, help="fps: frames per second of video")
    parser.add_argument("--max-frames", type=int, help="stride/fps: at most M frames")
    parser.add_argument("--batch-size", type=int, help="frames per encoder call")
    parser.add_argument("--device", help=DEVICE_HELP)
    parser.add_argument("--workers", type=int, help="decoding processes")
    parser.add_argument("--threads", type=int, help="torch threads for the encoder")
    parser.add_argument("--decode-timeout", type=float, help="seconds per video before failing it")
    parser.add_argument("--decoder", metavar="NAME", help=DECODER_HELP)
    parser.add_argument(
        "--shard", metavar="I/N",
        help="process only shard I (1-based) of N; N runs into one --out make the full store",
    )
    parser.add_argument("--stream", choices=["rgb", "flow"],
                        help="rgb frames (default) or optical-flow images of frame pairs")
    parser.add_argument("--flow-method", help="flow: farneback (default, OpenCV), tvl1 "
                        "(OpenCV contrib), raft_small, raft_large (torchvision; GPU recommended)")
    parser.add_argument("--flow-gap", type=int, help="flow: K, flow from frame t to t+K "
                        "(default 1)")
    parser.add_argument("--flow-size", type=int, help="flow: working resolution, shorter side "
                        "in pixels (default 128)")
    parser.add_argument("--flow-weights", help="flow: local RAFT state dict (offline; default: "
                        "torchvision's weights, downloaded once)")
    parser.add_argument("--config", type=Path, help="YAML file with ExtractConfig keys")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set sampling.num_frames=32 (repeatable)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """Nested config dict of the flags the user gave (unset flags keep YAML/defaults)."""
    from s2vt.config import nest

    return nest({key: getattr(args, dest, None) for dest, key in _FLAG_KEYS.items()})


def run(args: argparse.Namespace) -> int:
    """Run the extract stage; 0 when every video is done, 1 when any failed."""
    from tqdm.contrib.logging import logging_redirect_tqdm

    from s2vt.config import load_config
    from s2vt.extraction import ExtractConfig, extract
    from s2vt.features import shard_failures_name
    from s2vt.inputs import parse_shard, resolve_inputs

    config = load_config(ExtractConfig, args.config, args.overrides, _flag_values(args))
    inputs = resolve_inputs(args.input)
    with logging_redirect_tqdm():
        result = extract(inputs, args.out, config, progress=not args.no_progress)
    shard = parse_shard(config.shard) if config.shard else None
    summary = (
        f"extract: {len(result.done)} done, {len(result.skipped)} skipped, "
        f"{len(result.failed)} failed -> {args.out}"
    )
    if result.failed:
        summary += f" (reasons in {args.out / shard_failures_name(shard)})"
    if result.partial:
        # Done, but from the frames that decode: say so beside the counts, not only above.
        shown = ", ".join(result.partial[:3]) + (", ..." if len(result.partial) > 3 else "")
        summary += (f"; partial: {len(result.partial)} of the {len(result.done)} done "
                    f"({shown}: only part of the video decodes; see their per-video records)")
    print(summary, file=sys.stderr if result.failed else sys.stdout)
    return 1 if result.failed else 0
