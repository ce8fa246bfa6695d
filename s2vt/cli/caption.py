"""``s2vt caption VIDEO_OR_FOLDER_OR_GLOB... --model DIR``: raw videos in, sentences out.

Beam search (default), greedy search (``--beam-size 1``) or sampling (``--sample`` with
``--temperature/--top-k/--top-p/--seed``); ``--num-captions N`` gives the N best beams or
N samples per video.
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.devices import DEVICE_HELP
from s2vt.errors import S2VTError
from s2vt.hub import MODEL_HELP, resolve_model

if TYPE_CHECKING:
    from s2vt.captioner import VideoCaption
    from s2vt.models.decoding import DecodingOptions

# Decoding option -> its flag, for error messages.
_FLAGS = {"beam_size": "--beam-size", "max_len": "--max-len", "num_captions": "--num-captions",
          "temperature": "--temperature", "top_k": "--top-k", "top_p": "--top-p"}
_SAMPLING_FLAGS = ("temperature", "top_k", "top_p", "seed")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "caption",
        help="caption raw videos with a trained model",
        description="Caption videos (files, folders or glob patterns) with a trained model dir. "
                    "Text output is one line per caption, 'PATH<TAB>CAPTION' (with "
                    "--num-captions N: N lines per video, best first); --json prints a list "
                    "with each caption's log-probability under the model.",
    )
    parser.add_argument("videos", nargs="+", help="video files, folders of videos, or globs")
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--beam-size", type=int, default=5, help="beam width (1 = greedy)")
    parser.add_argument("--max-len", type=int, default=20, help="longest caption in words")
    parser.add_argument("--num-captions", type=int, default=1, metavar="N",
                        help="captions per video: the N best beams (N <= --beam-size) or, "
                             "with --sample, N samples; text output prints one "
                             "'PATH<TAB>CAPTION' line per caption, best first")
    parser.add_argument("--sample", action="store_true",
                        help="sample words from the model's distribution instead of searching "
                             "(diverse captions)")
    parser.add_argument("--temperature", type=float, metavar="T",
                        help="sampling temperature (default 1; 0 = greedy; needs --sample)")
    parser.add_argument("--top-k", type=int, metavar="K",
                        help="sample among the K most likely words only (default: all; "
                             "needs --sample)")
    parser.add_argument("--top-p", type=float, metavar="P",
                        help="nucleus sampling: among the most likely words holding "
                             "probability P (default 1 = all; needs --sample)")
    parser.add_argument("--seed", type=int, metavar="S",
                        help="seed the sampling: the same seed, videos and device give the "
                             "same captions (needs --sample)")
    parser.add_argument("--json", action="store_true",
                        help="print a JSON list instead of lines: path, caption and its "
                             "log_prob, and with --num-captions > 1 all captions under "
                             "'captions'")
    parser.add_argument("--device", default="cpu", help=DEVICE_HELP)
    parser.add_argument("--decoder", metavar="NAME",
                        help="video decoder: auto, decord, pyav, torchcodec, torchcodec-cuda "
                        "(default: the one the model's features were made with)")
    parser.add_argument("--runtime", choices=["auto", "torch", "openvino"],
                        help="what runs the frame encoder (default: the model dir's, auto)")
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


def decoding_options(args: argparse.Namespace) -> DecodingOptions:
    """The decoding flags as :class:`DecodingOptions`.

    Raises:
        S2VTError: a flag out of range, sampling flags without ``--sample``, or more
            captions than beams (each message names the flag).
    """
    from s2vt.errors import ConfigError
    from s2vt.models.decoding import DecodingOptions

    if args.beam_size < 1:
        raise S2VTError(f"--beam-size must be at least 1, got {args.beam_size}")
    if not args.sample and any(getattr(args, key) is not None for key in _SAMPLING_FLAGS):
        raise S2VTError("--top-k, --top-p, --temperature and --seed need --sample")
    if not args.sample and args.num_captions > args.beam_size:
        raise S2VTError(f"--num-captions ({args.num_captions}) must be <= --beam-size "
                        f"({args.beam_size}): beam search keeps only that many hypotheses "
                        "(widen the beam, or --sample)")
    sampling = {key: getattr(args, key) for key in _SAMPLING_FLAGS
                if getattr(args, key) is not None}
    try:
        return DecodingOptions(beam_size=args.beam_size, max_len=args.max_len,
                               num_captions=args.num_captions, sample=args.sample, **sampling)
    except ConfigError as error:
        raise S2VTError(re.sub(r"decoding option (\w+)", lambda m: _FLAGS.get(m[1], m[1]),
                               str(error))) from None


def _json_result(result: VideoCaption) -> dict[str, Any]:
    """One video's JSON entry: the best caption and its log-probability, and every caption
    under ``captions`` when there are several."""
    entry: dict[str, Any] = {"path": str(result.path), "caption": result.caption,
                             "log_prob": round(result.captions[0].log_prob, 4)}
    if len(result.captions) > 1:
        entry["captions"] = [{"caption": c.caption, "log_prob": round(c.log_prob, 4)}
                             for c in result.captions]
    return entry


def run(args: argparse.Namespace) -> int:
    from s2vt.captioner import Captioner

    options = decoding_options(args)
    paths = expand_videos(args.videos)
    if not paths:
        raise S2VTError(f"no videos found in {' '.join(args.videos)}")
    captioner = Captioner.from_pretrained(resolve_model(args.model), device=args.device,
                                          decoding=options, runtime=args.runtime)
    if args.decoder is not None:
        from s2vt.video import decoder_chain

        decoder_chain(args.decoder)  # unknown, or not installed here: one line, exit 2
        captioner.decoder = args.decoder
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
            results.append(_json_result(result))
        else:
            for scored in result.captions:
                print(f"{result.path}\t{scored.caption}", flush=True)
    if args.json:
        print(json.dumps(results, indent=2, ensure_ascii=False))
    if failed:
        print(f"{failed} of {len(paths)} videos failed", file=sys.stderr)
        return 1
    return 0
