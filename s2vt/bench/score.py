"""``score`` stage: :func:`s2vt.metrics.score` on a test-sized set of predictions, with the
Java METEOR when Java is there and without it, in alternating rounds."""

from __future__ import annotations

from typing import Any

from s2vt.bench.config import BenchConfig
from s2vt.bench.timing import alternate, figure, wall
from s2vt.bench.words import WORDS, random_captions


def bench_score(config: BenchConfig) -> dict[str, Any]:
    """:func:`s2vt.metrics.score` (Java METEOR when Java is there) and the no-Java mode,
    ``config.repeats`` times each."""
    import numpy as np

    from s2vt.metrics import java_available, score

    rng = np.random.default_rng(2)
    words = list(WORDS)
    references = {f"v{i}": random_captions(rng, words, config.score_refs)
                  for i in range(config.score_videos)}
    predictions = {key: refs[0] for key, refs in references.items()}
    java = java_available()
    seconds = alternate({
        "full": wall(lambda: score(predictions, references, java=java)),
        "no_java": wall(lambda: score(predictions, references, java=False)),
    }, config.repeats)
    return {"videos": config.score_videos, "references": config.score_refs,
            "java": java, "seconds": figure(seconds["full"], "s"),
            "no_java_seconds": figure(seconds["no_java"], "s")}
