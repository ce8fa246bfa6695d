"""Vocabulary and random captions for the stages that need text but no real data."""

from __future__ import annotations

from typing import Any

WORDS: tuple[str, ...] = (
    "a", "man", "woman", "dog", "cat", "car", "ball", "red", "blue", "green", "person", "is",
    "playing", "riding", "running", "cooking", "slicing", "talking", "singing", "on", "the",
    "with", "in", "of", "an", "and", "to", "at", "guitar", "horse", "bike", "kitchen", "road",
    "field", "water", "tomato", "onion", "piano", "phone", "camera",
)


def vocabulary_words(count: int) -> list[str]:
    """``count`` distinct words: :data:`WORDS`, then ``w0``, ``w1``, ... as needed."""
    words = list(WORDS)
    words += [f"w{i}" for i in range(max(0, count - len(words)))]
    return words[:count]


def random_captions(rng: Any, words: list[str], count: int) -> list[str]:
    """``count`` captions of 6-11 words drawn from ``words`` with the numpy ``rng``."""
    return [" ".join(rng.choice(words, size=int(rng.integers(6, 12)))) for _ in range(count)]
