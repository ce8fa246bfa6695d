"""``s2vt run msvd|msrvtt|vatex --root PATH``: a benchmark recipe, extract -> train -> test."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    # The recipe registry imports no heavy library, so listing its names here stays cheap.
    from s2vt.pipelines.benchmarks import benchmark_names

    parser = subparsers.add_parser(
        "run",
        help="run a benchmark recipe: extract -> train -> evaluate on the test split",
        description=(
            "Reproduce S2VT on a public benchmark from its dataset folder (see data/README.md "
            "for the folder tree): extract features of every clip found, train on the train "
            "split (validated on val), caption and score the standard test split. Each stage "
            "is cached: a rerun reuses finished stages and an interrupted one resumes. "
            "Configs: configs/<benchmark>/{extract,train}.yaml."
        ),
    )
    parser.add_argument("benchmark", choices=benchmark_names(), help="which benchmark")
    parser.add_argument("--root", type=Path, required=True,
                        help="the dataset folder (annotation files + clips)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run folder (default: runs/<benchmark>)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
        help="override a stage config (stages: extract, train, extract_flow, train_flow), "
             "e.g. train.epochs=10 or extract.encoder.weights=/path/to/vgg16.pth",
    )
    parser.add_argument("--streams", default="rgb",
                        help="rgb (default), or rgb,flow: also extract optical flow, train an "
                             "S2VT on it and fuse the two (the paper's best model; "
                             "configs/<benchmark>/extract_flow.yaml)")
    parser.add_argument("--config-dir", type=Path, default=None,
                        help="folder with extract.yaml and train.yaml (default: "
                             "configs/<benchmark>)")
    parser.add_argument("--video-root", type=Path, default=None,
                        help="folder with the clips, when not in the dataset's usual place")
    parser.add_argument("--beam-size", type=int, default=5, help="beam width for test captions")
    parser.add_argument("--no-report", action="store_true", help="skip report.html")
    parser.add_argument("--no-java", action="store_true",
                        help="score without Java: simple tokenisation and no METEOR (not the "
                             "official protocol; for quick looks)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def run(args: argparse.Namespace) -> int:
    from s2vt.errors import S2VTError
    from s2vt.pipelines.benchmarks import (
        RunSettings,
        parse_streams,
        run_benchmark,
        split_run_overrides,
    )

    if args.beam_size < 1:
        raise S2VTError(f"--beam-size must be at least 1, got {args.beam_size}")
    started = time.perf_counter()
    settings = RunSettings(
        overrides=split_run_overrides(args.overrides),
        config_dir=args.config_dir,
        beam_size=args.beam_size,
        video_root=args.video_root,
        report=not args.no_report,
        java=False if args.no_java else None,
        progress=not args.no_progress,
        streams=parse_streams(args.streams),
    )
    result = run_benchmark(args.benchmark, args.root, args.out, settings)
    out = result.out
    print(f"\n{result.table}\n")
    if result.missing:
        print(f"missing clips: {len(result.missing)}: {_first(result.missing)} (all listed in "
              f"{out / 'missing.json'})")
    if result.failed:
        ids = [str(failure.get("video_id")) for failure in result.failed]
        print(f"clips that failed to decode: {len(ids)}: {_first(ids)} (reasons in "
              f"{out / 'features' / 'failures.jsonl'})")
    test = out / result.test_split
    print(f"predictions: {test / 'predictions.json'}")
    print(f"scores:      {test / 'scores.json'}")
    if settings.report:
        print(f"report:      {test / 'report.html'}")
    if "flow" in settings.streams:
        print(f"flow, fused: {out / 'flow' / result.test_split}, "
              f"{out / 'fused' / result.test_split}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0


def _first(ids: list[str], count: int = 10) -> str:
    """The first ``count`` ids, comma-separated, with '...' when there are more."""
    return ", ".join(ids[:count]) + (", ..." if len(ids) > count else "")
