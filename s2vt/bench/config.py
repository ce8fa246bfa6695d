"""What the benchmark measures and how big: :class:`BenchConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from s2vt.bench.timing import MIN_REPEATS
from s2vt.errors import ConfigError


@dataclass
class BenchConfig:
    """What to measure and how big.

    Attributes:
        clips: number of generated clips (every stage but train/caption/score uses them).
        width / height / seconds / fps: the clips' size, length and rate (H.264); 10 s at
            30 fps is as long as MSR-VTT's shortest clips (they run 10-30 s).
        num_frames: frames sampled per clip (uniform sampling, as ``extract``'s default).
        batch_size: encoder batch of ``extract`` and of the encoder-alone measure.
        precision: encoder precision of the ``defaults`` extract (``auto``: bf16 on CPUs
            with fast bf16, else fp32); the other extract variants force theirs.
        repeats: timed repeats of every figure (the median is reported, with min and
            max; at least :data:`~s2vt.bench.timing.MIN_REPEATS`).
        workers / threads: ``extract`` decode processes and torch threads (None: defaults).
        naive_clips: how many of the clips the naive baseline extracts (it decodes every
            frame, so it is the slowest stage; its rate is per frame all the same).
        real_videos: folder holding the real clips (``clips/``, ``benchmark/``) the decoders
            are also timed on; None: ``../shared/real/videos`` beside the project, skipped
            with a reason when absent.
        real_clips: time only the first this many real clips (None: all of them).
        projection_clips / projection_long_seconds: clips of the projection's long length
            (30 s: MSR-VTT's longest) timed beside as many of the ``seconds``-long ones.
        train_steps: training steps per timed epoch (batch ``train_batch``).
        train_batch: caption pairs per training step.
        vocab_size: words in the vocabulary of the train measure.
        caption_videos: videos captioned in one batch; ``single_videos`` of them one by one.
        beam_size: beam width for captioning.
        score_videos: predictions scored (each with ``score_refs`` references).
        cli: also time ``s2vt caption`` in a fresh process.
        long_minutes: length of the clip of the ``memory`` stage (not run by default).
        precision_videos / precision_epochs: synthetic clips and epochs of the
            ``precision`` experiment (run only by ``--experiment precision``).
    """

    clips: int = 24
    width: int = 320
    height: int = 240
    seconds: float = 10.0
    fps: int = 30
    num_frames: int = 16
    batch_size: int = 64
    precision: str = "auto"
    repeats: int = 3
    naive_clips: int = 8
    real_videos: str | None = None
    real_clips: int | None = None
    projection_clips: int = 4
    projection_long_seconds: float = 30.0
    workers: int | None = None
    threads: int | None = None
    train_steps: int = 2
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

    def __post_init__(self) -> None:
        if self.repeats < MIN_REPEATS:
            raise ConfigError(f"repeats must be >= {MIN_REPEATS} (every figure is a median "
                              f"with min and max), got {self.repeats}")

    @classmethod
    def quick(cls) -> BenchConfig:
        """A smoke run (a few minutes on 2 cores): fewer and shorter clips, fewer steps
        and videos; still 3 repeats of every figure."""
        return cls(clips=8, seconds=3.0, fps=25, naive_clips=3, real_clips=4,
                   projection_clips=2,
                   projection_long_seconds=6.0, train_steps=1, train_batch=32,
                   caption_videos=64, single_videos=4, score_videos=100,
                   precision_videos=60, precision_epochs=2)
