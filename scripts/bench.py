#!/usr/bin/env python
"""Speed benchmark of s2vt; same as ``s2vt bench`` (code in s2vt/bench/): prints JSON.

    python scripts/bench.py --out bench.json          # full run (5-10 min on 2 idle cores)
    python scripts/bench.py --quick                   # smoke run (still 3 repeats)
    python scripts/bench.py --experiment precision    # bf16 vs fp32 training accuracy

Every figure is the median of --repeats (>= 3) timed repeats with min and max; the JSON
goes to stdout, the verdicts and the MSR-VTT / VATEX projection to stderr. See
docs/performance.md for what each number means.
"""

import sys

import av  # noqa: F401  (before anything imports decord: see s2vt.video)

from s2vt.cli import main

if __name__ == "__main__":  # extract spawns decode workers, which re-import this file
    raise SystemExit(main(["bench", *sys.argv[1:]]))
