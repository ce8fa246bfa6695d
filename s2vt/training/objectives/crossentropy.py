"""Cross-entropy with teacher forcing, optionally with scheduled sampling (Bengio et al.
2015): with the schedule's probability, a caption's previous word is replaced by a word
sampled from the model's own prediction, stepping the model through its decoding hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from s2vt.text import PAD_ID
from s2vt.training.batching import collate, epoch_batches
from s2vt.training.objectives.base import (
    ObjectiveContext,
    blocked_log_probs,
    caption_cross_entropy,
)

if TYPE_CHECKING:
    from s2vt.models.base import CaptionModel


def scheduled_sampling_logits(model: CaptionModel, features: torch.Tensor,
                              feature_mask: torch.Tensor, inputs: torch.Tensor,
                              video_index: torch.Tensor, prob: float) -> torch.Tensor:
    """Logits of ``inputs`` decoded word by word, each input word after the first replaced
    with probability ``prob`` by a word sampled from the model's previous prediction.

    Args:
        model: any model with the decoding hooks.
        features / feature_mask: (V, T, D) and (V, T) of the batch's videos.
        inputs: (B, L) token ids starting with <bos> (padding after the caption).
        video_index: (B,) the row of ``features`` each caption describes.
        prob: the replacement probability (0 = teacher forcing through the hooks).
    Returns:
        (B, L, V) logits; position i predicts inputs' next word, as ``forward`` does.
    """
    length = inputs.shape[1]
    memory, state = model.init_decoding(features, feature_mask, length)
    state = {name: value.index_select(0, video_index) for name, value in state.items()}
    logits_per_step: list[torch.Tensor] = []
    for step in range(length):
        tokens = inputs[:, step]
        if logits_per_step:
            # Padding stays padding: its positions carry no loss anyway.
            replace = (torch.rand(tokens.shape, device=tokens.device) < prob) & \
                (tokens != PAD_ID)
            if bool(replace.any()):
                probs = blocked_log_probs(logits_per_step[-1].detach()).exp()
                sampled = torch.multinomial(probs, 1).squeeze(1)
                tokens = torch.where(replace, sampled, tokens)
        logits, state = model.decode_step(tokens, state, memory, video_index, step)
        logits_per_step.append(logits)
    return torch.stack(logits_per_step, dim=1)


class ScheduledSamplingNet(nn.Module):
    """Teacher forcing (``prob`` 0: the model's own ``forward``) or scheduled sampling."""

    def __init__(self, model: CaptionModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, feature_mask: torch.Tensor,
                inputs: torch.Tensor, video_index: torch.Tensor,
                prob: float = 0.0) -> torch.Tensor:
        if prob <= 0.0:
            return self.model(features, feature_mask, inputs, video_index)
        return scheduled_sampling_logits(self.model, features, feature_mask, inputs,
                                         video_index, prob)


class CrossEntropy:
    """Token-level cross-entropy on every (video, reference) pair, teacher forcing unless
    ``scheduled_sampling`` is set; logs ``train_loss`` (the token-weighted mean)."""

    summary_key = "train_loss"
    summary_label = "loss"

    def __init__(self, context: ObjectiveContext) -> None:
        self.context = context
        self.schedule = context.config.scheduled_sampling

    def epoch_batches(self, epoch: int, rank: int, world_size: int) -> list[list[int]]:
        config = self.context.config
        return epoch_batches(self.context.data.samples, batch_size=config.batch_size,
                             captions_per_video=config.captions_per_video, seed=config.seed,
                             epoch=epoch, rank=rank, world_size=world_size)

    def network(self, model: CaptionModel) -> nn.Module:
        # Without a schedule the model itself, so plain training is exactly what it was.
        return model if self.schedule is None else ScheduledSamplingNet(model)

    def sampling_probability(self, epoch: int) -> float:
        """The scheduled-sampling probability of the 0-based ``epoch`` (0 without one)."""
        return 0.0 if self.schedule is None else self.schedule.probability(epoch + 1)

    def loss(self, net: nn.Module, batch: list[int], epoch: int,
             ) -> tuple[torch.Tensor, float, int]:

        context = self.context
        features, mask, video_index, inputs, targets = collate(context.data, batch,
                                                               context.device)
        prob = self.sampling_probability(epoch)
        with context.autocast():
            if prob > 0.0:
                logits = net(features, mask, inputs, video_index, prob)
            else:
                logits = net(features, mask, inputs, video_index)
        loss = caption_cross_entropy(logits, targets, context.config.label_smoothing)
        tokens = int((targets != PAD_ID).sum())
        return loss, float(loss.detach()) * tokens, tokens
