"""Test helpers: a small working model dir, and a Hugging Face Hub cache laid out by hand.

The cache follows huggingface_hub's documented layout (``models--ORG--NAME/refs/main``
holding the commit, ``snapshots/<commit>/<file>`` symlinks to ``blobs/<hash>``, blobs named
by their git hash or, for LFS files, their sha256); tests confirm it with huggingface_hub's
own ``scan_cache_dir``, so a change of layout there shows up as a failing test here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

ENCODER = {"name": "tiny", "weights": None, "pool": "avg", "image_size": 32, "precision": "fp32"}
SAMPLING = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}
CAPTIONS = ["a red circle moves left", "a blue square spins"]


def make_model_dir(out: Path, *, info: dict | None = None) -> Path:
    """An untrained S2VT model dir for the ``tiny`` encoder (48-d features, 32 px frames)."""
    import torch

    from s2vt.checkpoint import save_model_dir
    from s2vt.models import ModelConfig, build_model
    from s2vt.text import Vocabulary

    torch.manual_seed(0)
    vocab = Vocabulary.build(CAPTIONS)
    config = ModelConfig(name="s2vt", feature_dim=48, vocab_size=len(vocab), embed_size=8,
                         hidden_size=8, dropout=0.0, max_frames=8)
    save_model_dir(out, build_model(config), config, vocab, ENCODER, SAMPLING,
                   features={"feature_dim": 48, "image_size": 32, "dtype": "float16"},
                   info=info if info is not None else {"epoch": 2, "step": 10,
                                                       "val": {"CIDEr": 0.25, "BLEU-4": 0.125},
                                                       "val_metric": "CIDEr"})
    return out


def git_blob_hash(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def make_hub_cache(cache: Path, repo_id: str, files: dict[str, bytes],
                   commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """Lay ``files`` out as huggingface_hub caches a model repo at ``commit`` (= main).

    Returns:
        The snapshot folder.
    """
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)  # no newline, as huggingface_hub writes it
    for name, data in files.items():
        lfs = name.endswith(".safetensors")
        blob = hashlib.sha256(data).hexdigest() if lfs else git_blob_hash(data)
        (repo / "blobs" / blob).write_bytes(data)
        link = snapshot / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / blob, link.parent))
    return snapshot


def model_files(model_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(model_dir.iterdir()) if p.is_file()}
