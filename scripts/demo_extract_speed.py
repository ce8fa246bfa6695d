#!/usr/bin/env python
"""The demo's RGB extract stage, before and after the encoder runtimes, side by side.

    python scripts/demo_extract_speed.py                  # 300 synthetic clips, 3 rounds
    python scripts/demo_extract_speed.py --videos DIR     # your own clips instead
    git worktree add ../s2vt-then 4ae6ab2                 # the code when the runtimes
    python scripts/demo_extract_speed.py --checkout ../s2vt-then   # were asked for, too

``before`` is ``configs/demo/extract.yaml`` as the demo ran it before the runtimes existed:
the same file (its precision was ``auto`` then too, bf16 on CPUs with AMX or AVX512-BF16)
on torch eager (``runtime: torch``). ``now`` is the same file with its defaults
(``runtime: auto``: OpenVINO on CPU when installed). Both run ``s2vt.extraction.extract``
in this process, as the demo's pipeline does, into a fresh store each time, in alternating
rounds (before, now, before, now, ...); each figure is the median of the rounds with min
and max, start-up included (decode worker spawn, encoder build), what the demo's stage
waits for. One untimed run of each on a few clips first fills the converted-network cache
(a fresh one, under the work folder) and is printed as the cold start. Each round also
times the decoder alone (one process, one thread, the same clips, frames and size): with
one decode worker, what extract cannot beat, and the encoder alone on one thread: with the
start-up of a one-clip extract they give the work bound, the fastest this machine's cores
could run the stage if decoding and encoding overlapped perfectly: start-up + (decode
seconds + one-thread encode seconds) / cores.

``--checkout DIR`` also times another checkout of s2vt (the code as it was, e.g. a
``git worktree`` of an older commit) on the same clips and config file, in a subprocess
with that checkout first on ``PYTHONPATH`` and torch imported before the clock starts, as
in the demo's process; its time is the extract call only.

Run it on an otherwise idle machine; it prints the load before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av  # noqa: F401  (before anything imports decord: see s2vt.video)

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo" / "extract.yaml"
WARMUP_CLIPS = 8
ENCODER_BATCHES = 8  # calls of batch_size frames per one-thread encoder round

# Run in a subprocess with another checkout first on PYTHONPATH: one extract, its seconds.
CHECKOUT_PROGRAM = """
import json, sys, time
from pathlib import Path

import av  # noqa: F401  (before anything imports decord)
import torch  # noqa: F401  (loaded before the clock starts, as in the demo's process)

from s2vt.config import load_config
from s2vt.extraction import ExtractConfig, VideoInput, extract
from s2vt.runtime import keep_freed_memory


def main():
    keep_freed_memory()
    config = load_config(ExtractConfig, Path(sys.argv[1]))
    paths = [Path(line) for line in Path(sys.argv[2]).read_text().splitlines()]
    start = time.perf_counter()
    result = extract([VideoInput(p.stem, p) for p in paths], Path(sys.argv[3]), config,
                     progress=False)
    print(json.dumps({"seconds": time.perf_counter() - start, "failed": len(result.failed),
                      "s2vt": __import__("s2vt").__file__}))


if __name__ == "__main__":
    main()
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=Path,
                        help="folder of clips to extract (default: synthesise --clips)")
    parser.add_argument("--clips", type=int, default=300,
                        help="synthetic clips to write and extract (default 300)")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (>= 3)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--checkout", type=Path, metavar="DIR",
                        help="also time this checkout of s2vt (e.g. a git worktree of the "
                             "commit before the runtimes) in a subprocess, same rounds")
    parser.add_argument("--also-workers", type=int, metavar="N",
                        help="also time 'now' with N decode workers (extract's default "
                             "is one on 2 cores), in the same rounds")
    args = parser.parse_args(argv)
    if args.checkout is not None and not (args.checkout / "s2vt" / "__init__.py").is_file():
        parser.error(f"--checkout {args.checkout}: not a checkout of s2vt (no s2vt/__init__.py)")
    if args.rounds < 3:
        parser.error("--rounds must be >= 3 (each figure is a median with min and max)")
    return args


def figure(values: list[float]) -> str:
    return (f"{statistics.median(values):.1f} (min {min(values):.1f}, max {max(values):.1f}, "
            f"{len(values)} rounds)")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="s2vt-demo-extract-") as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        os.environ["S2VT_CACHE"] = str(work / "cache")  # a cold converted-network cache
        return run(args, work)


