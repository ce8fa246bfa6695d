"""What the benchmark measures and how big: :class:`BenchConfig`."""

from __future__ import annotations

from dataclasses import dataclass


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
