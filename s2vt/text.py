"""Tokenizer and vocabulary.

The original S2VT sentences were lowercased with all punctuation removed; :func:`tokenize`
does the same so that our references and predictions match that convention.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from s2vt.errors import S2VTError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIALS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3

# Apostrophes are dropped inside words ("man's" -> "mans") rather than split, which is what
# the S2VT preprocessing did; every other non-alphanumeric character separates words.
_APOSTROPHES = re.compile(r"['\u2019`]")
_NON_WORD = re.compile(r"[^\w]+|_+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lowercase ``text``, strip punctuation and split into words.

    Args:
        text: a caption, e.g. ``"A man's playing a guitar."``.
    Returns:
        ``["a", "mans", "playing", "a", "guitar"]``.
    """
    text = _APOSTROPHES.sub("", text.lower())
    return [word for word in _NON_WORD.split(text) if word]


class Vocabulary:
    """Word <-> id mapping with fixed specials ``<pad>=0 <bos>=1 <eos>=2 <unk>=3``."""

    def __init__(self, words: Sequence[str] = (), min_count: int = 1) -> None:
        """Args:
        words: the non-special words, in id order (ids start at 4).
        min_count: the minimum count used when the vocabulary was built (kept for the record).
        """
        self.itos: list[str] = list(SPECIALS)
        self.min_count = min_count
        for word in words:
            if word in SPECIALS:
                raise S2VTError(f"vocabulary word {word!r} clashes with a special token")
            self.itos.append(word)
        self.stoi: dict[str, int] = {word: i for i, word in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise S2VTError("vocabulary has duplicate words")

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Build from raw captions; words seen fewer than ``min_count`` times map to ``<unk>``.

        Words are ordered by descending count, then alphabetically, so the result does not
        depend on caption order.
        """
        if min_count < 1:
            raise S2VTError(f"min word count must be >= 1, got {min_count}")
        counts = Counter(word for caption in captions for word in tokenize(caption))
        kept = [w for w, c in counts.items() if c >= min_count]
        kept.sort(key=lambda w: (-counts[w], w))
        return cls(kept, min_count=min_count)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: object) -> bool:
        return word in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.itos == other.itos

    def encode(self, text: str, *, add_bos: bool = False, add_eos: bool = False,
               max_len: int | None = None) -> list[int]:
        """Tokenize and map to ids (unknown words -> ``<unk>``).

        Args:
            text: a caption.
            add_bos / add_eos: wrap the ids in ``<bos>`` / ``<eos>``.
            max_len: keep at most this many words (before bos/eos are added).
        """
        ids = [self.stoi.get(word, UNK_ID) for word in tokenize(text)]
        if max_len is not None:
            ids = ids[:max_len]
        if add_bos:
            ids = [BOS_ID, *ids]
        if add_eos:
            ids = [*ids, EOS_ID]
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> sentence; stops at ``<eos>``, skips ``<pad>``/``<bos>``, keeps ``<unk>``."""
        words = []
        for i in ids:
            i = int(i)
            if i == EOS_ID:
                break
            if i in (PAD_ID, BOS_ID):
                continue
            if not 0 <= i < len(self.itos):
                raise S2VTError(f"token id {i} is outside the vocabulary (size {len(self)})")
            words.append(self.itos[i])
        return " ".join(words)

    def to_dict(self) -> dict:
        """JSON-safe form: ``{"format_version", "min_count", "itos"}``."""
        return {"format_version": 1, "min_count": self.min_count, "itos": list(self.itos)}

    @classmethod
    def from_dict(cls, data: object, *, source: str = "vocabulary") -> Vocabulary:
        """Inverse of :meth:`to_dict`; a malformed mapping is an ``S2VTError`` naming ``source``."""
        if not isinstance(data, dict) or not isinstance(data.get("itos"), list):
            raise S2VTError(f"{source}: expected a JSON object with an 'itos' word list")
        itos = data["itos"]
        if not all(isinstance(w, str) for w in itos) or tuple(itos[: len(SPECIALS)]) != SPECIALS:
            raise S2VTError(f"{source}: 'itos' must be strings starting with {list(SPECIALS)}")
        min_count = data.get("min_count", 1)
        if not isinstance(min_count, int):
            raise S2VTError(f"{source}: 'min_count' must be an integer")
        return cls(itos[len(SPECIALS):], min_count=min_count)

    def save(self, path: Path) -> None:
        """Write ``vocab.json`` atomically."""
        from s2vt.fileio import atomic_write_json

        atomic_write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read a vocabulary JSON; a missing or malformed file is an ``S2VTError``."""
        path = Path(path)
        if not path.is_file():
            raise S2VTError(f"vocabulary file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise S2VTError(f"vocabulary file {path} is not valid JSON: {error}") from None
        return cls.from_dict(data, source=str(path))
