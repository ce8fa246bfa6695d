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

# The command line of a spawned multiprocessing child (the decode workers) once it has
# exec'd its own interpreter.
_SPAWNED = "multiprocessing.spawn"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None  # a zombie has no memory lines


def _peak_rss_of_tree(command: list[str], poll: float = 0.05) -> dict[str, Any]:
    """Run ``command``; peak RSS (VmHWM, MiB) of it, of its decode workers and of the largest
    other descendant.

    A process's samples count only under the command line it ends with. Why: between
    fork and exec a child shares or copies its parent's memory, so its VmHWM reads the
    parent's, under the pid it keeps after the exec. Libraries that fork the main process
    without an exec (OpenVINO's telemetry at ``import openvino``) show such a copy for a
    moment: it lands in ``other_child_mib``, never in the worker's figure.
    """
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    # pid -> (command line, peak KiB under it); the command itself is measured the same way
    seen: dict[int, tuple[str, int]] = {}
    while process.poll() is None:
        todo = [process.pid]
        while todo:
            pid = todo.pop()
            todo += _children(pid)
            try:
                # Read before the status: an exec'd command line means an exec'd status.
                line = Path(f"/proc/{pid}/cmdline").read_text()
            except OSError:
                continue
            hwm = _hwm_kib(pid)
            if hwm is None or not line:
                continue  # gone, or a zombie
            previous, peak = seen.get(pid, (line, 0))
            seen[pid] = (line, hwm if previous != line else max(peak, hwm))
        time.sleep(poll)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read()[-500:]}")
    main = seen.pop(process.pid, ("", 0))[1]
    workers = [kib for line, kib in seen.values() if _SPAWNED in line]
    others = [kib for line, kib in seen.values() if _SPAWNED not in line]
    return {"main_mib": round(main / 1024, 1),
            "decode_worker_mib": round(max(workers, default=0) / 1024, 1),
            "other_child_mib": round(max(others, default=0) / 1024, 1)}


def bench_memory(folder: Path, minutes: float, repeats: int,
                 num_frames: int = 32) -> dict[str, Any]:
    """Peak RSS of ``s2vt extract`` sampling ``num_frames`` from a long vs a short clip.

    Measured from outside (``/proc/<pid>/status`` VmHWM of the CLI process and of its
    decode worker), each clip ``repeats`` times into a fresh store. ``other_child_mib`` is
    the largest other descendant (a fork of the main process by a library: its VmHWM counts
    the main process's pages it shares, not memory of its own). The long clip decoded
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
        result[name] = {key: figure([r[key] for r in rows], "MiB", 1)
                        for key in ("main_mib", "decode_worker_mib", "other_child_mib")}
        result[name]["seconds"] = figure([r["seconds"] for r in rows], "s", 2)
    result["whole_clip_frames"] = round(minutes * 60 * 10)
    # One 160x120 frame resized to 224 px high: 298 x 224 RGB.
    result["frame_bytes_224px"] = 298 * 224 * 3
    return result
