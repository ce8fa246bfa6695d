"""``s2vt push --model DIR --repo ORG/NAME``: share a model dir on the Hugging Face Hub."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "push",
        help="upload a model dir to the Hugging Face Hub",
        description=(
            "Upload a model dir (config.json, model.safetensors, vocab.json, README.md and "
            "nothing else: no training state, no code) to a Hugging Face Hub model repo, "
            "creating it if needed. Log in first with `hf auth login` (or set HF_TOKEN). "
            "Others then use it as --model hf:ORG/NAME."
        ),
    )
    parser.add_argument("--model", required=True, type=Path, help="model dir from `s2vt train`")
    parser.add_argument("--repo", required=True, help="Hub repo id, ORG/NAME")
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument("--revision", default=None, help="branch to push to (default: main)")
    parser.add_argument("--message", default=None, help="commit message")
    return parser


def run(args: argparse.Namespace) -> int:
    from s2vt.hub import files_to_push, push_model_dir

    url = push_model_dir(args.model, args.repo, private=args.private, revision=args.revision,
                         message=args.message)
    print(f"pushed {', '.join(files_to_push(args.model))} to {args.repo}: {url}")
    print(f"use it with: s2vt caption VIDEO --model hf:{args.repo}")
    return 0
