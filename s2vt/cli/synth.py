"""``s2vt synth --out DIR [--num-videos N] [--seed S]``: write the synthetic benchmark."""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from pathlib import Path

from s2vt.errors import S2VTError

log = logging.getLogger(__name__)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "synth",
        help="write the synthetic captioned-video benchmark",
        description="Write real encoded clips of moving coloured shapes to DIR/videos/ and "
        "their captions and ground-truth attributes to DIR/annotations.json (MSR-VTT layout; "
        "splits train, val, test, test_novel). The same seed gives the same data set.",
    )
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--num-videos", type=int, default=600, help="number of clips (600)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="encoding processes (default: up to 2)")
    return parser


def run(args: argparse.Namespace) -> int:
    from s2vt.datasets import load_annotations
    from s2vt.synth import synthesize

    if args.workers is not None and args.workers < 1:
        raise S2VTError(f"--workers must be at least 1 (got {args.workers})")
    start = time.perf_counter()
    path = synthesize(args.out, num_videos=args.num_videos, seed=args.seed,
                      workers=args.workers)
    annotations = load_annotations(path, format="synthetic")
    counts = Counter(video.split for video in annotations.videos)
    summary = ", ".join(f"{name} {counts[name]}" for name in annotations.splits())
    print(f"wrote {len(annotations.videos)} clips and {len(annotations.captions)} captions "
          f"({summary}) in {time.perf_counter() - start:.1f} s")
    print(f"annotations: {path}")
    return 0
