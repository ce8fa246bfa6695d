"""The extract stage: videos -> sampled frames -> CNN features -> a feature store.

How the work is split (why: speed and reliability, see issues 6 and 7):

- **Decoding runs in worker processes** (``spawn`` context: never ``fork`` after torch has
  started threads). Each worker holds at most one video at a time, so when a decoder
  crashes (a segfault in FFmpeg) or hangs, the main process knows exactly which file did
  it: a dead worker or one past ``decode_timeout`` seconds becomes that file's failure, the
  worker is replaced, and the run goes on.
- **Encoding runs in the main process** while a background thread feeds it decoded clips,
  so decoding hides behind the CNN. Frames of several videos are packed into one encoder
  call of exactly ``batch_size`` frames (the last call is zero-padded): every frame goes
  through the same kernels whatever its neighbours, so a sharded run gives bit-identical
  features to an unsharded one.
- **Every feature file is written atomically** by :class:`s2vt.features.FeatureStore`; a
  rerun skips done videos, and when everything is done it returns before building the
  encoder.

Sharding (``shard="I/N"``, I 1-based): the input videos are sorted by id and shard I takes
positions ``p`` with ``p % N == I - 1``. Every shard sees the same sorted list, so the N
shards are disjoint, cover everything, and each video is written by exactly one process;
N shard runs into one folder produce the store of one unsharded run. Shard I records its
failures in ``failures.<I>-of-<N>.jsonl``; readers merge them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import logging
import math
import os
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from s2vt.encoders import EncoderSpec
from s2vt.errors import ConfigError, S2VTError
from s2vt.features import FORMAT_VERSION, FeatureStore, meta_difference, meta_mismatch_error
from s2vt.runtime import keep_freed_memory
from s2vt.video import VIDEO_EXTENSIONS, SamplingConfig

logger = logging.getLogger(__name__)

DEFAULT_DECODE_FN = "s2vt.video:read_clip"
CONFIG_FILE = "extract_config.yaml"
# Seconds a fresh worker may take to import its libraries before it counts as broken.
_WORKER_START_TIMEOUT = 120.0


@dataclass
class ExtractConfig:
    """Settings of ``s2vt extract`` (YAML + CLI flags + ``--set key=value``).

    Attributes:
        encoder: which frame encoder, its weights, pooling, input size and precision.
        sampling: which frames to take from each video.
        batch_size: frames per encoder call (frames of several videos are packed together).
        device: ``cpu`` or ``cuda`` (``cuda:1`` ...) for the encoder.
        workers: decoding processes; None picks by CPU count (1 on a 2-core machine,
            measured: more workers only steal cores from the encoder).
        threads: torch threads of the encoder; None keeps torch's default (all cores).
        decode_timeout: seconds one video may take to decode before it is a failure.
        dtype: dtype of the stored features.
        shard: ``"I/N"`` to process only shard I (1-based) of N; see the module docstring.
    """

    encoder: EncoderSpec = field(default_factory=EncoderSpec)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    batch_size: int = 64
    device: str = "cpu"
    workers: int | None = None
    threads: int | None = None
    decode_timeout: float = 120.0
    dtype: Literal["float16", "float32"] = "float16"
    shard: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if not self.decode_timeout > 0:
            raise ConfigError(f"decode_timeout must be > 0 seconds, got {self.decode_timeout}")
        if self.shard is not None:
            parse_shard(self.shard)


@dataclass(frozen=True)
class VideoInput:
    """One video to extract.

    Attributes:
        video_id: the id (becomes the feature file's name, safely encoded).
        path: the video file; None when the annotation names a clip that is not on disk.
    """

    video_id: str
    path: Path | None


@dataclass(frozen=True)
class Failure:
    """A video that could not be extracted, with a one-line reason."""

    video_id: str
    path: str | None
    reason: str


@dataclass
class ExtractResult:
    """What one ``extract`` call did.

    Attributes:
        done: ids extracted by this call.
        skipped: ids already in the store (from an earlier run), not redone.
        failed: the videos that failed in this call.
        out: the store folder.
    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    out: Path | None = None


# --------------------------------------------------------------------------- inputs
def parse_shard(shard: str) -> tuple[int, int]:
    """``"2/3"`` -> ``(2, 3)``; I is 1-based and 1 <= I <= N.

    Raises:
        ConfigError: for anything else.
    """
    index_text, sep, count_text = str(shard).partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index, count = 0, 0
    if not sep or count < 1 or not 1 <= index <= count:
        raise ConfigError(f"shard must be I/N with 1 <= I <= N (e.g. 1/4), got {shard!r}")
    return index, count


def select_shard(inputs: list[VideoInput], shard: tuple[int, int] | None) -> list[VideoInput]:
    """Sort ``inputs`` by id, drop repeated ids, and keep shard I of N (or all)."""
    unique: dict[str, VideoInput] = {}
    for item in inputs:
        if item.video_id in unique:
            logger.warning("video id %r is listed twice; using %s", item.video_id,
                           unique[item.video_id].path)
            continue
        unique[item.video_id] = item
    ordered = [unique[key] for key in sorted(unique)]
    if shard is None:
        return ordered
    index, count = shard
    return [item for position, item in enumerate(ordered) if position % count == index - 1]


def _ids_for_paths(paths: list[Path], base: Path) -> list[VideoInput]:
    """Id = file stem; when stems collide, the path relative to ``base`` without suffix."""
    stems: dict[str, int] = {}
    for path in paths:
        stems[path.stem] = stems.get(path.stem, 0) + 1
    inputs = []
    for path in paths:
        if stems[path.stem] == 1:
            video_id = path.stem
        else:
            try:
                relative = path.relative_to(base)
            except ValueError:
                relative = path
            video_id = relative.with_suffix("").as_posix()
        inputs.append(VideoInput(video_id, path))
    return inputs


def _is_video_name(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTENSIONS and not path.name.startswith(".")


def resolve_inputs(input: Path) -> list[VideoInput]:
    """The videos named by ``input``.

    Args:
        input: one of
            - a folder: every video file in it, recursively (by extension, hidden files
              skipped); id = file stem, or the relative path without suffix for stems
              that occur more than once;
            - an annotation JSON (``.json``): its videos, via
              :func:`s2vt.datasets.load_annotations` (paths resolved relative to the
              file); clips not on disk come back with ``path=None``;
            - a single video file;
            - a text file with one video path per line (relative to the list file; blank
              lines and ``#`` comments skipped).

    Returns:
        The videos, in a deterministic order.

    Raises:
        S2VTError: when ``input`` does not exist or names no video.
    """
    input = Path(input)
    if not input.exists():
        raise S2VTError(f"input not found: {input}")
    if input.is_dir():
        paths = sorted(
            p for p in input.rglob("*")
            if _is_video_name(p) and p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(input).parts)
        )
        inputs = _ids_for_paths(paths, input)
    elif input.suffix.lower() == ".json":
        from s2vt.datasets import load_annotations

        annotations = load_annotations(input, keep_missing=True)
        inputs = [
            VideoInput(video.video_id, None if video.path is None else Path(video.path))
            for video in annotations.videos
        ]
    elif input.suffix.lower() in VIDEO_EXTENSIONS:
        inputs = [VideoInput(input.stem, input)]
    else:
        try:
            lines = input.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise S2VTError(f"cannot read video list {input}: {error}") from None
        base = input.parent
        paths = []
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                path = Path(line).expanduser()
                paths.append(path if path.is_absolute() else base / path)
        inputs = _ids_for_paths(paths, base)
    if not inputs:
        raise S2VTError(
            f"no videos found in {input} (video extensions: {' '.join(VIDEO_EXTENSIONS)})"
        )
    return inputs


# --------------------------------------------------------------------------- decode workers
def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if text else type(error).__name__


def _import_callable(spec: str) -> Callable[..., Any]:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def _worker_main(conn: Any, decode_fn: str, sampling: dict, decode_threads: int) -> None:
    """Decode-process loop: receive (video_id, path, size), send the clip or the error.

    Runs in a spawned process; the parent watches it, so a crash or hang here costs one
    video, never the run.
    """
    # Ctrl-C goes to the whole process group; the parent decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    keep_freed_memory()
    try:
        import av  # noqa: F401  (before decord, always: see s2vt.video)

        decode = _import_callable(decode_fn)
        sampling_config = SamplingConfig(**sampling)
        conn.send(("ready",))
    except Exception as error:  # pragma: no cover - reported to the parent
        conn.send(("broken", _one_line(error)))
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
            clip = decode(Path(path), sampling_config, size, num_threads=decode_threads)
            message = ("ok", video_id, clip.frames, clip.indices, clip.timestamps,
                       float(clip.fps))
        except Exception as error:
            message = ("error", video_id, _one_line(error))
        try:
            conn.send(message)
        except (BrokenPipeError, OSError):
            return


@dataclass
class _Decoded:
    """One decode outcome, from the pool to the encoding loop."""

    video: VideoInput
    frames: np.ndarray | None = None   # (T, S, S, 3) uint8
    indices: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    fps: float = 0.0
    error: str | None = None


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
            hangs on purpose (fault injection), nothing else should change it.
        decode_threads: FFmpeg threads per worker.
    """

    def __init__(
        self,
        workers: int,
        sampling: SamplingConfig,
        timeout: float,
        decode_fn: str = DEFAULT_DECODE_FN,
        decode_threads: int = 1,
    ) -> None:
        import multiprocessing

        self._context = multiprocessing.get_context("spawn")
        self._workers = workers
        self._sampling = dataclasses.asdict(sampling)
        self._timeout = timeout
        self._decode_fn = decode_fn
        self._decode_threads = decode_threads
        self._slots: list[_Slot] = []
        self._stop = threading.Event()
        self._taken = threading.Event()  # the consumer took a clip: room to dispatch more
        self._thread: threading.Thread | None = None

    @property
    def workers(self) -> int:
        """Number of worker processes."""
        return self._workers

    # -- process management (called from the feeder thread, or before it starts)
    def _spawn(self) -> _Slot:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            args=(child, self._decode_fn, self._sampling, self._decode_threads),
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
    def imap(self, videos: list[VideoInput], size: int, max_ready: int) -> Iterator[_Decoded]:
        """Decode ``videos`` (frames of side ``size``), yielding outcomes as they finish.

        At most ``max_ready`` decoded clips wait for the consumer (bounded memory).
        """
        self.start()
        results: queue.Queue = queue.Queue()
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
                _, _, frames, indices, timestamps, fps = message
                results.put(_Decoded(slot.task, frames, indices, timestamps, fps))
                slot.task = None
            else:
                results.put(_Decoded(slot.task, error=message[2]))
                slot.task = None
            return
        if not slot.process.is_alive():
            reason = _exit_reason(slot.process.exitcode)
            if slot.task is None:
                raise S2VTError(
                    f"decode worker died while starting ({reason}); when extract() is "
                    "called from a script, put the call under `if __name__ == '__main__':`"
                )
            results.put(_Decoded(slot.task, error=f"decoder crashed ({reason})"))
            self._replace(index, kill=False)
            return
        if slot.task is not None and now - slot.started > self._timeout:
            results.put(_Decoded(
                slot.task, error=f"decoding timed out after {self._timeout:g} s"
            ))
            self._replace(index, kill=True)
        elif not slot.ready and now - slot.started > _WORKER_START_TIMEOUT:
            raise S2VTError("decode worker did not start within "
                            f"{_WORKER_START_TIMEOUT:g} s")


# --------------------------------------------------------------------------- extract
def default_workers() -> int:
    """Decode processes when not set: one per two cores (measured on 2 cores: 1 is best)."""
    return max(1, min(8, (os.cpu_count() or 2) // 2))


def _spec_meta(config: ExtractConfig) -> dict[str, Any]:
    """The part of the store meta known before the encoder is built."""
    return {
        "format_version": FORMAT_VERSION,
        "encoder": dataclasses.asdict(config.encoder),
        "sampling": dataclasses.asdict(config.sampling),
        "dtype": config.dtype,
    }


def _check_existing_store(out: Path, config: ExtractConfig) -> FeatureStore | None:
    """Open an existing store and check it was made with these settings (no encoder needed)."""
    if not FeatureStore.exists(out):
        return None
    store = FeatureStore.open(out)
    wanted = _spec_meta(config)
    existing = {key: store.meta.get(key) for key in wanted}
    key = meta_difference(existing, wanted)
    size = config.encoder.image_size
    if key is None and size is not None and store.meta.get("image_size") != size:
        key = "image_size"
    if key is not None:
        full = dict(store.meta)
        new = dict(full, **wanted)
        if key == "image_size":
            new["image_size"] = config.encoder.image_size
        raise meta_mismatch_error(out, full, new, key)
    return store


class _Progress:
    """One pending video's features as its frames come out of the encoder."""

    def __init__(self, decoded: _Decoded) -> None:
        self.decoded = decoded
        self.parts: list[np.ndarray] = []
        self.remaining = len(decoded.frames)


def extract(
    inputs: list[VideoInput],
    out: Path,
    config: ExtractConfig,
    *,
    progress: bool = True,
    decode_fn: str = DEFAULT_DECODE_FN,
) -> ExtractResult:
    """Extract per-frame features of ``inputs`` into the feature store at ``out``.

    Finished videos are skipped; when all are finished nothing is built or started.
    A video that fails (unreadable, crashing or hanging decoder, missing file) is recorded
    in the store's failures file with a one-line reason and logged; the others go on.

    Args:
        inputs: the videos (see :func:`resolve_inputs`).
        out: the store folder (created, or reopened when its meta matches).
        config: the settings; ``config.shard`` selects this process's part.
        progress: show a tqdm bar on stderr.
        decode_fn: test hook only (fault injection), see :class:`DecodePool`.

    Returns:
        done / skipped / failed of this call.

    Raises:
        S2VTError: an existing store made with other settings, an unknown encoder, ...
    """
    out = Path(out)
    shard = parse_shard(config.shard) if config.shard else None
    selected = select_shard(list(inputs), shard)
    result = ExtractResult(out=out)
    existing = _check_existing_store(out, config)
    pending = []
    for video in selected:
        if existing is not None and existing.has(video.video_id):
            result.skipped.append(video.video_id)
        else:
            pending.append(video)
    if not pending:
        logger.debug("all %d videos already extracted in %s", len(selected), out)
        return result

    missing = [v for v in pending if v.path is None or not Path(v.path).is_file()]
    missing_ids = {v.video_id for v in missing}
    todo = [v for v in pending if v.video_id not in missing_ids]
    workers = min(config.workers or default_workers(), max(1, len(todo)))
    pool = DecodePool(workers, config.sampling, config.decode_timeout, decode_fn=decode_fn)
    try:
        if todo:
            pool.start()  # workers import decord while the encoder loads
        encoder = _build_encoder(config)
        meta = dict(_spec_meta(config), feature_dim=int(encoder.feature_dim),
                    image_size=int(encoder.image_size))
        store = FeatureStore.create(out, meta, shard=shard)
        from s2vt.config import save_config

        save_config(config, out / CONFIG_FILE)
        bar = _progress_bar(len(pending), progress)
        try:
            for video in missing:
                reason = (f"video file not found: {video.path}" if video.path is not None
                          else "video file not found (no clip on disk for this annotation)")
                _fail(store, result, video, reason, bar)
            if todo:
                _run(pool, todo, store, encoder, config, result, bar)
        finally:
            bar.close()
    finally:
        pool.close()
    return result


def _build_encoder(config: ExtractConfig) -> Any:
    import torch

    from s2vt.encoders import build_encoder

    if config.threads is not None:
        torch.set_num_threads(config.threads)
    return build_encoder(config.encoder, device=config.device)


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, unit="video", desc="extract", disable=not enabled,
                dynamic_ncols=True, leave=True)


