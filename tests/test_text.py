"""Tokenizer and vocabulary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2vt.errors import S2VTError
from s2vt.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID, Vocabulary, tokenize


def test_tokenize_lowercases_and_strips_punctuation() -> None:
    assert tokenize("A man's playing a Guitar.") == ["a", "mans", "playing", "a", "guitar"]
    assert tokenize("  red-circle, moves LEFT!!  ") == ["red", "circle", "moves", "left"]
    assert tokenize("Ünïcode café") == ["ünïcode", "café"]
    assert tokenize("...") == []


def test_vocabulary_specials_and_min_count() -> None:
    vocab = Vocabulary.build(["a red circle", "a blue circle", "a red square", "rare"], min_count=2)
    assert vocab.itos[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
    assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID) == (0, 1, 2, 3)
    # ordered by count then alphabetically; words seen once are <unk>
    assert vocab.itos[4:] == ["a", "circle", "red"]
    assert "square" not in vocab
    ids = vocab.encode("A red square.", add_bos=True, add_eos=True)
    assert ids == [BOS_ID, vocab.stoi["a"], vocab.stoi["red"], UNK_ID, EOS_ID]
    assert vocab.decode(ids) == "a red <unk>"
    assert vocab.decode([vocab.stoi["a"], EOS_ID, vocab.stoi["red"]]) == "a"
    assert vocab.encode("a red circle a", max_len=2) == [vocab.stoi["a"], vocab.stoi["red"]]


def test_vocabulary_build_is_order_independent() -> None:
    captions = ["a dog runs", "a cat sits", "the dog sits"]
    assert Vocabulary.build(captions) == Vocabulary.build(list(reversed(captions)))


def test_vocabulary_save_load_round_trip(tmp_path: Path) -> None:
    vocab = Vocabulary.build(["a red circle moves left", "a blue square"], min_count=1)
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded == vocab and loaded.stoi == vocab.stoi and loaded.min_count == 1


def test_vocabulary_load_errors(tmp_path: Path) -> None:
    with pytest.raises(S2VTError, match="vocabulary file not found"):
        Vocabulary.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(S2VTError, match="not valid JSON"):
        Vocabulary.load(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"itos": ["a", "b"]}))
    with pytest.raises(S2VTError, match="must be strings starting with"):
        Vocabulary.load(wrong)
    with pytest.raises(S2VTError, match="min word count"):
        Vocabulary.build(["a"], min_count=0)
