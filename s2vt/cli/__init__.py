"""The ``s2vt`` command line: argument parsing only; each command calls a stage function.

One module per command (``s2vt/cli/<command>.py``) defines ``add_parser(subparsers)`` and
``run(args) -> int``. Heavy libraries are imported inside ``run`` so that ``s2vt --help``
and ``s2vt caption`` start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from s2vt.errors import S2VTError
from s2vt.runtime import keep_freed_memory

COMMANDS = ("synth", "extract", "train", "fuse", "caption", "evaluate", "score", "demo", "run",
            "bench", "serve", "push")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per command module that exists."""
    parser = argparse.ArgumentParser(
        prog="s2vt", description="Video to text in the style of S2VT (Venugopalan et al. 2015)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"s2vt.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"s2vt.cli.{name}":
                continue
            raise
        command = module.add_parser(subparsers)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; a user error is one line on stderr and exit code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        stream=sys.stderr,
    )
    keep_freed_memory()
    try:
        return int(args.handler(args) or 0)
    except S2VTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished work is saved; rerun the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
