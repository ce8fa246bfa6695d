"""``s2vt score --predictions P.json --references ANNOTATIONS``: score any system's captions."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "score",
        help="score a predictions file on a benchmark split (BLEU, METEOR, ROUGE-L, CIDEr)",
        description=(
            "Score predictions (a JSON list of {\"video_id\", \"caption\"} or an {id: caption} "
            "object) against a benchmark's references with pycocoevalcap: PTB tokenizer, "
            "BLEU-1..4, METEOR 1.5, ROUGE-L, CIDEr(-D). Every video of the split needs a "
            "prediction (MSVD: keyed by clip name or by vidN). Prints a table and writes "
            "scores.json."
        ),
    )
    parser.add_argument("--predictions", required=True, type=Path, help="predictions JSON file")
    parser.add_argument("--references", required=True, type=Path,
                        help="annotation file or dataset folder (MSR-VTT / MSVD / VATEX / "
                             "s2vt synth layout; clips not needed)")
    parser.add_argument("--split", default="test", help="split to score on (default: test)")
    parser.add_argument("--format", default=None,
                        help="annotation format (msrvtt, msvd, vatex, synthetic; default: "
                             "detected)")
    parser.add_argument("--out", type=Path, default=None,
                        help="scores JSON to write (default: scores.json next to the "
                             "predictions)")
    parser.add_argument("--no-java", action="store_true",
                        help="skip Java: simple tokenisation and no METEOR (not the official "
                             "protocol; for quick looks)")
    return parser


def run(args: argparse.Namespace) -> int:
    from s2vt.datasets import load_annotations
    from s2vt.evaluation import load_predictions, score_split
    from s2vt.metrics import format_table, write_scores

    predictions = load_predictions(args.predictions)
    annotations = load_annotations(args.references, args.format, keep_missing=True)
    result = score_split(predictions, annotations, split=args.split,
                         java=False if args.no_java else None)
    settings = {"predictions": str(args.predictions), "references": str(args.references),
                **result.settings}
    out = args.out if args.out is not None else args.predictions.parent / "scores.json"
    write_scores(out, result.scores, settings)
    print(format_table(result.scores, title=f"{len(result.per_video)} videos of split "
                                            f"'{args.split}' ({settings['tokenizer']})"))
    print(f"wrote {out}")
    return 0
