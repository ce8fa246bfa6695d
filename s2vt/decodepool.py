"""A pool of decode processes: crashes and hangs of a decoder become per-video failures.

Why processes: a decoder that crashes (a segfault in FFmpeg) or hangs must cost one video,
never the run. Each worker holds at most one video at a time, so when one dies or runs
past its timeout the pool knows exactly which file did it: that file gets the failure, the
worker is replaced, and the rest go on. Workers are started with ``spawn``, never ``fork``
after torch has started threads. A background thread feeds the workers, so decoding goes
on while the consumer (the extract stage's encoder, or the captioner) works.

A building block: the extract stage and the captioner both use it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from s2vt.errors import S2VTError, one_line
from s2vt.inputs import VideoInput
from s2vt.runtime import keep_freed_memory
from s2vt.video import SamplingConfig

DEFAULT_DECODE_FN = "s2vt.video:read_clip"
# Seconds a fresh worker may take to import its libraries before it counts as broken.
_WORKER_START_TIMEOUT = 120.0


def default_workers() -> int:
    """Decode processes when not set: one per two cores (measured on 2 cores: 1 is best)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _import_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def _worker_main(conn: Any, decode_fn: str, sampling: dict, decode_threads: int,
                 decode_options: dict | None = None) -> None:
    """Decode-process loop: receive (video_id, path, size), send the clip or the error.

    Runs in a spawned process; the parent watches it, so a crash or hang here costs one
    video, never the run.
    """
    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if decode_fn != DEFAULT_DECODE_FN:
        # Kept for decode functions that compute on the frames (the flow stream). Plain
        # decoding gains nothing from it (same frames/s on the real clips) and, never
        # trimmed, its heap grew: 88 -> 148 MiB over 150 reads of a 10-minute clip with
        # decord, flat near 80 MiB without.
        keep_freed_memory()
    try:
        import av  # noqa: F401  (before decord, always: see s2vt.video)

        decode = _import_callable(decode_fn)
        sampling_config = SamplingConfig(**sampling)
        conn.send(("ready",))
    except Exception as error:  # pragma: no cover - reported to the parent
        conn.send(("broken", one_line(error)))
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone (killed): nothing left to do
        if task is None:
            return
        video_id, path, size = task
        try:
            clip = decode(Path(path), sampling_config, size, num_threads=decode_threads,
                          **(decode_options or {}))
            message = ("ok", video_id, clip.frames, clip.indices, clip.timestamps,
                       float(clip.fps), _decoding(clip))
        except Exception as error:
            # The reason names the file: keep it whole for long paths.
            message = ("error", video_id, one_line(error, limit=2000))
        try:
            conn.send(message)
        except (BrokenPipeError, OSError):
            return


@dataclass
class Decoded:
    """One decode outcome, from the pool to its consumer (the encoding loop)."""

    video: VideoInput
    frames: np.ndarray | None = None   # (T, S, S, 3) uint8
    indices: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    fps: float = 0.0
    error: str | None = None
    # decoder that read it, and partial + warning when only part of the video decodes
    decoding: dict | None = None


def _decoding(clip: Any) -> dict:
    """How a clip was decoded, for the store's per-video record (any Clip-like object)."""
    record: dict[str, Any] = {"decoder": getattr(clip, "decoder", "") or None}
    if getattr(clip, "partial", False):
        record.update(partial=True, decoded_frames=clip.decoded_frames,
                      total_frames=clip.total_frames)
    if getattr(clip, "warning", None):
        record["warning"] = clip.warning
    return record


class _Slot:
    """One worker process and the video it is working on."""

    def __init__(self, process: Any, conn: Any) -> None:
        self.process = process
        self.conn = conn
        self.ready = False
        self.started = time.monotonic()
        self.task: VideoInput | None = None


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"


