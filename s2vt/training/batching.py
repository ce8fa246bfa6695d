"""The training data in memory and how each epoch cuts it into batches.

Each epoch's order is a pure function of (seed, epoch, rank, world size), so a resumed run
continues exactly the order an uninterrupted one would have used. Data-parallel runs shard
the caption pairs with a ``DistributedSampler`` or, with ``captions_per_video`` > 1, deal
out whole batches (:func:`shard_batches`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from s2vt.features import FeatureStore

logger = logging.getLogger(__name__)


@dataclass
class TrainData:
    """Features and caption pairs in memory."""

    video_ids: list[str]
    features: list[torch.Tensor]          # per video (T, D) float16
    samples: list[tuple[int, list[int]]]  # (video index, <bos> w1 .. wn <eos>)


def load_features(store: FeatureStore, video_ids: list[str], max_frames: int,
                  what: str) -> tuple[list[str], list[torch.Tensor]]:
    """Read the videos the store has (once, into memory); log the ones it lacks.

    Args:
        store: the feature store.
        video_ids: the videos wanted.
        max_frames: long videos are subsampled to this many frames (:func:`fit_frames`).
        what: the split's name, for the log message.
    Returns:
        The ids found and their ``(T, D)`` float16 features, in the order of ``video_ids``.
    """
    import torch

    from s2vt.models.inputs import fit_frames

    kept, arrays, missing = [], [], []
    for video_id in video_ids:
        if not store.has(video_id):
            missing.append(video_id)
            continue
        array = fit_frames(store.read(video_id).features, max_frames)
        arrays.append(torch.from_numpy(array.astype("float16", copy=False)).contiguous())
        kept.append(video_id)
    if missing:
        logger.warning("%d %s video(s) have no features in %s and are skipped (first: %r)",
                       len(missing), what, store.root, missing[0])
    return kept, arrays


def feature_stats(features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std (D,) over every frame of the training videos (float64 sums)."""
    total = sum(len(f) for f in features)
    s1 = sum(f.double().sum(0) for f in features)
    s2 = sum(f.double().pow(2).sum(0) for f in features)
    mean = s1 / total
    var = (s2 / total - mean.pow(2)).clamp_min(0.0)
    return mean.float(), var.sqrt().float().clamp_min(1e-6)


def collate(data: TrainData, batch: list[int], device: torch.device,
            ) -> tuple[torch.Tensor, ...]:
    """Caption-pair indices -> the tensors of one training step.

    Returns:
        ``features`` (V, T, D) float32 and ``mask`` (V, T) bool of the batch's V distinct
        videos, ``video_index`` (B,) the row of each caption's video, and ``inputs`` and
        ``targets`` (B, L) token ids (the caption without its last / first token).
    """
    import torch

    from s2vt.models.inputs import pad_frames

    rows: dict[int, int] = {}
    video_index = torch.tensor([rows.setdefault(data.samples[i][0], len(rows)) for i in batch])
    features, mask = pad_frames([data.features[video] for video in rows], device)
    inputs, targets = teacher_forcing([data.samples[i][1] for i in batch], device)
    return features, mask, video_index.to(device), inputs, targets


def teacher_forcing(captions: list[list[int]], device: torch.device,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id captions (each <bos> ... <eos>) -> ``inputs`` and ``targets`` (B, L), padded
    with PAD_ID: each caption without its last / first token."""
    import torch
    from torch.nn.utils.rnn import pad_sequence

    from s2vt.text import PAD_ID

    tokens = pad_sequence([torch.tensor(ids) for ids in captions], batch_first=True,
                          padding_value=PAD_ID)
    return tokens[:, :-1].to(device), tokens[:, 1:].to(device)


def grouped_pair_order(samples: list[tuple[int, list[int]]], captions_per_video: int,
                       seed: int, epoch: int) -> list[int]:
    """Every caption pair once, ordered so that consecutive runs of ``captions_per_video``
    pairs share a video while neighbouring runs come from different, random videos.

    Each video's captions are shuffled and cut into runs; runs are ordered by round (a
    video's first run, then its second...) and randomly within a round, so a batch mixes
    many videos, as plainly shuffled pairs do, instead of drawing several batches in a row
    from the same few videos (which learnt much less per epoch).
    """
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    by_video: dict[int, list[int]] = {}
    for index, (video, _) in enumerate(samples):
        by_video.setdefault(video, []).append(index)
    runs: list[tuple[int, float, list[int]]] = []
    for pairs in by_video.values():
        shuffled = [pairs[i] for i in torch.randperm(len(pairs), generator=generator).tolist()]
        for round_, start in enumerate(range(0, len(shuffled), captions_per_video)):
            tie = float(torch.rand((), generator=generator))
            runs.append((round_, tie, shuffled[start:start + captions_per_video]))
    runs.sort(key=lambda run: run[:2])
    return [index for _, _, run in runs for index in run]


def shard_batches(order: list[int], batch_size: int, rank: int, world_size: int,
                  ) -> list[list[int]]:
    """Cut ``order`` into batches and deal them out to the ranks; every rank gets the same
    number of batches (the first ones are repeated to fill the last round)."""
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    padding = -len(batches) % world_size
    batches += [batches[i % len(batches)] for i in range(padding)]
    return batches[rank::world_size]


def epoch_batches(samples: list[tuple[int, list[int]]], *, batch_size: int,
                  captions_per_video: int, seed: int, epoch: int, rank: int = 0,
                  world_size: int = 1) -> list[list[int]]:
    """One process's batches of caption-pair indices for ``epoch``.

    A pure function of its arguments, so a mid-epoch resume continues the same order.

    Args:
        samples: the (video index, tokens) caption pairs.
        batch_size: pairs per batch.
        captions_per_video: 1 = plainly shuffled pairs (a ``DistributedSampler``); more =
            runs of pairs sharing a video (:func:`grouped_pair_order`).
        seed / epoch: what the order is derived from.
        rank / world_size: this process and the number of processes.
    Returns:
        The batches, each a list of indices into ``samples``.
    """
    if captions_per_video > 1:
        order = grouped_pair_order(samples, captions_per_video, seed=seed, epoch=epoch)
        return shard_batches(order, batch_size, rank, world_size)
    from torch.utils.data import DistributedSampler

    sampler = DistributedSampler(samples, num_replicas=world_size, rank=rank, shuffle=True,
                                 seed=seed)
    sampler.set_epoch(epoch)
    indices = list(sampler)
    return [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
