"""``s2vt fuse --model RGB_DIR --model FLOW_DIR --out FUSED_DIR [--alpha A]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from s2vt.devices import DEVICE_HELP
from s2vt.errors import S2VTError
from s2vt.hub import MODEL_HELP, resolve_model


def _numbers(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}"
                                         ) from None


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "fuse",
        help="fuse two (or more) trained models, e.g. an RGB and a flow stream",
        description=(
            "Write a fused model dir (late fusion, as S2VT's RGB + flow model): at every "
            "decoding step p(w) = alpha * p_1(w) + (1 - alpha) * p_2(w). The members are "
            "copied into the fused dir, which `s2vt caption`, `s2vt evaluate` and "
            "Captioner.from_pretrained accept. Without --alpha, alpha is tuned on the "
            "validation split: give --features once per member (same order as --model) and "
            "--annotations. The members must share a vocabulary (train the second with "
            "`s2vt train --vocab-from FIRST_DIR`)."
        ),
    )
    parser.add_argument("--model", dest="models", action="append", required=True,
                        help=f"a member, in order (give it once per member). {MODEL_HELP}")
    parser.add_argument("--out", required=True, type=Path, help="the fused model dir")
    parser.add_argument("--alpha", type=float, default=None,
                        help="weight of the first of two members (the second: 1 - alpha); "
                             "default: tuned on --split")
    parser.add_argument("--weights", type=_numbers, default=None, metavar="W1,W2,...",
                        help="one weight per member, summing to 1 (instead of --alpha)")
    parser.add_argument("--features", action="append", type=Path, default=[],
                        help="to tune alpha: a member's feature store (once per member, in "
                             "--model order)")
    parser.add_argument("--annotations", type=Path, default=None,
                        help="to tune alpha: annotation file or dataset folder")
    parser.add_argument("--split", default="val", help="split to tune alpha on (default: val)")
    parser.add_argument("--format", default=None, help="annotation format (default: detected)")
    parser.add_argument("--grid", type=_numbers, default=None, metavar="A1,A2,...",
                        help="alpha values to try (default: 0, 0.1, ..., 1)")
    parser.add_argument("--metric", default="CIDEr",
                        help="validation metric that picks alpha (no Java; default: CIDEr)")
    parser.add_argument("--beam-size", type=int, default=5, help="beam width while tuning")
    parser.add_argument("--batch-size", type=int, default=64, help="videos per batch")
    parser.add_argument("--max-len", type=int, default=20, help="longest caption in words")
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
    return parser


def run(args: argparse.Namespace) -> int:
    from s2vt.fusing import DEFAULT_GRID, fuse

    if len(args.models) < 2:
        raise S2VTError("give --model at least twice (the members, in order)")
    if args.beam_size < 1:
        raise S2VTError(f"--beam-size must be at least 1, got {args.beam_size}")
    result = fuse(
        [resolve_model(model) for model in args.models], args.out,
        alpha=args.alpha, weights=args.weights, features=args.features,
        annotations=args.annotations, split=args.split, format=args.format,
        grid=args.grid or DEFAULT_GRID, metric=args.metric, beam_size=args.beam_size,
        max_len=args.max_len, batch_size=args.batch_size, device=args.device,
    )
    if result.tuning is not None:
        tuning = result.tuning
        print(f"alpha tuned on {tuning['videos']} videos of split '{tuning['split']}' "
              f"({tuning['metric']}, beam size {tuning['beam_size']}):")
        for value, score in zip(tuning["grid"], tuning["scores"], strict=True):
            mark = "  <- chosen" if value == tuning["alpha"] else ""
            print(f"  alpha {value:.2f}  {tuning['metric']} {score:.4f}{mark}")
    shown = ", ".join(f"{w:.2f}" for w in result.weights)
    print(f"fused {len(result.weights)} members (weights {shown}) -> {result.out}")
    return 0