def run(args: argparse.Namespace, work: Path) -> int:
    import torch

    from s2vt.cli import main as cli
    from s2vt.config import load_config
    from s2vt.encoders.base import resolve_precision
    from s2vt.encoders.runtimes.timing import encoder_throughput
    from s2vt.extraction import ExtractConfig, VideoInput, extract
    from s2vt.runtime import keep_freed_memory
    from s2vt.video import VIDEO_EXTENSIONS, decode_rate

    keep_freed_memory()  # as the CLI (and so the demo) runs
    load_before = os.getloadavg()
    videos = args.videos
    if videos is None:
        synth = work / "synth"
        if cli(["synth", "--out", str(synth), "--num-videos", str(args.clips)]) != 0:
            return 1
        videos = synth / "videos"
    paths = sorted(p for p in videos.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
    if not paths:
        print(f"no video files in {videos}", file=sys.stderr)
        return 2
    inputs = [VideoInput(p.stem, p) for p in paths]
    now = load_config(ExtractConfig, DEMO_CONFIG)
    before = dataclasses.replace(now, encoder=dataclasses.replace(now.encoder, runtime="torch"))
    configs = {"before": before, "now": now}
    if args.also_workers:
        configs[f"now, {args.also_workers} decode workers"] = dataclasses.replace(
            now, workers=args.also_workers)
    frames = len(paths) * now.sampling.num_frames
    counter = 0

    def once(config: ExtractConfig, chosen: list[VideoInput]) -> tuple[float, str]:
        nonlocal counter
        counter += 1
        out = work / f"store{counter}"
        start = time.perf_counter()
        result = extract(chosen, out, config, progress=False)
        seconds = time.perf_counter() - start
        if result.failed:
            raise RuntimeError(f"extract failed on {result.failed[0]}")
        meta = json.loads((out / "meta.json").read_text())
        precision = resolve_precision(config.encoder.precision, torch.device(config.device))
        return seconds, f"{meta['encoder_runtime']['name']} {precision}"

    def checkout_once() -> float:
        nonlocal counter
        counter += 1
        config_file = args.checkout / "configs" / "demo" / "extract.yaml"
        env = dict(os.environ, PYTHONPATH=str(args.checkout.resolve()))
        done = subprocess.run(
            [sys.executable, str(program), str(config_file if config_file.is_file()
                                               else DEMO_CONFIG), str(listing),
             str(work / f"store{counter}")],
            cwd=work, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"the checkout's extract failed: {done.stderr.strip()[-500:]}")
        row = json.loads(done.stdout.strip().splitlines()[-1])
        if row["failed"] or not row["s2vt"].startswith(str(args.checkout.resolve())):
            raise RuntimeError(f"the checkout's extract did not run as asked: {row}")
        return float(row["seconds"])

    if args.checkout is not None:
        program = work / "checkout_extract.py"
        program.write_text(CHECKOUT_PROGRAM)
        listing = work / "clips.txt"
        listing.write_text("\n".join(str(p.resolve()) for p in paths))
        checkout_once()  # untimed: the checkout's own caches and imports
    ran = {}
    for name, config in configs.items():
        seconds, ran[name] = once(config, inputs[:WARMUP_CLIPS])
        print(f"{name}: cold start (empty converted-network cache), {WARMUP_CLIPS} clips: "
              f"{seconds:.2f} s [{ran[name]}]")
    runtime_name = json.loads((work / f"store{counter}" / "meta.json").read_text())[
        "encoder_runtime"]["name"]  # what "now" (the last warm-up) runs on
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    checkout_seconds: list[float] = []
    decode_seconds: list[float] = []
    bound_seconds: list[float] = []
    cores = os.cpu_count() or 1
    for _ in range(args.rounds):
        for name, config in configs.items():
            seconds[name].append(once(config, inputs)[0])
        if args.checkout is not None:
            checkout_seconds.append(checkout_once())
        # What extract cannot beat with one decode worker: the decoder alone, one process,
        # one thread, the same clips, frames and size.
        decoded = decode_rate(paths, now.sampling, now.encoder.image_size, now.decoder,
                              num_threads=1, repeats=1)
        if decoded["failed"]:
            raise RuntimeError(f"decode failed on {decoded['failed'][0]}")
        decode_seconds.append(float(decoded["seconds"]))
        # The work bound: start-up (a one-clip extract) + the CPU seconds of decoding and of
        # encoding on one thread (its most efficient use of a core), spread over the cores.
        startup = once(now, inputs[:1])[0]
        encoded = encoder_throughput(now.encoder, (runtime_name,), batch_size=now.batch_size,
                                     batches=ENCODER_BATCHES, repeats=1, threads=1)
        one_thread = encoded["runtimes"][runtime_name]["images_per_second"]["median"]
        bound_seconds.append(startup + (decode_seconds[-1] + frames / one_thread) / cores)
    load_after = os.getloadavg()
    print(f"{len(paths)} clips x {now.sampling.num_frames} frames at "
          f"{now.encoder.image_size} px ({DEMO_CONFIG.relative_to(REPO)}), "
          f"{args.rounds} alternating rounds, start-up included")
    rates = {}
    for name in configs:
        rates[name] = [frames / s for s in seconds[name]]
        print(f"{name} [{ran[name]}; runtime: {configs[name].encoder.runtime}]: "
              f"{figure(rates[name])} frames/s; {figure(seconds[name])} s")
    if checkout_seconds:
        rates["checkout"] = [frames / s for s in checkout_seconds]
        print(f"checkout {args.checkout} [its own config file and defaults, subprocess]: "
              f"{figure(rates['checkout'])} frames/s; {figure(checkout_seconds)} s")
    decode = [frames / s for s in decode_seconds]
    print(f"decode alone [{now.decoder}, 1 process, 1 thread]: {figure(decode)} frames/s")
    print(f"work bound [start-up + (decode + one-thread {runtime_name} encode) / {cores} "
          f"cores]: {figure(bound_seconds)} s")
    for name in rates:
        if name != "before":
            ratio = statistics.median(rates[name]) / statistics.median(rates["before"])
            print(f"{name} / before (medians of frames/s): {ratio:.2f}")
    print(f"decode alone / before (medians of frames/s): "
          f"{statistics.median(decode) / statistics.median(rates['before']):.2f}")
    for name in ("before", "checkout"):
        if name in rates:
            baseline = frames / statistics.median(rates[name])
            print(f"{name} / work bound (medians of seconds): the most 'now' could gain over "
                  f"{name} here: {baseline / statistics.median(bound_seconds):.2f}")
    if checkout_seconds:
        print(f"now / checkout (medians of frames/s): "
              f"{statistics.median(rates['now']) / statistics.median(rates['checkout']):.2f}")
    print(f"load before {', '.join(f'{x:.2f}' for x in load_before)}; "
          f"after {', '.join(f'{x:.2f}' for x in load_after)}")
    return 0


if __name__ == "__main__":  # extract spawns decode workers, which re-import this file
    raise SystemExit(main(sys.argv[1:]))
