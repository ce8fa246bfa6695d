"""Speed benchmark of every stage, in one run on the same inputs (``s2vt bench``, issue 6).

:func:`run_benchmark` writes its own clips (H.264, 320x240 by default) into a temporary
folder and measures, in this order:

- ``decode``: :func:`s2vt.video.read_clip` on every clip, one process, one FFmpeg thread
  (sampled frames per second);
- ``encoder``: the frame encoder alone on those pre-decoded frames, in the same batches
  ``extract`` packs (images per second at the configured batch size and precision);
- ``extract``: :func:`s2vt.extraction.extract` end to end, start-up included (decode
  workers, encoder build, writing the store);
- ``naive``: the way reimplementations do it, in a separate process: PyAV decodes every
  frame in order, PIL resizes each one, and the same network (as loaded: BatchNorm not
  folded) runs one frame at a time in fp32;
- ``train``: :func:`s2vt.training.train` on random features with the paper's sizes
  (4096-d, 80 frames, hidden 1000, embed 500), caption pairs per second of the epoch loop;
- ``caption``: :meth:`s2vt.captioner.Captioner.caption_features` with beam search, a
  whole batch at once versus one video per call, for the paper-sized S2VT (``caption``)
  and for the demo-sized one (``caption_demo_size``);
- ``caption_cli``: ``s2vt caption one_clip --model DIR`` from process start to the printed
  caption (a fresh interpreter, default encoder);
- ``score``: :func:`s2vt.metrics.score` on a test-sized set;
- ``memory`` (only when asked for): peak RSS of ``s2vt extract`` sampling 32 frames from a
  long clip (10 minutes by default) and from a short one, measured from outside;
- ``precision`` (only when asked for): a demo-sized S2VT trained on the synthetic benchmark
  in fp32 and with bf16 autocast, two seeds each, side by side; best validation scores.

``ratios`` compares them against the issue's targets. Timings are wall-clock seconds; on a
shared machine compare ratios from one run (``load_before`` / ``load_after`` say how busy
the machine was).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# The targets (ratio name -> minimum).
TARGETS: dict[str, float] = {
    "extract_vs_encoder": 0.8,
    "extract_vs_naive": 10.0,
    "batched_vs_single_caption": 5.0,
    "batched_vs_single_caption_demo_size": 5.0,
}
_WORDS: tuple[str, ...] = (
    "a", "man", "woman", "dog", "cat", "car", "ball", "red", "blue", "green", "person", "is",
    "playing", "riding", "running", "cooking", "slicing", "talking", "singing", "on", "the",
    "with", "in", "of", "an", "and", "to", "at", "guitar", "horse", "bike", "kitchen", "road",
    "field", "water", "tomato", "onion", "piano", "phone", "camera",
)


@dataclass
class BenchConfig:
    """What to measure and how big.

    Attributes:
        clips: number of generated clips (every stage but train/caption/score uses them).
        width / height / seconds / fps: the clips' size, length and rate (H.264); 10 s at
            30 fps is as long as MSR-VTT's shortest clips (they run 10-30 s).
        num_frames: frames sampled per clip (uniform sampling, as ``extract``'s default).
        batch_size: encoder batch of ``extract`` and of the encoder-alone measure.
        precision: encoder precision (``auto``: bf16 on AMX CPUs, else fp32).
        workers / threads: ``extract`` decode processes and torch threads (None: defaults).
        train_steps: training steps measured (batch ``train_batch``).
        train_batch: caption pairs per training step.
        vocab_size: words in the vocabulary of the train measure.
        caption_videos: videos captioned in one batch; ``single_videos`` of them one by one.
        beam_size: beam width for captioning.
        score_videos: predictions scored (each with ``score_refs`` references).
        cli: also time ``s2vt caption`` in a fresh process.
        long_minutes: length of the clip of the ``memory`` stage (not run by default).
        precision_videos / precision_epochs: synthetic clips and epochs of the
            ``precision`` stage (not run by default).
    """

    clips: int = 24
    width: int = 320
    height: int = 240
    seconds: float = 10.0
    fps: int = 30
    num_frames: int = 16
    batch_size: int = 64
    precision: str = "auto"
    workers: int | None = None
    threads: int | None = None
    train_steps: int = 3
    train_batch: int = 64
    vocab_size: int = 3000
    caption_videos: int = 64
    single_videos: int = 8
    beam_size: int = 5
    score_videos: int = 670
    score_refs: int = 20
    cli: bool = True
    long_minutes: float = 10.0
    precision_videos: int = 600
    precision_epochs: int = 6

    @classmethod
    def quick(cls) -> BenchConfig:
        """A short run (about a minute on 2 cores): fewer clips, steps and videos."""
        return cls(clips=8, seconds=3.0, fps=25, train_steps=1, train_batch=32,
                   caption_videos=64, single_videos=4,
                   score_videos=100, precision_videos=60, precision_epochs=2)


# ---------------------------------------------------------------------------- helpers
def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _rate(count: float, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else float("inf")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, flags that matter (AMX/AVX512-BF16), library versions."""
    import torch

    model, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "amx_bf16": "amx_bf16" in flags,
        "avx512_bf16": "avx512_bf16" in flags,
        "avx512f": "avx512f" in flags,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def scene_frames(index: int, count: int, width: int, height: int) -> Any:
    """(T, H, W, 3) uint8 frames: a moving coloured box over a textured gradient."""
    import numpy as np

    rng = np.random.default_rng(index)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([(xs * 255 // max(1, width - 1)), (ys * 255 // max(1, height - 1)),
                     np.full_like(xs, 40 * (index % 6))], axis=-1).astype(np.int16)
    base += rng.integers(-12, 12, size=base.shape, dtype=np.int16)  # texture to encode
    colour = rng.integers(0, 256, size=3)
    side = height // 3
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for t in range(count):
        frame = base.copy()
        x = int((width - side) * t / max(1, count - 1))
        y = int((height - side) * (0.5 + 0.4 * np.sin(t / 7.0 + index)) / 1.0) // 2
        frame[y : y + side, x : x + side] = colour
        frames[t] = np.clip(frame, 0, 255)
    return frames


def write_clips(folder: Path, config: BenchConfig) -> list[Path]:
    """Encode ``config.clips`` H.264 clips into ``folder`` (PyAV, imported before decord)."""
    import av

    folder.mkdir(parents=True, exist_ok=True)
    count = max(1, round(config.seconds * config.fps))
    paths = []
    for index in range(config.clips):
        path = folder / f"clip{index:03d}.mp4"
        with av.open(str(path), mode="w") as container:
            stream = container.add_stream("libx264", rate=config.fps)
            stream.width, stream.height, stream.pix_fmt = config.width, config.height, "yuv420p"
            stream.options = {"preset": "veryfast", "crf": "23"}
            for image in scene_frames(index, count, config.width, config.height):
                for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        paths.append(path)
    return paths


def _pack(frames: list[Any], batch_size: int) -> list[Any]:
    """Concatenate clips and cut into ``batch_size`` batches, the last zero-padded."""
    import numpy as np

    stacked = np.concatenate(frames)
    batches = []
    for start in range(0, len(stacked), batch_size):
        batch = stacked[start : start + batch_size]
        if len(batch) < batch_size:
            pad = np.zeros((batch_size - len(batch), *batch.shape[1:]), batch.dtype)
            batch = np.concatenate([batch, pad])
        batches.append(batch)
    return batches


# ---------------------------------------------------------------------------- stages
def bench_decode(paths: list[Path], sampling: Any, size: int) -> tuple[dict[str, Any], list]:
    """Decode the sampled frames of every clip in this process (one FFmpeg thread)."""
    from s2vt.video import read_clip

    read_clip(paths[0], sampling, size, num_threads=1)  # warm up: library load, page cache
    started = time.perf_counter()
    clips = [read_clip(path, sampling, size, num_threads=1).frames for path in paths]
    seconds = time.perf_counter() - started
    frames = sum(len(c) for c in clips)
    return {"seconds": round(seconds, 3), "frames": frames,
            "frames_per_s": _rate(frames, seconds), "videos_per_s": _rate(len(paths), seconds),
            "threads": 1}, clips


def bench_encoder(encoder: Any, clips: list, batch_size: int) -> dict[str, Any]:
    """The encoder alone on pre-decoded frames, in ``extract``'s packed batches."""
    batches = _pack(clips, batch_size)
    frames = sum(len(c) for c in clips)
    encoder.encode(batches[0])  # warm up (oneDNN primitive creation)
    started = time.perf_counter()
    for batch in batches:
        encoder.encode(batch)
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "frames": frames,
            "images_per_s": _rate(frames, seconds),
            "padded_images_per_s": _rate(len(batches) * batch_size, seconds),
            "batch_size": batch_size, "precision": encoder.precision}


def bench_extract(paths: list[Path], out: Path, config: BenchConfig, sampling: Any,
                  spec: Any) -> dict[str, Any]:
    """``s2vt.extraction.extract`` end to end, start-up and writes included."""
    from s2vt.extraction import ExtractConfig, VideoInput, default_workers, extract

    extract_config = ExtractConfig(encoder=spec, sampling=sampling,
                                   batch_size=config.batch_size, workers=config.workers,
                                   threads=config.threads)
    inputs = [VideoInput(path.stem, path) for path in paths]
    seconds, result = _timed(lambda: extract(inputs, out, extract_config, progress=False))
    if result.failed:
        raise RuntimeError(f"extract failed on {result.failed[0]}")
    frames = len(paths) * sampling.num_frames
    return {"seconds": round(seconds, 3), "frames": frames,
            "frames_per_s": _rate(frames, seconds), "videos_per_s": _rate(len(paths), seconds),
            "workers": config.workers or default_workers(), "batch_size": config.batch_size}


def naive_features(path: Path, encoder: Any, sampling: Any, net: Any) -> Any:
    """The usual reimplementation: every frame decoded in order and converted to an RGB PIL
    image, each resized with PIL, the sampled ones normalised with ``encoder``'s mean and
    std and run through ``net`` one at a time in fp32, a plain module call.

    Returns:
        (T, D) float32 features.
    """
    import av
    import numpy as np
    import torch
    from PIL import Image

    from s2vt.video import sample_indices

    size = encoder.image_size
    images = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        for frame in container.decode(stream):
            image = frame.to_image()
            scale = size / min(image.size)
            image = image.resize((max(size, round(image.width * scale)),
                                  max(size, round(image.height * scale))), Image.BILINEAR)
            left, top = (image.width - size) // 2, (image.height - size) // 2
            images.append(image.crop((left, top, left + size, top + size)))
    wanted = sample_indices(len(images), fps, sampling)
    rows = []
    with torch.inference_mode():
        for i in wanted:
            pixels = torch.from_numpy(np.array(images[i])).permute(2, 0, 1).float() / 255.0
            rows.append(net((pixels.unsqueeze(0) - encoder.mean) / encoder.std))
    return torch.cat(rows).float().numpy()


def bench_naive(paths: list[Path], spec: Any, sampling: Any,
                threads: int | None) -> dict[str, Any]:
    """:func:`naive_features` on every clip, as a separate naive script runs it.

    A fresh interpreter (so without :func:`s2vt.runtime.keep_freed_memory`), the encoder's
    network as loaded (BatchNorm not folded into the convs, NCHW), fp32, one frame per call.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    fp32 = dataclasses.replace(spec, precision="fp32")
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        seconds = pool.submit(_naive_run, paths, fp32, sampling, threads).result()
    frames = len(paths) * sampling.num_frames
    return {"seconds": round(seconds, 3), "frames": frames,
            "frames_per_s": _rate(frames, seconds), "videos_per_s": _rate(len(paths), seconds),
            "precision": "fp32", "batch_size": 1, "batchnorm_folded": False,
            "process": "separate"}


def _naive_run(paths: list[Path], spec: Any, sampling: Any, threads: int | None) -> float:
    """:func:`bench_naive`'s measure, in its spawned process: seconds for every clip."""
    import torch

    from s2vt.encoders import build_encoder
    from s2vt.encoders.efficientnet import frame_network

    if threads is not None:
        torch.set_num_threads(threads)
    encoder = build_encoder(spec)  # for its image size and normalisation
    net = frame_network(spec, fold_batchnorm=False)
    naive_features(paths[0], encoder, sampling, net)  # warm up
    seconds, _ = _timed(lambda: [naive_features(p, encoder, sampling, net) for p in paths])
    return seconds


def _vocabulary_words(count: int) -> list[str]:
    words = list(_WORDS)
    words += [f"w{i}" for i in range(max(0, count - len(words)))]
    return words[:count]


def _random_captions(rng: Any, words: list[str], count: int) -> list[str]:
    return [" ".join(rng.choice(words, size=int(rng.integers(6, 12)))) for _ in range(count)]


def bench_train(folder: Path, config: BenchConfig) -> dict[str, Any]:
    """Paper-sized S2VT trained by :func:`s2vt.training.train` on random features."""
    import numpy as np

    from s2vt.features import FeatureStore
    from s2vt.fileio import atomic_write_json
    from s2vt.models.config import ModelConfig
    from s2vt.training import TrainConfig, train

    rng = np.random.default_rng(0)
    frames, dim, refs = 80, 4096, 4
    pairs = config.train_steps * config.train_batch
    videos = max(1, -(-pairs // refs))
    store = FeatureStore.create(folder / "features", {"feature_dim": dim})
    words = _vocabulary_words(config.vocab_size)
    sentences = []
    for i in range(videos):
        video_id = f"v{i}"
        store.write(video_id, rng.standard_normal((frames, dim), dtype=np.float32),
                    np.arange(frames), np.arange(frames) / 25.0)
        # Every word at least once, so the vocabulary really has vocab_size entries.
        captions = _random_captions(rng, words, refs)
        sentences += [{"video_id": video_id, "caption": c} for c in captions]
    sentences[0]["caption"] = " ".join(words)
    annotations = folder / "annotations.json"
    atomic_write_json(annotations, {
        "videos": [{"video_id": f"v{i}", "split": "train"} for i in range(videos)],
        "sentences": sentences[:pairs],
    })
    model = ModelConfig(name="s2vt", feature_dim=0, embed_size=500, hidden_size=1000,
                        max_frames=frames)
    train_config = TrainConfig(model=model, epochs=1, batch_size=config.train_batch,
                               save_every_steps=0, patience=0)
    result = train(train_config, folder / "features", annotations, folder / "model",
                   progress=False)
    seconds = float(result.history[-1]["seconds"])
    return {"seconds": round(seconds, 3), "steps": result.steps, "pairs": pairs,
            "captions_per_s": _rate(pairs, seconds), "batch_size": config.train_batch,
            "frames": frames, "feature_dim": dim, "hidden": 1000, "embed": 500,
            "vocab": config.vocab_size, "precision": train_config.precision}


# (frames, feature dim, embed, hidden, vocabulary) of the models the caption stage times.
PAPER_SIZES = (80, 4096, 500, 1000, 3000)
DEMO_SIZES = (8, 5120, 128, 256, 120)


def _caption_model_dir(folder: Path, feature_dim: int, vocab_size: int, frames: int,
                       encoder_spec: dict, sampling: dict, embed: int = 500,
                       hidden: int = 1000) -> Path:
    """A model dir with random S2VT weights (paper sizes by default) for the caption
    measures."""
    import torch

    from s2vt.checkpoint import save_model_dir
    from s2vt.models import build_model
    from s2vt.models.config import ModelConfig
    from s2vt.text import Vocabulary

    vocab = Vocabulary(_vocabulary_words(vocab_size - 4))
    model_config = ModelConfig(name="s2vt", feature_dim=feature_dim, vocab_size=len(vocab),
                               embed_size=embed, hidden_size=hidden, max_frames=frames)
    torch.manual_seed(0)
    save_model_dir(folder, build_model(model_config), model_config, vocab, encoder_spec,
                   sampling, features={"feature_dim": feature_dim, "image_size": 224,
                                       "dtype": "float16"})
    return folder


def bench_caption(folder: Path, config: BenchConfig,
                  sizes: tuple[int, int, int, int, int] = PAPER_SIZES) -> dict[str, Any]:
    """Beam search through the Captioner: one batch of videos vs one video per call.

    ``sizes`` = (frames, feature dim, embed, hidden, vocabulary): the paper's S2VT by
    default, :data:`DEMO_SIZES` for the model ``s2vt demo`` trains.
    """
    import numpy as np

    from s2vt.captioner import Captioner

    frames, dim, embed, hidden, vocab_size = sizes
    model_dir = _caption_model_dir(folder, dim, vocab_size, frames, {}, {}, embed, hidden)
    captioner = Captioner.from_pretrained(model_dir, beam_size=config.beam_size,
                                          batch_size=config.caption_videos)
    rng = np.random.default_rng(1)
    features = [rng.standard_normal((frames, dim), dtype=np.float32).astype(np.float16)
                for _ in range(config.caption_videos)]
    captioner.caption_features(features[:2])  # warm up
    batched, _ = _timed(lambda: captioner.caption_features(features))
    single_count = min(config.single_videos, len(features))
    single, _ = _timed(lambda: [captioner.caption_features([f]) for f in features[:single_count]])
    batched_rate = len(features) / batched
    single_rate = single_count / single
    return {"videos": len(features), "beam_size": config.beam_size, "frames": frames,
            "feature_dim": dim, "hidden": hidden, "embed": embed, "vocab": vocab_size,
            "batched_seconds": round(batched, 3), "batched_videos_per_s": round(batched_rate, 2),
            "single_videos": single_count, "single_seconds": round(single, 3),
            "single_videos_per_s": round(single_rate, 2)}


def bench_caption_cli(folder: Path, clip: Path) -> dict[str, Any]:
    """``s2vt caption CLIP --model DIR`` in a fresh interpreter, default encoder."""
    from s2vt.encoders import EncoderSpec
    from s2vt.video import SamplingConfig

    model_dir = _caption_model_dir(folder, 1280, 1000, 80,
                                   dataclasses.asdict(EncoderSpec()),
                                   dataclasses.asdict(SamplingConfig()))
    command = [sys.executable, "-m", "s2vt", "caption", str(clip), "--model", str(model_dir)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"s2vt caption failed: {done.stderr.strip()[-500:]}")
    return {"seconds": round(seconds, 3), "command": "s2vt caption CLIP --model DIR",
            "encoder": "efficientnet_lite0"}


def bench_score(config: BenchConfig) -> dict[str, Any]:
    """:func:`s2vt.metrics.score` (Java METEOR when Java is there) and the no-Java mode."""
    import numpy as np

    from s2vt.metrics import java_available, score

    rng = np.random.default_rng(2)
    words = list(_WORDS)
    references = {f"v{i}": _random_captions(rng, words, config.score_refs)
                  for i in range(config.score_videos)}
    predictions = {key: refs[0] for key, refs in references.items()}
    java = java_available()
    full, _ = _timed(lambda: score(predictions, references, java=java))
    fast, _ = _timed(lambda: score(predictions, references, java=False))
    return {"videos": config.score_videos, "references": config.score_refs,
            "java": java, "seconds": round(full, 3), "no_java_seconds": round(fast, 3)}


def write_long_clip(path: Path, minutes: float, width: int = 160, height: int = 120,
                    fps: int = 10) -> Path:
    """A long H.264 clip (``minutes`` long, small and fast to write) for the memory check."""
    import av

    count = max(1, round(minutes * 60 * fps))
    scene = scene_frames(0, 250, width, height)  # one moving-box cycle, repeated
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(scene[index % len(scene)], format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


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


def bench_memory(folder: Path, minutes: float, num_frames: int = 32) -> dict[str, Any]:
    """Peak RSS of ``s2vt extract`` sampling ``num_frames`` from a long vs a short clip.

    Measured from outside (``/proc/<pid>/status`` VmHWM of the CLI process and of its
    decode worker). The long clip decoded whole at 224 px would need ``full_clip_mib``.
    """
    long_clip = write_long_clip(folder / "long.mp4", minutes)
    short_clip = write_long_clip(folder / "short.mp4", 3 / 60)
    result: dict[str, Any] = {"minutes": minutes, "num_frames": num_frames,
                              "size": "160x120", "fps": 10}
    for name, clip in (("long", long_clip), ("short", short_clip)):
        command = [sys.executable, "-m", "s2vt", "extract", str(clip), "--out",
                   str(folder / f"store_{name}"), "--num-frames", str(num_frames),
                   "--no-progress"]
        seconds, peaks = _timed(lambda command=command: _peak_rss_of_tree(command))
        result[name] = dict(peaks, seconds=round(seconds, 2))
    frames = round(minutes * 60 * 10)
    result["full_clip_mib"] = round(frames * 298 * 224 * 3 / 2**20, 1)
    return result


# ---------------------------------------------------------------------------- driver
PRECISION_RUNS: tuple[tuple[str, int], ...] = (("fp32", 0), ("fp32", 1), ("bf16", 0), ("bf16", 1))


def bench_precision(folder: Path, config: BenchConfig) -> dict[str, Any]:
    """bf16 autocast vs fp32 training on the synthetic benchmark, two seeds each.

    Synthesises ``precision_videos`` clips, extracts EfficientNet-Lite0 2x2-grid features
    (128 px, 8 frames, as the demo), and trains the demo's S2VT (hidden 256, embed 128) for
    ``precision_epochs`` epochs per run, two runs at a time on one core each. The verdict
    compares the gap between the precisions' mean best validation CIDEr with the spread
    between seeds of one precision (the noise).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from s2vt.config import load_config
    from s2vt.datasets import load_annotations
    from s2vt.extraction import ExtractConfig, VideoInput, extract
    from s2vt.runtime import prepare_worker
    from s2vt.synth import synthesize

    data, features = folder / "data", folder / "features"
    synthesize(data, config.precision_videos, seed=0)
    extract_config = load_config(ExtractConfig, None, [
        "encoder.name=efficientnet_lite0", "encoder.pool=grid2", "encoder.image_size=128",
        "sampling.mode=uniform", "sampling.num_frames=8"])
    videos = load_annotations(data / "annotations.json").videos
    extract([VideoInput(v.video_id, v.path) for v in videos], features, extract_config,
            progress=False)
    jobs = [(precision, seed, features, data / "annotations.json",
             folder / f"{precision}-seed{seed}", config.precision_epochs)
            for precision, seed in PRECISION_RUNS]
    threads = max(1, (os.cpu_count() or 1) // 2)
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                             initializer=prepare_worker, initargs=(threads,)) as pool:
        runs = list(pool.map(_train_precision_run, jobs))
    by_precision = {p: [r["val_CIDEr"] for r in runs if r["precision"] == p]
                    for p in ("fp32", "bf16")}
    means = {p: sum(v) / len(v) for p, v in by_precision.items()}
    noise = max(max(v) - min(v) for v in by_precision.values())
    gap = abs(means["bf16"] - means["fp32"])
    return {"videos": config.precision_videos, "epochs": config.precision_epochs,
            "runs": runs, "mean_val_CIDEr": {p: round(m, 4) for p, m in means.items()},
            "gap": round(gap, 4), "seed_spread": round(noise, 4),
            "same_within_noise": gap <= noise}


def _train_precision_run(job: tuple[str, int, Path, Path, Path, int]) -> dict[str, Any]:
    """One run of :func:`bench_precision` (in a spawned process)."""
    from s2vt.config import load_config
    from s2vt.training import TrainConfig, train

    precision, seed, features, annotations, out, epochs = job
    train_config = load_config(TrainConfig, None, [
        # configs/demo/s2vt.yaml's model and optimisation, fewer epochs.
        "model.name=s2vt", "model.embed_size=128", "model.hidden_size=256",
        "model.dropout=0.3", "optimizer.lr=0.001", "optimizer.schedule=cosine",
        "batch_size=32", "captions_per_video=2",
        f"epochs={epochs}", "patience=0", f"seed={seed}", f"precision={precision}",
        "device=cpu"])
    started = time.perf_counter()
    result = train(train_config, features, annotations, out, progress=False)
    best = next(row for row in result.history if row["epoch"] == result.best_epoch)
    return {"precision": precision, "seed": seed, "best_epoch": result.best_epoch,
            "val_CIDEr": round(best["val"]["CIDEr"], 4),
            "val_BLEU-4": round(best["val"]["BLEU-4"], 4),
            "seconds": round(time.perf_counter() - started, 1)}


def run_benchmark(config: BenchConfig, work: Path | None = None,
                  stages: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Run the benchmark and return a JSON-ready dict (see the module docstring).

    Must be called under ``if __name__ == "__main__":`` from a script (``extract`` spawns
    decode workers).

    Args:
        config: sizes and settings.
        work: scratch folder (a temporary one when None; deleted afterwards).
        stages: subset of ``extract`` (decode, encoder, extract, naive), ``train``,
            ``caption``, ``caption_cli``, ``score``, ``memory``, ``precision``; None = all
            but ``memory`` and ``precision``.

    Returns:
        ``{"machine", "config", "load_before", "load_after", <stage>: {...}, "ratios"}``.
    """
    if work is None:
        with tempfile.TemporaryDirectory(prefix="s2vt-bench-") as tmp:
            return run_benchmark(config, Path(tmp), stages)
    if not (Path(work) / ".s2vt-bench").exists():
        # A fresh folder per run: a reused feature store would make extract skip its work.
        work = Path(tempfile.mkdtemp(prefix="s2vt-bench-", dir=work))
        (work / ".s2vt-bench").touch()
    import av  # noqa: F401  (before decord, always)
    import torch

    from s2vt.encoders import EncoderSpec, build_encoder
    from s2vt.video import SamplingConfig

    chosen = set(stages or ("extract", "train", "caption", "caption_cli", "score"))
    report: dict[str, Any] = {"machine": machine_info(), "config": dataclasses.asdict(config),
                              "load_before": _load()}
    sampling = SamplingConfig(num_frames=config.num_frames)
    spec = EncoderSpec(precision=config.precision)
    paths: list[Path] = []
    if chosen & {"extract", "caption_cli"}:
        logger.info("writing %d clips", config.clips)
        paths = write_clips(work / "clips", config)
    if "extract" in chosen:
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        build_seconds, encoder = _timed(lambda: build_encoder(spec))
        logger.info("decode")
        report["decode"], clips = bench_decode(paths, sampling, encoder.image_size)
        logger.info("encoder alone")
        report["encoder"] = dict(bench_encoder(encoder, clips, config.batch_size),
                                 build_seconds=round(build_seconds, 3))
        del clips
        logger.info("extract")
        report["extract"] = bench_extract(paths, work / "store", config, sampling, spec)
        del encoder
        logger.info("naive")
        report["naive"] = bench_naive(paths, spec, sampling, config.threads)
    if "train" in chosen:
        logger.info("train")
        report["train"] = bench_train(work / "train", config)
    if "caption" in chosen:
        logger.info("caption")
        report["caption"] = bench_caption(work / "caption_model", config)
        report["caption_demo_size"] = bench_caption(work / "caption_demo_model", config,
                                                    DEMO_SIZES)
    if "caption_cli" in chosen and config.cli:
        logger.info("caption cli")
        report["caption_cli"] = bench_caption_cli(work / "cli_model", paths[0])
    if "score" in chosen:
        logger.info("score")
        report["score"] = bench_score(config)
    if "memory" in chosen:
        logger.info("memory: %g-minute clip", config.long_minutes)
        report["memory"] = bench_memory(work / "memory", config.long_minutes)
    if "precision" in chosen:
        logger.info("precision: fp32 vs bf16 training, %d clips", config.precision_videos)
        report["precision"] = bench_precision(work / "precision", config)
    report["load_after"] = _load()
    report["ratios"] = ratios(report)
    return report


def ratios(report: dict[str, Any]) -> dict[str, Any]:
    """The issue's ratios from one report, each with its target and whether it is met."""
    values: dict[str, float] = {}
    if "extract" in report and "encoder" in report:
        values["extract_vs_encoder"] = (report["extract"]["frames_per_s"]
                                        / report["encoder"]["images_per_s"])
    if "extract" in report and "naive" in report:
        values["extract_vs_naive"] = (report["extract"]["frames_per_s"]
                                      / report["naive"]["frames_per_s"])
    for key, name in (("caption", "batched_vs_single_caption"),
                      ("caption_demo_size", "batched_vs_single_caption_demo_size")):
        if key in report:
            values[name] = (report[key]["batched_videos_per_s"]
                            / report[key]["single_videos_per_s"])
    out: dict[str, Any] = {}
    for name, value in values.items():
        out[name] = {"value": round(value, 3), "target": TARGETS[name],
                     "met": value >= TARGETS[name]}
    if "precision" in report:
        gap, spread = report["precision"]["gap"], report["precision"]["seed_spread"]
        out["bf16_vs_fp32_val_CIDEr_gap"] = {"value": gap, "target": f"<= seed spread {spread}",
                                              "met": gap <= spread}
    if "caption_cli" in report:
        seconds = report["caption_cli"]["seconds"]
        out["caption_cli_seconds"] = {"value": seconds, "target": 5.0, "met": seconds <= 5.0}
    return out


def to_json(report: dict[str, Any]) -> str:
    """The report as indented JSON."""
    return json.dumps(report, indent=2, sort_keys=False)
