"""The base class of caption models: input standardisation and generation.

A model implements three hooks and inherits greedy search, beam search and sampling:

- ``forward(features, feature_mask, tokens, video_index=None) -> logits`` (teacher forcing,
  for training; ``video_index`` lets several captions share one pass over their video);
- ``init_decoding(features, feature_mask, max_len) -> (memory, state)``: per-video memory
  that never changes while decoding (indexed by video) and the per-row recurrent state;
- ``decode_step(tokens, state, memory, rows, step) -> (logits, state)``: one word for every
  row (a row is a video in greedy search, a beam in beam search; ``rows`` maps row -> video).
  A model with attention over frames also returns this step's weights as
  ``state["attention"]`` (N, T), which the searches hand back per word.

Teacher-forced ``forward`` and step-by-step ``decode_step`` give the same logits (a test for
every registered model), so training objectives that feed the model its own words (scheduled
sampling, self-critical training) can step any model through the two decoding hooks.
"""

from __future__ import annotations

import torch
from torch import nn

from s2vt.models.config import ModelConfig
from s2vt.models.decoding import DecodingOptions, Hypothesis, State, search

__all__ = ["CaptionModel", "State", "run_lstm"]


def run_lstm(lstm: nn.LSTM, inputs, hidden=None):
    """``lstm(inputs, hidden)``, in fp32 when CPU autocast is on.

    On CPU, LSTMs under bf16 autocast hit slow (about 15x) or failing oneDNN paths in our
    torch build, so they run in fp32 there while the linear layers keep autocast. CUDA
    (cuDNN) runs them in the autocast dtype.
    """
    if inputs.data.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            if hidden is not None:
                hidden = tuple(h.float() for h in hidden)
            return lstm(inputs.float(), hidden)
    return lstm(inputs, hidden)


class CaptionModel(nn.Module):
    """Common parts: ``feature_mean`` / ``feature_std`` buffers (D,) and ``generate``."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # Training sets these from train-set statistics; standardised inputs train much
        # better than raw CNN activations (BLEU-4 0.53 -> 0.73 in our prototype).
        self.register_buffer("feature_mean", torch.zeros(config.feature_dim))
        self.register_buffer("feature_std", torch.ones(config.feature_dim))

    def set_feature_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Set the standardisation statistics (D,); std is clamped away from zero."""
        self.feature_mean.copy_(mean.to(self.feature_mean))
        self.feature_std.copy_(std.to(self.feature_std).clamp_min(1e-6))

    def standardize(self, features: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) any float dtype -> (B, T, D) float32 standardised, zero at padding."""
        if features.dim() != 3 or features.shape[-1] != self.config.feature_dim:
            raise ValueError(f"features must be (B, T, {self.config.feature_dim}), "
                             f"got {tuple(features.shape)}")
        if feature_mask.shape != features.shape[:2]:
            raise ValueError(f"feature_mask must be {tuple(features.shape[:2])}, "
                             f"got {tuple(feature_mask.shape)}")
        if features.shape[1] > self.config.max_frames:
            raise ValueError(f"{features.shape[1]} frames exceed model max_frames "
                             f"{self.config.max_frames}")
        x = (features.float() - self.feature_mean) / self.feature_std
        return x * feature_mask.unsqueeze(-1).to(x.dtype)

    @staticmethod
    def lengths(feature_mask: torch.Tensor) -> torch.Tensor:
        """Frame counts (B,) int64 on CPU; the mask must be right-padded with >= 1 frame."""
        lengths = feature_mask.sum(dim=1)
        positions = torch.arange(feature_mask.shape[1], device=feature_mask.device)
        if not torch.equal(positions.unsqueeze(0) < lengths.unsqueeze(1), feature_mask.bool()):
            raise ValueError("feature_mask must be right-padded (True frames first)")
        if bool((lengths < 1).any()):
            raise ValueError("every video needs at least one frame")
        return lengths.cpu()

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        """Encode the videos: -> (memory indexed by video (B, ...), state per row (B, ...))."""
        raise NotImplementedError

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        """One decoding step: tokens (N,) -> logits (N, V) and the new state."""
        raise NotImplementedError

    @torch.no_grad()
    def search(self, features: torch.Tensor, feature_mask: torch.Tensor,
               options: DecodingOptions) -> list[list[Hypothesis]]:
        """Caption a batch the way ``options`` says: greedy, beam (N best) or sampling.

        Runs in eval mode (dropout off) and restores the previous mode afterwards.

        Args:
            features: (B, T, D) frame features, right-padded.
            feature_mask: (B, T) bool, True for real frames.
            options: search, sizes and sampling settings.
        Returns:
            B lists of up to ``options.num_captions`` hypotheses (tokens, log-probability,
            attention weights per word for attention models), best first.
        """
        was_training = self.training
        self.eval()
        try:
            return search(self, features, feature_mask, options)
        finally:
            self.train(was_training)

    def generate(self, features: torch.Tensor, feature_mask: torch.Tensor, *,
                 beam_size: int = 1, max_len: int = 20,
                 length_penalty: float = 1.0) -> list[list[int]]:
        """Caption a batch of videos; all videos (and all their beams) step together.

        Runs in eval mode (dropout off) and restores the previous mode afterwards.

        Args:
            features: (B, T, D) frame features, right-padded.
            feature_mask: (B, T) bool, True for real frames.
            beam_size: 1 = greedy search; k > 1 = beam search with k beams per video.
            max_len: the most words per caption.
            length_penalty: alpha in score / length**alpha when beams are compared
                (0 = raw log-probability; only used by beam search).
        Returns:
            B lists of token ids, without <bos> / <eos>: each video's best caption
            (:meth:`search` also gives log-probabilities, N-best lists and samples).
        """
        if beam_size < 1 or max_len < 1:
            raise ValueError(f"beam_size and max_len must be >= 1, got {beam_size}, {max_len}")
        options = DecodingOptions(beam_size=beam_size, max_len=max_len,
                                  length_penalty=length_penalty)
        return [found[0].tokens for found in self.search(features, feature_mask, options)]
