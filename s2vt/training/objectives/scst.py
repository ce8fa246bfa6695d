"""Self-critical sequence training (Rennie et al. 2017) with a CIDEr-D reward.

Each step takes a batch of training videos, samples ``scst.num_samples`` captions per video
from the model word by word through its decoding hooks (so every registered model can be
trained this way), scores each sample with CIDEr-D against the training references of its
video (document frequencies from the training split, computed once: :class:`CiderD`), and
minimises ``-(reward - baseline) * sum log p(sample)``. The baseline is the mean reward of
the other samples of the same video (default) or the reward of the greedy caption; see
:class:`~s2vt.training.config.ScstConfig` for why. With ``scst.xe_weight`` > 0 the loss
also holds that weight times the cross-entropy of the step's videos' training references
(a mixed objective).

References are tokenised as validation scores them (:func:`s2vt.text.tokenize`); a word
the model's vocabulary lacks keeps its own id in the reward, so it can never be matched
and never counts as another unknown word.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from s2vt.errors import S2VTError
from s2vt.text import BOS_ID, EOS_ID, tokenize
from s2vt.training.batching import epoch_batches, teacher_forcing
from s2vt.training.objectives.base import (
    ObjectiveContext,
    blocked_log_probs,
    caption_cross_entropy,
)

if TYPE_CHECKING:
    from s2vt.cider import CiderD
    from s2vt.models.base import CaptionModel

logger = logging.getLogger(__name__)


def sample_captions(model: CaptionModel, features: torch.Tensor, feature_mask: torch.Tensor,
                    num_samples: int, max_len: int,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample captions with gradients: words drawn from the model's softmax, step by step.

    Args:
        model: any model with the decoding hooks.
        features: (B, T, D) frame features, right-padded; feature_mask (B, T) bool.
        num_samples: K captions per video.
        max_len: the most words per caption (a caption cut there has no <eos>).
    Returns:
        ``tokens`` (B*K, S) int64: sample k of video b is row b*K + k, <eos> after its last
        word and <eos> fill after that; ``log_prob`` (B*K,) float32: the sum of the
        log-probabilities of its words and its <eos> (differentiable); ``lengths`` (B*K,)
        int64: its words.
    """
    device = features.device
    count = features.shape[0] * num_samples
    memory, state = model.init_decoding(features, feature_mask, max_len)
    rows = torch.arange(features.shape[0], device=device).repeat_interleave(num_samples)
    state = {name: value.index_select(0, rows) for name, value in state.items()}
    tokens = torch.full((count,), BOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(count, dtype=torch.bool, device=device)
    lengths = torch.zeros(count, dtype=torch.long, device=device)
    chosen, total = [], torch.zeros(count, device=device)
    for step in range(max_len):
        logits, state = model.decode_step(tokens, state, memory, rows, step)
        logp = blocked_log_probs(logits)
        tokens = torch.multinomial(logp.detach().exp(), 1).squeeze(1)
        tokens = tokens.masked_fill(finished, EOS_ID)
        step_logp = logp.gather(1, tokens.unsqueeze(1)).squeeze(1)
        total = total + step_logp.masked_fill(finished, 0.0)
        lengths += (~finished & (tokens != EOS_ID)).long()
        chosen.append(tokens)
        finished = finished | (tokens == EOS_ID)
        if bool(finished.all()):
            break
    return torch.stack(chosen, dim=1), total, lengths


class SamplingNet(nn.Module):
    """:func:`sample_captions` as a module's ``forward`` (what data-parallel training wraps,
    so the gradients of the sampled captions are averaged over the processes), with the
    teacher-forced logits of ``references`` ((inputs (R, L), video_index (R,))) when given,
    for the mixed objective."""

    def __init__(self, model: CaptionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, feature_mask: torch.Tensor, num_samples: int,
                max_len: int, references: tuple[torch.Tensor, torch.Tensor] | None = None,
                ) -> tuple[torch.Tensor, ...]:
        sampled = sample_captions(self.model, features, feature_mask, num_samples, max_len)
        if references is None:
            return sampled
        return (*sampled, self.model(features, feature_mask, *references))


def training_scorer(references: dict[str, list[str]], video_ids: list[str],
                    words: list[str]) -> CiderD:
    """CIDEr-D over the training references of ``video_ids`` (df over those videos), with
    the model's word ids (``words`` = the vocabulary's id -> word list)."""
    from s2vt.cider import CiderD

    return CiderD.from_words([[tokenize(c) for c in references[v]] for v in video_ids],
                             vocabulary=words)


class SelfCritical:
    """The ``scst`` objective; logs ``train_reward``, the mean CIDEr-D of the samples."""

    summary_key = "train_reward"
    summary_label = "reward"

    def __init__(self, context: ObjectiveContext) -> None:
        config = context.config
        self.context = context
        self.settings = config.scst
        self.max_len = config.scst.max_len or config.max_caption_len
        data = context.data
        # Videos with features and at least one reference, in the order of the data.
        self.videos = [i for i, v in enumerate(data.video_ids) if context.references.get(v)]
        if not self.videos:
            raise S2VTError(f"no training videos with references in split "
                            f"'{config.train_split}' for self-critical training")
        self.scorer = training_scorer(context.references,
                                      [data.video_ids[i] for i in self.videos],
                                      context.vocab.itos)
        logger.info("self-critical training: %d samples per video (baseline: %s), CIDEr-D "
                    "against %d references of %d training videos", self.settings.num_samples,
                    self.settings.baseline, int(self.scorer.num_refs.sum()), len(self.videos))
        # The training captions of each video, for the mixed objective's cross-entropy.
        self.captions: dict[int, list[list[int]]] = {}
        for video, ids in data.samples:
            self.captions.setdefault(video, []).append(ids)

    def epoch_batches(self, epoch: int, rank: int, world_size: int) -> list[list[int]]:
        """Batches of positions in :attr:`videos`, shuffled per epoch, sharded over ranks."""
        config = self.context.config
        per_video = [(position, []) for position in range(len(self.videos))]
        return epoch_batches(per_video, batch_size=config.batch_size, captions_per_video=1,
                             seed=config.seed, epoch=epoch, rank=rank, world_size=world_size)

    def network(self, model: CaptionModel) -> nn.Module:
        return SamplingNet(model)

    def rewards(self, positions: list[int], tokens: torch.Tensor,
                lengths: torch.Tensor) -> np.ndarray:
        """CIDEr-D (B*K,) of sampled ``tokens`` of the videos at ``positions``."""
        k = len(tokens) // len(positions)
        return self.scorer.score_padded(np.repeat(positions, k), tokens.cpu().numpy(),
                                        lengths.cpu().numpy())

    def loss(self, net: nn.Module, batch: list[int], epoch: int,
             ) -> tuple[torch.Tensor, float, int]:
        from s2vt.models.inputs import pad_frames

        context, k = self.context, self.settings.num_samples
        data = context.data
        features, mask = pad_frames([data.features[self.videos[p]] for p in batch],
                                    context.device)
        references = self._references(batch) if self.settings.xe_weight > 0 else None
        with context.autocast():
            tokens, log_prob, lengths, *xe_logits = net(
                features, mask, k, self.max_len,
                None if references is None else references[:2])
        reward = self.rewards(batch, tokens, lengths).reshape(len(batch), k)
        if self.settings.baseline == "greedy":
            greedy = context.model.generate(features, mask, beam_size=1, max_len=self.max_len)
            baseline = self.scorer.score(batch, greedy)[:, None]
        else:
            baseline = (reward.sum(axis=1, keepdims=True) - reward) / (k - 1)
        advantage = torch.from_numpy((reward - baseline).reshape(-1)).to(log_prob)
        loss = -(advantage * log_prob).mean()
        if references is not None:
            loss = loss + self.settings.xe_weight * caption_cross_entropy(xe_logits[0],
                                                                          references[2])
        return loss, float(reward.sum()), reward.size

    def _references(self, batch: list[int]) -> tuple[torch.Tensor, ...]:
        """inputs (R, L), video_index (R,) and targets (R, L) of every training caption of
        the videos at ``batch`` (row i of the step's features is ``batch[i]``'s video)."""
        device = self.context.device
        pairs = [(row, ids) for row, p in enumerate(batch)
                 for ids in self.captions[self.videos[p]]]
        inputs, targets = teacher_forcing([ids for _, ids in pairs], device)
        index = torch.tensor([row for row, _ in pairs], device=device)
        return inputs, index, targets
