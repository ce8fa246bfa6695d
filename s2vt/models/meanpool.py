"""Mean-pool baseline (Venugopalan et al., NAACL 2015).

The video is the masked mean of its frame features, projected to the embedding size. Our
choice: that vector is concatenated to the word embedding at *every* decoding step (as in
the NAACL model, which feeds the video at each step), so the decoder never forgets it. A
two-layer LSTM then predicts the next word.
"""

from __future__ import annotations

import torch
from torch import nn

from s2vt.models.base import CaptionModel, State, run_lstm
from s2vt.models.config import ModelConfig
from s2vt.text import PAD_ID


class MeanPool(CaptionModel):
    """Mean-pooled video + two-layer LSTM decoder. Shapes as in :class:`S2VT`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        e, h = config.embed_size, config.hidden_size
        self.video_proj = nn.Linear(config.feature_dim, e)
        self.embed = nn.Embedding(config.vocab_size, e, padding_idx=PAD_ID)
        self.lstm = nn.LSTM(2 * e, h, num_layers=2, batch_first=True, dropout=config.dropout)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, config.vocab_size)

    def _video(self, features: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) + mask -> (B, E) projected masked mean."""
        lengths = self.lengths(feature_mask).to(features.device)
        x = self.standardize(features, feature_mask)     # zero at padding
        pooled = x.sum(dim=1) / lengths.unsqueeze(1).to(x.dtype)
        return self.drop(self.video_proj(pooled))

    def forward(self, features: torch.Tensor, feature_mask: torch.Tensor,
                tokens: torch.Tensor, video_index: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits (B, L, V); position i predicts tokens[:, i + 1].

        ``video_index`` (B,) optionally maps each caption to its row of ``features`` (V, T, D),
        so that each video is pooled once (see :meth:`S2VT.forward`).
        """
        video = self._video(features, feature_mask)
        if video_index is not None:
            video = video.index_select(0, video_index)
        words = self.drop(self.embed(tokens))
        video = video.unsqueeze(1).expand(-1, tokens.shape[1], -1).to(words.dtype)
        out, _ = run_lstm(self.lstm, torch.cat([words, video], dim=-1))
        return self.out(self.drop(out))

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        video = self._video(features, feature_mask)
        zeros = video.new_zeros(video.shape[0], 2, self.config.hidden_size)
        return {"video": video}, {"h": zeros, "c": zeros.clone()}

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        video = memory["video"].index_select(0, rows)
        words = self.embed(tokens).to(video.dtype)
        inputs = torch.cat([words, video], dim=-1).unsqueeze(1)
        # State is kept batch-first (N, layers, H) so decoding can reorder rows uniformly.
        hidden = (state["h"].transpose(0, 1).contiguous(), state["c"].transpose(0, 1).contiguous())
        out, (h, c) = run_lstm(self.lstm, inputs, hidden)
        return self.out(out.squeeze(1)), {"h": h.transpose(0, 1), "c": c.transpose(0, 1)}
