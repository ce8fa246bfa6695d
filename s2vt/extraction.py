"""The extract stage: videos -> sampled frames -> CNN features -> a feature store.

How the work is split, for speed and so that no bad file can cost the run:

- **Decoding runs in worker processes** (:class:`s2vt.decodepool.DecodePool`): a decoder
  that crashes or hangs costs only its video, which is recorded as a failure.
- **Encoding runs in the main process** while the pool's feeder thread keeps decoded clips
  coming, so decoding hides behind the CNN. Frames of several videos are packed into one
  encoder call of exactly ``batch_size`` frames (the last call is zero-padded): every call
  has the same shape whatever videos it holds, so every frame goes through the same
  kernels and a sharded run gives bit-identical features to an unsharded one (the real
  encoder's kernels do depend on the batch shape).
- **Every feature file is written atomically** by :class:`s2vt.features.FeatureStore`; a
  rerun skips done videos, and when everything is done it returns before building the
  encoder.

Sharding (``shard="I/N"``, see :mod:`s2vt.inputs`): N shard runs into one folder write
each video exactly once and make the store of one unsharded run. Shard I records its
failures in ``failures.<I>-of-<N>.jsonl``; readers merge them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from s2vt.decodepool import DEFAULT_DECODE_FN, Decoded, DecodePool, default_workers
from s2vt.encoders import EncoderSpec
from s2vt.errors import ConfigError, S2VTError
from s2vt.features import FORMAT_VERSION, FeatureStore, meta_difference, meta_mismatch_error
from s2vt.flow.config import FlowConfig
from s2vt.flow.stream import STREAM_NAMES, decode_call, stream_meta
from s2vt.inputs import VideoInput, parse_shard, resolve_inputs, select_shard
from s2vt.runtime import torch_threads
from s2vt.video import DEFAULT_DECODER, SamplingConfig, decoder_chain, decoder_names

# Callers (pipelines, bench, scripts) import the stage's inputs from here too.
__all__ = [
    "CONFIG_FILE", "DEFAULT_DECODE_FN", "ExtractConfig", "ExtractResult", "Failure",
    "VideoInput", "default_workers", "extract", "parse_shard", "resolve_inputs",
]

logger = logging.getLogger(__name__)

CONFIG_FILE = "extract_config.yaml"


@dataclass
class ExtractConfig:
    """Settings of ``s2vt extract`` (YAML + CLI flags + ``--set key=value``).

    Attributes:
        encoder: which frame encoder, its weights, pooling, input size and precision.
        sampling: which frames to take from each video.
        batch_size: frames per encoder call (frames of several videos are packed together).
        device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``
            for the encoder (read by :func:`s2vt.devices.resolve_device`).
        workers: decoding processes; None picks by CPU count (1 on a 2-core machine,
            measured: more workers only steal cores from the encoder).
        threads: torch (and OpenVINO) threads of the encoder during the run (restored
            after it); None: OpenVINO on the CPU gets the cores the decode workers leave
            (:func:`encoder_threads`), torch keeps its default (all cores).
        decode_timeout: seconds one video may take to decode before it is a failure.
        dtype: dtype of the stored features.
        shard: ``"I/N"`` to process only shard I (1-based) of N; see the module docstring.
        stream: ``rgb`` (the frames) or ``flow`` (flow images of frame pairs, computed in
            the decode workers and encoded by the same encoder; see :mod:`s2vt.flow`).
        flow: the flow method and its settings (``stream: flow`` only).
        decoder: the video decoder (:func:`s2vt.video.decoder_names`); ``auto`` is decord
            where installed with PyAV behind it. Recorded in the store's meta.
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
    stream: Literal["rgb", "flow"] = "rgb"
    flow: FlowConfig = field(default_factory=FlowConfig)
    decoder: str = DEFAULT_DECODER

    def __post_init__(self) -> None:
        if self.decoder not in decoder_names():
            raise ConfigError(f"unknown decoder {self.decoder!r}; known decoders: "
                              f"{', '.join(decoder_names())}")
        if self.stream not in STREAM_NAMES:
            raise ConfigError(f"unknown stream {self.stream!r}; known streams: "
                              f"{', '.join(STREAM_NAMES)}")
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
        partial: the ids of ``done`` extracted from only part of their video (frames
            sampled over those that decode; the store's per-video record says why).
    """

    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    out: Path | None = None
    partial: list[str] = field(default_factory=list)


def _spec_meta(config: ExtractConfig) -> dict[str, Any]:
    """The part of the store meta known before the encoder is built."""
    return {
        "format_version": FORMAT_VERSION,
        "encoder": dataclasses.asdict(config.encoder),
        "sampling": dataclasses.asdict(config.sampling),
        "dtype": config.dtype,
        "stream": stream_meta(config.stream, config.flow),
        "decoder": config.decoder,
    }


def _check_existing_store(out: Path, config: ExtractConfig) -> FeatureStore | None:
    """Open an existing store and check it was made with these settings (no encoder needed)."""
    if not FeatureStore.exists(out):
        return None
    store = FeatureStore.open(out)
    wanted = _spec_meta(config)
    existing = {key: store.meta.get(key) for key in wanted}
    key = meta_difference(existing, wanted)
    if (key or "").startswith("stream.") and \
            (existing.get("stream") or {}).get("name") != wanted["stream"]["name"]:
        key = "stream.name"  # rgb vs flow says more than the first differing flow setting
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

    def __init__(self, decoded: Decoded) -> None:
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
        done (and which of them are partial) / skipped / failed of this call.

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
    decoder_chain(config.decoder)  # a decoder that cannot run here: one line, not N failures
    stream_fn, stream_options = decode_call(_spec_meta(config)["stream"], config.device)
    if stream_fn is not None and decode_fn == DEFAULT_DECODE_FN:
        decode_fn = stream_fn  # flow: the workers return flow images in place of frames
    pool = DecodePool(workers, config.sampling, config.decode_timeout, decode_fn=decode_fn,
                      decode_options={**stream_options, "decoder": config.decoder})
    try:
        if todo:
            pool.start()  # workers import decord while the encoder loads
        encoder = _build_encoder(config)
        meta = dict(_spec_meta(config), feature_dim=int(encoder.feature_dim),
                    image_size=int(encoder.image_size), encoder_runtime=encoder.runtime_meta())
        store = FeatureStore.create(out, meta, shard=shard)
        from s2vt.config import save_config

        save_config(config, out / CONFIG_FILE)
        bar = _progress_bar(len(pending), progress)
        threads, ahead_threads = config.threads, None
        if threads is None:
            threads = encoder_threads(encoder.runtime, encoder.device.type, workers)
            ahead_threads = threads_while_decoding_waits(threads)
        try:
            for video in missing:
                reason = (f"video file not found: {video.path}" if video.path is not None
                          else "video file not found (no clip on disk for this annotation)")
                _fail(store, result, video, reason, bar)
            if todo:
                with torch_threads(threads):
                    _run(pool, todo, store, encoder, config, result, bar,
                         ahead_threads=ahead_threads)
        finally:
            bar.close()
    finally:
        pool.close()
    return result


def encoder_threads(runtime: str, device_type: str, workers: int) -> int | None:
    """The encoder's threads beside ``workers`` decode processes, when not configured
    (``None``: torch's default, every core).

    OpenVINO on the CPU gets the cores the decode workers leave, at least one: its
    single-threaded streams keep up with a decode worker per core, and a stream more than
    the free cores only takes CPU from the decoding it waits for. Measured on 2 cores,
    extract of the bench's clips (224 px, one decode worker, alternating rounds, medians
    of 3): one stream 206 frames/s, two 175. Torch eager needs every core (105 vs 116).
    While decoded clips pile up the encoder gets every core per batch
    (:func:`threads_while_decoding_waits`).

    Args:
        runtime / device_type: what the built encoder runs on (``encoder.runtime``,
            ``encoder.device.type``).
        workers: decode processes beside it.
    """
    if runtime != "openvino" or device_type != "cpu":
        return None
    return max(1, (os.cpu_count() or 1) - workers)


def threads_while_decoding_waits(threads: int | None) -> int | None:
    """The encoder's threads for a batch while decoded clips pile up (every core), when
    that is more than its ``threads`` (:func:`encoder_threads`); None: no change.

    Why: the decode workers' cores are the encoder's spare ones only while the workers
    wait for it. Where the encoder is the slower side (OpenVINO bf16 on one thread of a
    2-core AMD EPYC Zen 4: 476 img/s at 128 px against decoding's 1,026 frames/s), one
    stream left the second core half idle; where decoding is the slower side the clips
    never pile up and the encoder keeps its one thread, so it never takes a core the
    decoder needs. The features are the same either way: OpenVINO's streams are
    single-threaded, so a frame runs the same kernels on one stream or two.
    """
    cores = os.cpu_count() or 1
    return cores if threads is not None and cores > threads else None


def _build_encoder(config: ExtractConfig) -> Any:
    from s2vt.encoders import build_encoder

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


class _StoreWriter:
    """Runs the store's writes (finished videos, failures) in order on one background thread.

    Why: every write is fsynced, and on the main thread the encoder stood idle during each
    one (0.56 s of a 4.19 s extract loop on the demo's clips). While the loop runs, every
    change to the store, the result and the progress bar goes through this one thread.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="s2vt-store")
        self._pending: deque[Future] = deque()

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Queue ``fn(*args)``; an unexpected error of an earlier write is raised here."""
        while self._pending and self._pending[0].done():
            self._pending.popleft().result()
        self._pending.append(self._executor.submit(fn, *args))

    def close(self, *, raise_errors: bool = True) -> None:
        """Wait for every queued write (finished work is never dropped), then raise the
        first unexpected error unless ``raise_errors`` is False."""
        self._executor.shutdown(wait=True)
        errors = [f.exception() for f in self._pending if f.exception() is not None]
        self._pending.clear()
        if errors and raise_errors:
            raise errors[0]


def _run(pool: DecodePool, todo: list[VideoInput], store: FeatureStore, encoder: Any,
         config: ExtractConfig, result: ExtractResult, bar: Any, *,
         ahead_threads: int | None = None) -> None:
    """Pack decoded frames into fixed-size encoder batches; finished videos are written by
    a :class:`_StoreWriter` while the encoder goes on. A batch encoded while a batch more
    of decoded clips waits runs on ``ahead_threads`` (None: the current threads)."""
    writer = _StoreWriter()
    try:
        _encode_all(pool, todo, store, encoder, config, result, bar, writer, ahead_threads)
    except BaseException:
        writer.close(raise_errors=False)
        raise
    started = time.perf_counter()
    writer.close()
    logger.debug("extract: %.2f s waiting for the last writes", time.perf_counter() - started)


def _encode_all(pool: DecodePool, todo: list[VideoInput], store: FeatureStore, encoder: Any,
                config: ExtractConfig, result: ExtractResult, bar: Any,
                writer: _StoreWriter, ahead_threads: int | None) -> None:
    """The loop of :func:`_run`: decoded clips -> encoder batches -> writes queued."""
    batch_size = config.batch_size
    frames_per_clip = config.sampling.num_frames if config.sampling.mode == "uniform" else 16
    # Enough decoded clips queued to fill two batches, and at least one per worker.
    max_ready = max(2 * pool.workers, 2 * math.ceil(batch_size / frames_per_clip))
    ahead = max_ready // 2  # decoded clips waiting beyond the batch being packed
    buffer: deque[tuple[_Progress, int]] = deque()  # (video, next frame to encode)
    buffered = 0
    timings = {"encode": 0.0, "write": 0.0, "batches": 0, "ahead": 0}
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
        boost = ahead_threads if ahead_threads and pool.backlog >= ahead else None
        with torch_threads(boost):
            features = encoder.encode(frames)
        timings["batches"] += 1
        timings["ahead"] += boost is not None
        features = features.float().cpu().numpy()[:take_total]
        timings["encode"] += time.perf_counter() - started
        offset = 0
        for item, take in owners:
            item.parts.append(features[offset : offset + take])
            offset += take
            item.remaining -= take
            if item.remaining == 0:
                item.decoded.frames = None  # free the frames now, not when the batch ends
                writer.submit(finish, item)

    def finish(item: _Progress) -> None:
        decoded = item.decoded
        video = decoded.video
        started = time.perf_counter()
        try:
            store.write(video.video_id, np.concatenate(item.parts), decoded.indices,
                        decoded.timestamps, source=str(video.path), fps=decoded.fps,
                        decoding=decoded.decoding)
            if (decoded.decoding or {}).get("warning"):
                # Extracted, but not the clean way: say so (partial video, decoder fallback).
                logger.warning("%s: %s", video.video_id, decoded.decoding["warning"])
        except S2VTError as error:
            _fail(store, result, video, str(error), bar)
            return
        finally:
            timings["write"] += time.perf_counter() - started
        result.done.append(video.video_id)
        if (decoded.decoding or {}).get("partial"):
            result.partial.append(video.video_id)
        bar.update(1)

    for decoded in pool.imap(todo, int(encoder.image_size), max_ready):
        if decoded.error is not None:
            writer.submit(_fail, store, result, decoded.video, decoded.error, bar)
            continue
        if decoded.frames is None or len(decoded.frames) == 0:
            writer.submit(_fail, store, result, decoded.video, "no frames decoded", bar)
            continue
        buffer.append((_Progress(decoded), 0))
        buffered += len(decoded.frames)
        while buffered >= batch_size:
            encode_batch(pad=False)
    while buffered > 0:
        encode_batch(pad=True)
    total = time.perf_counter() - run_started
    # Where the time went: encode close to total means decoding was hidden behind it
    # (the writes run on the store thread, beside both).
    logger.debug("extract loop %.2f s: encode %.2f s (%d of %d batches on %s threads while "
                 "decoded clips waited), waiting for decode %.2f s; writes %.2f s on the "
                 "store thread", total, timings["encode"], timings["ahead"],
                 timings["batches"], ahead_threads, total - timings["encode"],
                 timings["write"])
