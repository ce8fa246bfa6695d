"""``memory`` stage (run only when asked for): peak RSS of ``s2vt extract`` sampling 32
frames from a long clip (10 minutes by default) and from a short one, measured from outside
through ``/proc`` (Linux only), ``repeats`` runs of each in alternating rounds."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from s2vt.bench.clips import write_long_clip
from s2vt.bench.timing import figure, timed


def _peak_rss_of_tree(command: list[str], poll: float = 0.05) -> dict[str, Any]:
    """Run ``command``; peak RSS (VmHWM, MiB) of it and of its largest descendant."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    peaks: dict[int, int] = {}

    def children(pid: int) -> list[int]:
        found = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                found += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
        return found

    while process.poll() is None:
        todo, seen = [process.pid], []
        while todo:
            pid = todo.pop()
            seen.append(pid)
            todo += children(pid)
        for pid in seen:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            except OSError:
                continue
        time.sleep(poll)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read()[-500:]}")
    main = peaks.pop(process.pid, 0)
    return {"main_mib": round(main / 1024, 1),
            "largest_child_mib": round(max(peaks.values(), default=0) / 1024, 1)}


def bench_memory(folder: Path, minutes: float, repeats: int,
                 num_frames: int = 32) -> dict[str, Any]:
    """Peak RSS of ``s2vt extract`` sampling ``num_frames`` from a long vs a short clip.

    Measured from outside (``/proc/<pid>/status`` VmHWM of the CLI process and of its
    decode worker), each clip ``repeats`` times into a fresh store. The long clip decoded
    whole would hold ``whole_clip_frames`` frames of ``frame_bytes_224px`` bytes each.
    """
    long_clip = write_long_clip(folder / "long.mp4", minutes)
    short_clip = write_long_clip(folder / "short.mp4", 3 / 60)
    runs: dict[str, list[dict[str, Any]]] = {"long": [], "short": []}
    for round_index in range(repeats):
        for name, clip in (("long", long_clip), ("short", short_clip)):
            command = [sys.executable, "-m", "s2vt", "extract", str(clip), "--out",
                       str(folder / f"store_{name}_{round_index}"), "--num-frames",
                       str(num_frames), "--no-progress"]
            seconds, peaks = timed(lambda command=command: _peak_rss_of_tree(command))
            runs[name].append(dict(peaks, seconds=seconds))
    result: dict[str, Any] = {"minutes": minutes, "num_frames": num_frames,
                              "size": "160x120", "fps": 10}
    for name, rows in runs.items():
        result[name] = {"main_mib": figure([r["main_mib"] for r in rows], "MiB", 1),
                        "largest_child_mib": figure([r["largest_child_mib"] for r in rows],
                                                    "MiB", 1),
                        "seconds": figure([r["seconds"] for r in rows], "s", 2)}
    result["whole_clip_frames"] = round(minutes * 60 * 10)
    # One 160x120 frame resized to 224 px high: 298 x 224 RGB.
    result["frame_bytes_224px"] = 298 * 224 * 3
    return result