class DecodePool:
    """Worker processes that decode videos; crashes and hangs become per-video failures.

    Args:
        workers: number of processes.
        sampling: which frames to decode.
        timeout: seconds one video may take.
        decode_fn: ``"module:function"`` called in the workers as
            ``fn(path, sampling, size, num_threads=...) -> Clip``. The default is
            :func:`s2vt.video.read_clip`; tests point it at a function that crashes or
            hangs on purpose (fault injection); the flow stream points it at
            :func:`s2vt.flow.clip.read_flow_clip`, which returns flow images as frames.
        decode_threads: FFmpeg threads per worker.
        decode_options: extra keyword arguments of ``decode_fn`` (the flow settings).
    """

    def __init__(
        self,
        workers: int,
        sampling: SamplingConfig,
        timeout: float,
        decode_fn: str = DEFAULT_DECODE_FN,
        decode_threads: int = 1,
        decode_options: dict[str, Any] | None = None,
    ) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._workers = workers
        self._sampling = dataclasses.asdict(sampling)
        self._timeout = timeout
        self._decode_fn = decode_fn
        self._decode_threads = decode_threads
        self._decode_options = dict(decode_options or {})
        self._slots: list[_Slot] = []
        self._stop = threading.Event()
        self._taken = threading.Event()  # the consumer took a clip: room to dispatch more
        self._thread: threading.Thread | None = None
        self._results: queue.Queue | None = None  # decoded clips not yet taken (imap)

    @property
    def workers(self) -> int:
        """Number of worker processes."""
        return self._workers

    @property
    def backlog(self) -> int:
        """Decoded clips waiting for the consumer of :meth:`imap` (0 before it starts):
        near ``max_ready`` the workers wait for the consumer, not the other way round."""
        results = self._results
        return 0 if results is None else results.qsize()

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers (none before :meth:`start`), for monitoring."""
        return [slot.process.pid for slot in self._slots]

    # -- process management (called from the feeder thread, or before it starts)
    def _spawn(self) -> _Slot:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child, self._decode_fn, self._sampling, self._decode_threads,
                  self._decode_options),
            daemon=True,
            name="s2vt-decode",
        )
        process.start()
        child.close()
        return _Slot(process, parent)

    def _retire(self, slot: _Slot, kill: bool) -> None:
        if kill and slot.process.is_alive():
            slot.process.kill()
        slot.process.join(timeout=5)
        slot.conn.close()

    def start(self) -> None:
        """Start the worker processes (they import their libraries meanwhile)."""
        if not self._slots:
            self._slots = [self._spawn() for _ in range(self._workers)]

    def close(self) -> None:
        """Stop the feeder thread and the workers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for slot in self._slots:
            with contextlib.suppress(OSError, ValueError):
                slot.conn.send(None)
        deadline = time.monotonic() + 2
        for slot in self._slots:
            slot.process.join(timeout=max(0.0, deadline - time.monotonic()))
            self._retire(slot, kill=True)
        self._slots = []

    # -- feeding
    def imap(self, videos: list[VideoInput], size: int, max_ready: int) -> Iterator[Decoded]:
        """Decode ``videos`` (frames of side ``size``), yielding outcomes as they finish.

        At most ``max_ready`` decoded clips wait for the consumer (bounded memory).
        """
        self.start()
        results: queue.Queue = queue.Queue()
        self._results = results
        self._thread = threading.Thread(
            target=self._feed, args=(deque(videos), size, max_ready, results),
            name="s2vt-decode-feeder", daemon=True,
        )
        self._thread.start()
        while True:
            item = results.get()
            self._taken.set()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item

    def _feed(self, todo: deque, size: int, max_ready: int, results: queue.Queue) -> None:
        try:
            self._feed_loop(todo, size, max_ready, results)
        except BaseException as error:  # surfaced in the consumer, not lost in a thread
            results.put(error)
        finally:
            results.put(None)

    def _replace(self, index: int, kill: bool) -> None:
        self._retire(self._slots[index], kill=kill)
        self._slots[index] = self._spawn()

    def _feed_loop(self, todo: deque, size: int, max_ready: int, results: queue.Queue) -> None:
        from multiprocessing.connection import wait

        while not self._stop.is_set():
            busy = sum(slot.task is not None for slot in self._slots)
            for index, slot in enumerate(self._slots):
                if not (slot.ready and slot.task is None and todo):
                    continue
                if results.qsize() + busy >= max_ready:
                    break
                video = todo.popleft()
                try:
                    slot.conn.send((video.video_id, str(video.path), size))
                except (OSError, ValueError):
                    todo.appendleft(video)  # the idle worker died: retry on a fresh one
                    self._replace(index, kill=True)
                    continue
                slot.task, slot.started = video, time.monotonic()
                busy += 1
            if not todo and busy == 0:
                return
            now = time.monotonic()
            watched = [s for s in self._slots if s.task is not None or not s.ready]
            if not watched:
                self._taken.wait(0.5)  # every worker idle: wait for the consumer
                self._taken.clear()
                continue
            limits = [
                s.started + (self._timeout if s.ready else _WORKER_START_TIMEOUT) - now
                for s in watched
            ]
            handles = [s.conn for s in watched] + [s.process.sentinel for s in watched]
            wait(handles, timeout=min(0.5, max(0.0, min(limits))))
            now = time.monotonic()
            for index, slot in enumerate(self._slots):
                if slot.task is None and slot.ready:
                    continue
                self._check_slot(index, slot, now, results)

    def _check_slot(self, index: int, slot: _Slot, now: float, results: queue.Queue) -> None:
        message = None
        if slot.conn.poll():
            try:
                message = slot.conn.recv()
            except (EOFError, OSError):
                message = None
        if message is not None:
            kind = message[0]
            if kind == "ready":
                slot.ready = True
            elif kind == "broken":
                raise S2VTError(f"decode worker cannot start: {message[1]}")
            elif kind == "ok":
                _, _, frames, indices, timestamps, fps, decoding = message
                results.put(Decoded(slot.task, frames, indices, timestamps, fps,
                                    decoding=decoding))
                slot.task = None
            else:
                results.put(Decoded(slot.task, error=message[2]))
                slot.task = None
            return
        if not slot.process.is_alive():
            reason = _exit_reason(slot.process.exitcode)
            if slot.task is None:
                raise S2VTError(
                    f"decode worker died while starting ({reason}); when extract() is "
                    "called from a script, put the call under `if __name__ == '__main__':`"
                )
            results.put(Decoded(slot.task, error=f"decoder crashed ({reason})"))
            self._replace(index, kill=False)
            return
        if slot.task is not None and now - slot.started > self._timeout:
            results.put(Decoded(
                slot.task, error=f"decoding timed out after {self._timeout:g} s"
            ))
            self._replace(index, kill=True)
        elif not slot.ready and now - slot.started > _WORKER_START_TIMEOUT:
            raise S2VTError("decode worker did not start within "
                            f"{_WORKER_START_TIMEOUT:g} s")
