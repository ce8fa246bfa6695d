"""A tiny recipe runner: re-run a stage only when its inputs or config changed.

Each step has an output folder and a *key*: a JSON-able description of everything its
output depends on (its config, its inputs' keys, the s2vt version). The step writes a
stamp file beside its output when it finishes. On the next run:

- stamp present and key unchanged -> the step is skipped and its output reused;
- the step was interrupted with the same key -> it runs again and its stage resumes
  (extract skips finished videos, train resumes from its training state);
- the key changed -> the old output is removed and the step runs from scratch, unless only
  entries named in ``Step.resume_on`` changed: then the stage runs with ``resume=True`` over
  its old output (for incremental stages, e.g. extract when new clips appeared).

:func:`split_stage_overrides` splits ``--set STAGE.KEY=VALUE`` items per stage for the
recipe commands (``s2vt demo``, ``s2vt run``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2vt import __version__
from s2vt.config import parse_overrides
from s2vt.errors import ConfigError
from s2vt.fileio import atomic_write_json

logger = logging.getLogger(__name__)


def fingerprint(key: Any) -> str:
    """A short stable hash of a JSON-able key."""
    text = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Step:
    """One stage of a recipe.

    Attributes:
        name: shown in logs, e.g. ``extract``.
        out: the folder the stage writes.
        key: everything the output depends on (JSON-able).
        action: runs the stage; receives ``resume=True`` when an interrupted run of the
            same key left partial output behind.
        resume_on: top-level key entries whose change alone keeps the old output: the
            stage then runs with ``resume=True`` on top of it instead of from scratch.
            Only for stages that add to their output and check its compatibility
            themselves (a feature store gaining new clips).
    """

    name: str
    out: Path
    key: dict[str, Any]
    action: Callable[[bool], Any]
    resume_on: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        return fingerprint({"version": __version__, **self.key})

    @property
    def stamp(self) -> Path:
        return self.out.parent / f".{self.out.name}.step.json"


def run_step(step: Step) -> bool:
    """Run ``step`` unless its output is up to date.

    Returns:
        True if the stage ran, False if its output was reused.
    """
    wanted = step.fingerprint
    state: dict[str, Any] = {}
    if step.stamp.is_file():
        try:
            state = json.loads(step.stamp.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            state = {}
    if state.get("fingerprint") == wanted and state.get("status") == "done" and step.out.exists():
        logger.info("[%s] up to date, reusing %s", step.name, step.out)
        return False
    resume = state.get("fingerprint") == wanted and step.out.exists()
    if not resume and step.out.exists() and _differs_only_in(state, step):
        logger.info("[%s] %s changed, updating %s in place", step.name,
                    ", ".join(step.resume_on), step.out)
        resume = True
    if not resume and step.out.exists():
        logger.info("[%s] inputs or config changed, rebuilding %s", step.name, step.out)
        if step.out.is_dir():
            shutil.rmtree(step.out)
        else:
            step.out.unlink()
    step.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(step.stamp, {"fingerprint": wanted, "status": "running", "key": step.key})
    logger.info("[%s] %s -> %s", step.name, "resuming" if resume else "running", step.out)
    started = time.perf_counter()
    step.action(resume)
    seconds = round(time.perf_counter() - started, 2)
    atomic_write_json(
        step.stamp,
        {"fingerprint": wanted, "status": "done", "key": step.key, "seconds": seconds},
    )
    logger.info("[%s] done in %.1f s", step.name, seconds)
    return True


def _differs_only_in(state: dict[str, Any], step: Step) -> bool:
    """Whether the stamped key equals ``step.key`` except for ``step.resume_on`` entries."""
    old = state.get("key")
    if not step.resume_on or not isinstance(old, dict):
        return False
    # The stamp's fingerprint also proves the old key was recorded by this s2vt version.
    if state.get("fingerprint") != fingerprint({"version": __version__, **old}):
        return False

    def kept(key: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in key.items() if k not in step.resume_on}

    return fingerprint(kept(old)) == fingerprint(kept(step.key))


def split_stage_overrides(
    items: Sequence[str], stages: Sequence[str], *, command: str, example: str
) -> dict[str, list[str]]:
    """``["extract.encoder.name=tiny", "train.epochs=2"]`` -> per-stage override lists.

    Args:
        items: ``STAGE.KEY=VALUE`` strings from ``--set``.
        stages: the stage names the recipe accepts.
        command: the command name for error messages (``demo``, ``run``).
        example: a valid override shown in the error message.
    Raises:
        ConfigError: an item without a known stage prefix or with a malformed value.
    """
    per_stage: dict[str, list[str]] = {}
    for item in items:
        stage, dot, rest = item.partition(".")
        if not dot or stage not in stages:
            raise ConfigError(
                f"{command} override '{item}' must start with one of {', '.join(stages)} "
                f"(e.g. {example})"
            )
        parse_overrides([rest])  # reject malformed values early
        per_stage.setdefault(stage, []).append(rest)
    return per_stage


def run_steps(steps: list[Step], workers: int = 1) -> list[bool]:
    """Run independent steps, side by side in ``workers`` processes when more than one.

    Small models use one CPU core far better than two: torch's threads on a busy core spin
    and can run ten times slower. So with ``workers > 1`` each step gets its own spawned
    process with ``cores // workers`` torch threads, and steps without a heavy start-up cost
    the same as when run in turn.

    Returns:
        For each step, whether it ran (False: its output was reused).
    """
    if workers <= 1 or len(steps) <= 1:
        return [run_step(step) for step in steps]
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(min(workers, len(steps)), mp_context=context,
                             initializer=_init_worker, initargs=(threads,)) as pool:
        return list(pool.map(run_step, steps))


def _init_worker(threads: int) -> None:
    """Set up a spawned step process: its torch thread count and log output."""
    from s2vt.runtime import prepare_worker

    prepare_worker(threads)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
