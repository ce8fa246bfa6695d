"""``caption_cli`` stage: ``s2vt caption one_clip --model DIR`` from process start to the
printed caption, in a fresh interpreter each time, default encoder and runtime.

The first run starts from an empty converted-network cache (``$S2VT_CACHE`` pointed at a
new folder): it is reported apart as ``cold`` (conversion included). The timed repeats
that follow find that cache filled, as every run after a user's first does.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from s2vt.bench.caption import caption_model_dir
from s2vt.bench.timing import figure, timed


def _caption_seconds(command: list[str], env: dict[str, str]) -> float:
    """One ``s2vt caption`` run: wall-clock seconds from process start to its exit."""
    seconds, done = timed(lambda: subprocess.run(command, capture_output=True, text=True,
                                                 check=False, env=env))
    if done.returncode != 0:
        raise RuntimeError(f"s2vt caption failed: {done.stderr.strip()[-500:]}")
    return seconds


def bench_caption_cli(folder: Path, clip: Path, repeats: int) -> dict[str, Any]:
    """``s2vt caption CLIP --model DIR`` in a fresh interpreter: once cold, then
    ``repeats`` times warm.

    Returns:
        ``{"command", "encoder", "runtime", "cold_seconds", "seconds": figure}``.
    """
    from s2vt.bench.encoder import chosen
    from s2vt.encoders import EncoderSpec
    from s2vt.encoders.runtimes.cache import CACHE_ENV
    from s2vt.video import SamplingConfig

    spec = EncoderSpec()
    model_dir = caption_model_dir(folder / "model", 1280, 1000, 80, dataclasses.asdict(spec),
                                  dataclasses.asdict(SamplingConfig()))
    env = dict(os.environ, **{CACHE_ENV: str(folder / "cache")})
    command = [sys.executable, "-m", "s2vt", "caption", str(clip), "--model", str(model_dir)]
    cold = _caption_seconds(command, env)
    warm = [_caption_seconds(command, env) for _ in range(repeats)]
    return {"command": "s2vt caption CLIP --model DIR", "encoder": spec.name,
            "runtime": chosen(spec)["runtime"],
            "cold_seconds": round(cold, 3), "seconds": figure(warm, "s")}
