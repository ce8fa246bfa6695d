"""``s2vt caption VIDEO_OR_FOLDER_OR_GLOB... --model DIR``: raw videos in, sentences out."""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from s2vt.devices import DEVICE_HELP
from s2vt.errors import S2VTError
from s2vt.hub import MODEL_HELP, resolve_model


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "caption",
        help="caption raw videos with a trained model",
        description="Caption videos (files, folders or glob patterns) with a trained model dir.",
    )
    parser.add_argument("videos", nargs="+", help="video files, folders of videos, or globs")
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--beam-size", type=int, default=5, help="beam width (1 = greedy)")
    parser.add_argument("--max-len", type=int, default=20, help="longest caption in words")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of lines")
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
    return parser


def expand_videos(items: list[str]) -> list[Path]:
    """Expand files, folders (their video files, sorted) and glob patterns into paths.

    A name that matches nothing is kept, so that it is reported as a failed video.
    """
    from s2vt.video import VIDEO_EXTENSIONS

    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            paths.extend(
                sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS)
            )
        elif not path.exists() and glob.has_magic(item):
            paths.extend(sorted(Path(p) for p in glob.glob(item, recursive=True)))
        else:
            paths.append(path)
    return paths


def run(args: argparse.Namespace) -> int:
    from s2vt.captioner import Captioner

    if args.beam_size < 1:
        raise S2VTError(f"--beam-size must be at least 1, got {args.beam_size}")
    paths = expand_videos(args.videos)
    if not paths:
        raise S2VTError(f"no videos found in {' '.join(args.videos)}")
    captioner = Captioner.from_pretrained(
        resolve_model(args.model), device=args.device, beam_size=args.beam_size,
        max_len=args.max_len,
    )
    results = []
    failed = 0
    for result in captioner.caption_videos(paths):
        if result.error is not None:
            failed += 1
            print(f"error: {result.error}", file=sys.stderr)
            if args.json:
                results.append({"path": str(result.path), "caption": None, "error": result.error})
            continue
        if args.json:
            results.append({"path": str(result.path), "caption": result.caption})
        else:
            print(f"{result.path}\t{result.caption}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    if failed:
        print(f"{failed} of {len(paths)} videos failed", file=sys.stderr)
        return 1
    return 0