def _fail(store: FeatureStore, result: ExtractResult, video: VideoInput, reason: str,
          bar: Any) -> None:
    reason = " ".join(reason.split())
    path = None if video.path is None else str(video.path)
    store.record_failure(video.video_id, path, reason)
    result.failed.append(Failure(video.video_id, path, reason))
    logger.warning("failed: %s: %s", video.video_id, reason)
    bar.update(1)
    bar.set_postfix(failed=len(result.failed), refresh=False)


def _run(pool: DecodePool, todo: list[VideoInput], store: FeatureStore, encoder: Any,
         config: ExtractConfig, result: ExtractResult, bar: Any) -> None:
    """Pack decoded frames into fixed-size encoder batches and write finished videos."""
    batch_size = config.batch_size
    frames_per_clip = config.sampling.num_frames if config.sampling.mode == "uniform" else 16
    # Enough decoded clips queued to fill two batches, and at least one per worker.
    max_ready = max(2 * pool.workers, 2 * math.ceil(batch_size / frames_per_clip))
    buffer: deque[tuple[_Progress, int]] = deque()  # (video, next frame to encode)
    buffered = 0
    timings = {"encode": 0.0, "write": 0.0}
    run_started = time.perf_counter()

    def encode_batch(pad: bool) -> None:
        nonlocal buffered
        chunks, owners = [], []
        take_total = 0
        while buffer and take_total < batch_size:
            item, start = buffer[0]
            take = min(batch_size - take_total, len(item.decoded.frames) - start)
            chunks.append(item.decoded.frames[start : start + take])
            owners.append((item, take))
            take_total += take
            if start + take == len(item.decoded.frames):
                buffer.popleft()
            else:
                buffer[0] = (item, start + take)
        buffered -= take_total
        frames = np.concatenate(chunks)
        if pad and take_total < batch_size:
            # Same batch shape for every call: features never depend on the neighbours.
            padding = np.zeros((batch_size - take_total, *frames.shape[1:]), frames.dtype)
            frames = np.concatenate([frames, padding])
        started = time.perf_counter()
        features = encoder.encode(frames)
        features = features.float().cpu().numpy()[:take_total]
        timings["encode"] += time.perf_counter() - started
        offset = 0
        for item, take in owners:
            item.parts.append(features[offset : offset + take])
            offset += take
            item.remaining -= take
            if item.remaining == 0:
                finish(item)

    def finish(item: _Progress) -> None:
        decoded = item.decoded
        video = decoded.video
        started = time.perf_counter()
        try:
            store.write(video.video_id, np.concatenate(item.parts), decoded.indices,
                        decoded.timestamps, source=str(video.path), fps=decoded.fps)
        except S2VTError as error:
            _fail(store, result, video, str(error), bar)
            return
        finally:
            timings["write"] += time.perf_counter() - started
        item.decoded.frames = None  # free the frames now, not when the batch ends
        result.done.append(video.video_id)
        bar.update(1)

    for decoded in pool.imap(todo, int(encoder.image_size), max_ready):
        if decoded.error is not None:
            _fail(store, result, decoded.video, decoded.error, bar)
            continue
        if decoded.frames is None or len(decoded.frames) == 0:
            _fail(store, result, decoded.video, "no frames decoded", bar)
            continue
        buffer.append((_Progress(decoded), 0))
        buffered += len(decoded.frames)
        while buffered >= batch_size:
            encode_batch(pad=False)
    while buffered > 0:
        encode_batch(pad=True)
    total = time.perf_counter() - run_started
    # Where the time went: encode close to total means decoding was hidden behind it.
    logger.debug("extract loop %.2f s: encode %.2f s, write %.2f s, waiting for decode %.2f s",
                 total, timings["encode"], timings["write"],
                 total - timings["encode"] - timings["write"])
