"""``s2vt evaluate --model DIR --features DIR --annotations FILE --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2vt.errors import S2VTError
from s2vt.hub import MODEL_HELP, resolve_model


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="caption a split from its features, score it and write an HTML report",
        description=(
            "Caption every video of a split from a feature store with beam search, score the "
            "captions (BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr; attribute accuracy on the "
            "synthetic benchmark) and write OUT/predictions.json, OUT/scores.json and "
            "OUT/report.html (self-contained: opens from disk)."
        ),
    )
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--features", required=True, type=Path, action="append",
                        help="feature store from `s2vt extract`; for a fused model dir give "
                             "it once per member, in member order (e.g. RGB, then flow)")
    parser.add_argument("--annotations", required=True, type=Path,
                        help="annotation file or dataset folder")
    parser.add_argument("--split", default="test", help="split to evaluate (default: test)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--format", default=None, help="annotation format (default: detected)")
    parser.add_argument("--video-root", type=Path, default=None,
                        help="folder with the clips (for report thumbnails), if not where "
                             "the annotations say")
    parser.add_argument("--beam-size", type=int, default=5, help="beam width (1 = greedy)")
    parser.add_argument("--batch-size", type=int, default=64, help="videos per batch")
    parser.add_argument("--max-len", type=int, default=20, help="longest caption in words")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--skip-missing", action="store_true",
                        help="leave out videos without features (counted in scores.json) "
                             "instead of failing")
    parser.add_argument("--no-java", action="store_true",
                        help="skip Java: simple tokenisation and no METEOR (not official)")
    parser.add_argument("--no-report", action="store_true", help="do not write report.html")
    parser.add_argument("--report-per-group", type=int, default=30,
                        help="videos shown per report group (best / middle / worst)")
    return parser


def run(args: argparse.Namespace) -> int:
    from s2vt.evaluation import evaluate
    from s2vt.metrics import format_table
    from s2vt.modelcard import record_scores

    if args.report_per_group < 1:
        raise S2VTError(f"--report-per-group must be at least 1, got {args.report_per_group}")
    model_dir = resolve_model(args.model)
    features = args.features[0] if len(args.features) == 1 else args.features
    outcome = evaluate(
        model_dir, features, args.annotations, args.out,
        split=args.split, format=args.format, video_root=args.video_root,
        beam_size=args.beam_size, batch_size=args.batch_size, max_len=args.max_len,
        device=args.device, java=False if args.no_java else None,
        skip_missing=args.skip_missing, report=not args.no_report,
        report_per_group=args.report_per_group,
    )
    title = (f"{len(outcome.predictions)} videos of split '{args.split}', "
             f"beam size {args.beam_size}")
    if outcome.skipped:
        title += f" ({len(outcome.skipped)} skipped: no features)"
    print(format_table(outcome.result.scores, title=title))
    for path in outcome.files.values():
        print(f"wrote {path}")
    card = record_scores(model_dir, args.split, outcome.result.scores,
                         {"videos": len(outcome.predictions), "beam size": args.beam_size,
                          "METEOR": "Java 1.5" if "METEOR" in outcome.result.scores else "no"})
    if card is not None:
        print(f"updated {card}")
    return 0
