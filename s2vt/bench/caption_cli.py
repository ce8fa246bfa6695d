"""``caption_cli`` stage: ``s2vt caption one_clip --model DIR`` from process start to the
printed caption (a fresh interpreter, default encoder)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from s2vt.bench.caption import caption_model_dir


def bench_caption_cli(folder: Path, clip: Path) -> dict[str, Any]:
    """``s2vt caption CLIP --model DIR`` in a fresh interpreter, default encoder."""
    from s2vt.encoders import EncoderSpec
    from s2vt.video import SamplingConfig

    model_dir = caption_model_dir(folder, 1280, 1000, 80, dataclasses.asdict(EncoderSpec()),
                                  dataclasses.asdict(SamplingConfig()))
    command = [sys.executable, "-m", "s2vt", "caption", str(clip), "--model", str(model_dir)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"s2vt caption failed: {done.stderr.strip()[-500:]}")
    return {"seconds": round(seconds, 3), "command": "s2vt caption CLIP --model DIR",
            "encoder": "efficientnet_lite0"}
