#!/usr/bin/env python
"""Speed benchmark of s2vt; same as ``s2vt bench`` (code in s2vt/bench/): prints JSON.

    python scripts/bench.py                           # full run (a few minutes on 2 cores)
    python scripts/bench.py --quick                   # about a minute
    python scripts/bench.py --experiment precision    # bf16 vs fp32 training accuracy

See docs/performance.md for the figures and what each number means.
"""

import sys

import av  # noqa: F401  (before anything imports decord: see s2vt.video)

from s2vt.cli import main

if __name__ == "__main__":  # extract spawns decode workers, which re-import this file
    raise SystemExit(main(["bench", *sys.argv[1:]]))
