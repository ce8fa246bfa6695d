"""``s2vt demo [--out DIR]``: the whole chain on the embedded synthetic benchmark."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        help="synthesise, extract, train mean-pool and S2VT (RGB, flow, fused), compare",
        description=(
            "From nothing: synthesise the benchmark, extract RGB features with the default "
            "encoder and optical-flow features, train the mean-pool baseline and S2VT on RGB, "
            "S2VT on flow, fuse the two S2VTs (weight tuned on val), evaluate all four on the "
            "held-out splits, caption one test video and print a comparison. A second run "
            "reuses every stage whose inputs and config did not change."
        ),
    )
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="run folder")
    parser.add_argument("--num-videos", type=int, help="synthetic clips (default 1800)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="STAGE.KEY=VALUE",
        help="override a stage config (stages: extract, extract_flow, s2vt, meanpool, "
             "s2vt_flow), e.g. s2vt.epochs=10",
    )
    parser.add_argument(
        "--models", default="", metavar="NAME[,NAME]",
        help="also train and evaluate these optional models, each from "
             "configs/demo/NAME.yaml (s2vt_att: S2VT with temporal attention; transformer; "
             "s2vt_scst: self-critical training of the demo's S2VT); names the demo "
             "always runs (s2vt, meanpool) may be listed too",
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from s2vt.pipelines.synthetic import MODELS, DemoSettings, run_demo, split_stage_overrides

    started = time.perf_counter()
    extra = tuple(name for name in (n.strip() for n in args.models.split(","))
                  if name and name not in MODELS)
    settings = DemoSettings(seed=args.seed, overrides=split_stage_overrides(args.overrides),
                            extra_models=extra)
    if args.num_videos is not None:
        settings.num_videos = args.num_videos
    result = run_demo(args.out, settings)
    sample = result.sample
    print(f"\nmean-pool vs S2VT on RGB, on flow and fused on the synthetic benchmark "
          f"({args.out}):\n")
    print(result.table)
    print(f"\nsample test video {sample['path']}")
    for name in result.scores:
        print(f"  {name:10s} {sample[name]}")
    print(f"  {'reference':10s} {sample['references'][0] if sample['references'] else '-'}")
    reports = ", ".join(f"{args.out}/{name}/test/report.html" for name in result.scores)
    print(f"\nreports: {reports}")
    print(f"curves:  {args.out}/training_curves.png")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return 0
