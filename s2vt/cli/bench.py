"""``s2vt bench``: speed of decode, encode, extract, naive extraction, train, caption, score,
and the projected extract time of MSR-VTT and VATEX; or, with ``--experiment``, one
accuracy experiment.

Prints one JSON object on stdout (see :mod:`s2vt.bench.harness`) and the verdicts and
projections as a few lines on stderr; ``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from s2vt.bench.harness import DEFAULT_STAGES, EXPERIMENTS, STAGES
from s2vt.errors import S2VTError


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``bench``."""
    parser = subparsers.add_parser(
        "bench",
        help="measure the speed of every stage on generated clips (JSON)",
        description=(
            "Measure, in one run on the same generated clips: each decoder alone (also on "
            "the real clips of ../shared when present), each encoder runtime alone at the "
            "same precision, extract end to end with the defaults and forced to torch / "
            "fp32, the naive way (every frame, PIL, fp32, batch 1) in this process and in a "
            "separate one, paper-sized training, batched vs one-at-a-time beam search, s2vt "
            "caption from process start and scoring; project MSR-VTT's and VATEX's extract "
            "time. Every figure is the median of --repeats timed repeats with min and max; "
            "print JSON with the ratios against their targets. --experiment runs an "
            "accuracy experiment instead (precision: bf16 vs fp32 training)."
        ),
    )
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 8 short clips, 1 training step, fewer videos "
                             "(still 3 repeats)")
    parser.add_argument("--clips", type=int, help="number of generated clips (default 24)")
    parser.add_argument("--batch-size", type=int, help="encoder batch size (default 64)")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                        help="encoder precision (default auto)")
    parser.add_argument("--workers", type=int, help="extract decode processes")
    parser.add_argument("--threads", type=int, help="torch threads of the encoder")
    parser.add_argument("--train-steps", type=int,
                        help="training steps per timed epoch (default 2)")
    parser.add_argument("--repeats", type=int,
                        help="timed repeats of every figure (default 3, at least 3)")
    parser.add_argument("--real-videos", type=Path,
                        help="folder of real clips (clips/, benchmark/) the decoders are also "
                             "timed on (default: ../shared/real/videos when present)")
    optional = sorted(set(STAGES) - set(DEFAULT_STAGES))
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--only", nargs="+", choices=list(STAGES), metavar="STAGE",
                      help=f"run only these stages: {' '.join(STAGES)} "
                           f"({' '.join(optional)} run only when named here)")
    what.add_argument("--experiment", choices=list(EXPERIMENTS),
                      help="run this experiment instead of the speed stages: "
                           f"{' '.join(EXPERIMENTS)}")
    parser.add_argument("--long-minutes", type=float,
                        help="length of the memory stage's long clip (default 10)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the benchmark (or the experiment), print its JSON, then its verdicts on stderr."""
    import dataclasses
    import sys

    from s2vt.bench.harness import BenchConfig, run_benchmark, run_experiment, to_json
    from s2vt.bench.summary import summary_lines
    from s2vt.bench.timing import MIN_REPEATS
    from s2vt.fileio import atomic_write_text

    config = BenchConfig.quick() if args.quick else BenchConfig()
    overrides = {"clips": args.clips, "batch_size": args.batch_size,
                 "precision": args.precision, "workers": args.workers,
                 "threads": args.threads, "train_steps": args.train_steps,
                 "repeats": args.repeats, "long_minutes": args.long_minutes}
    for key, value in overrides.items():
        if value is not None:
            if key != "precision" and not value > 0:
                raise S2VTError(f"--{key.replace('_', '-')} must be > 0, got {value}")
            if key == "repeats" and value < MIN_REPEATS:
                raise S2VTError(f"--repeats must be >= {MIN_REPEATS} (every figure is a "
                                f"median with min and max), got {value}")
            config = dataclasses.replace(config, **{key: value})
    if args.real_videos is not None:
        if not args.real_videos.is_dir():
            raise S2VTError(f"--real-videos: no such folder: {args.real_videos}")
        config = dataclasses.replace(config, real_videos=str(args.real_videos))
    if args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
    if args.experiment:
        report = run_experiment(args.experiment, config, args.work)
    else:
        report = run_benchmark(config, args.work, tuple(args.only) if args.only else None)
    text = to_json(report)
    if args.out is not None:
        atomic_write_text(args.out, text + "\n")
    print(text)
    for line in summary_lines(report):
        print(line, file=sys.stderr)
    return 0
