"""S2VT: the stacked two-layer LSTM of Venugopalan et al. (ICCV 2015).

One shared time axis: for the first T steps LSTM1 reads projected frame features and LSTM2
reads [LSTM1 output ; <pad> word embedding] with no loss; then <bos> starts decoding, LSTM1
reads a zero vector and LSTM2 reads [LSTM1 output ; embedding of the previous word].

Variable frame counts are exact: the frame phase runs on packed sequences, so each video
starts decoding from the LSTM states after its own last frame, never after padding steps.
The training forward is four ``nn.LSTM`` calls (cuDNN / oneDNN kernels, no Python loop).
Under CPU bf16 autocast the LSTMs stay fp32 (see :func:`run_lstm`); linears use bf16.
Because LSTM1's decode-phase input is always zero, its outputs do not depend on the words;
generation computes them once per video and only steps LSTM2 word by word.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from s2vt.models.base import CaptionModel, State, run_lstm
from s2vt.models.config import ModelConfig
from s2vt.text import PAD_ID


class S2VT(CaptionModel):
    """The paper's model. Shapes: B videos, T frames, D feature dim, L tokens, V vocab."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        e, h = config.embed_size, config.hidden_size
        self.frame_proj = nn.Linear(config.feature_dim, e)
        self.embed = nn.Embedding(config.vocab_size, e, padding_idx=PAD_ID)
        self.lstm1 = nn.LSTM(e, h, batch_first=True)
        self.lstm2 = nn.LSTM(h + e, h, batch_first=True)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(h, config.vocab_size)

    def _encode(self, features: torch.Tensor, feature_mask: torch.Tensor):
        """Frame phase -> final (h, c) of LSTM1 and LSTM2 per video, each (1, B, H)."""
        lengths = self.lengths(feature_mask)
        x = self.drop(self.frame_proj(self.standardize(features, feature_mask)))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out1, state1 = run_lstm(self.lstm1, packed)
        out1, _ = pad_packed_sequence(out1, batch_first=True, total_length=x.shape[1])
        # The word input while frames are read is <pad>, whose embedding is zero.
        pad_words = self.embed.weight.new_zeros(x.shape[0], x.shape[1], self.config.embed_size)
        in2 = torch.cat([self.drop(out1), pad_words.to(out1.dtype)], dim=-1)
        packed2 = pack_padded_sequence(in2, lengths, batch_first=True, enforce_sorted=False)
        _, state2 = run_lstm(self.lstm2, packed2)
        return state1, state2

    def _decode_lstm1(self, state1, steps: int, batch: int, like: torch.Tensor) -> torch.Tensor:
        """LSTM1 outputs for ``steps`` decode steps of zero frame input -> (B, steps, H)."""
        zeros = like.new_zeros(batch, steps, self.config.embed_size)
        out1, _ = run_lstm(self.lstm1, zeros, state1)
        return self.drop(out1)

    def forward(self, features: torch.Tensor, feature_mask: torch.Tensor,
                tokens: torch.Tensor, video_index: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            features: (B, T, D) frame features (right-padded), or (V, T, D) with video_index.
            feature_mask: (B, T) bool, True for real frames (or (V, T)).
            tokens: (B, L) word ids starting with <bos> (padding after the caption is fine).
            video_index: optional (B,) row of ``features`` that each caption describes. The
                frame phase depends on the video alone, so with several captions per video
                it runs once per video instead of once per caption.
        Returns:
            (B, L, V) logits; position i predicts tokens[:, i + 1] (or <eos>).
        """
        state1, state2 = self._encode(features, feature_mask)
        out1 = self._decode_lstm1(state1, tokens.shape[1], features.shape[0], state1[0])
        if video_index is not None:
            out1 = out1.index_select(0, video_index)
            state2 = tuple(s.index_select(1, video_index) for s in state2)
        words = self.drop(self.embed(tokens))
        out2, _ = run_lstm(self.lstm2, torch.cat([out1, words.to(out1.dtype)], dim=-1), state2)
        return self.out(self.drop(out2))

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        state1, (h2, c2) = self._encode(features, feature_mask)
        out1 = self._decode_lstm1(state1, max_len, features.shape[0], state1[0])
        return {"out1": out1}, {"h2": h2.squeeze(0), "c2": c2.squeeze(0)}

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        out1 = memory["out1"][:, step].index_select(0, rows)          # (N, H)
        words = self.embed(tokens).to(out1.dtype)                     # (N, E)
        inputs = torch.cat([out1, words], dim=-1).unsqueeze(1)        # (N, 1, H + E)
        hidden = (state["h2"].unsqueeze(0), state["c2"].unsqueeze(0))
        out2, (h2, c2) = run_lstm(self.lstm2, inputs, hidden)
        return self.out(out2.squeeze(1)), {"h2": h2.squeeze(0), "c2": c2.squeeze(0)}
