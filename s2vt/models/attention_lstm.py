"""S2VT with soft temporal attention (``s2vt_att``): the stacked LSTMs of S2VT, and at every
decoding step an additive (Bahdanau) attention over the video's frames, in the spirit of
Yao et al. (ICCV 2015, "Describing Videos by Exploiting Temporal Structure").

Choices:

- **What is attended**: LSTM1's outputs of the frame phase, one (H,) vector per real frame.
  They are S2VT's own encoding of the video, each frame seen in the context of the frames
  before it, so the attention picks moments of a motion, not isolated images. Padding
  frames get weight exactly 0 (their scores are -inf before the softmax), so the weights
  sum to 1 over the real frames.
- **The query** is LSTM2's previous hidden state (Bahdanau et al., 2015): which frames
  matter depends on what has been said so far, so "red" and "left" can look at different
  moments.
- **Where the context goes**: into LSTM2's input, beside LSTM1's output and the previous
  word (as Yao et al. feed it to their decoder LSTM), and into the output layer beside
  LSTM2's state (a "deep output"), so a word can be read off the attended frames directly.
  During the frame phase the context input is zero, like the <pad> word.

The teacher-forced ``forward`` steps LSTM2 word by word (the query of a step needs the
previous step's state), through the very function ``decode_step`` uses, so the two give the
same logits. LSTM1's frame and decode phases are single ``nn.LSTM`` calls, as in S2VT.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from s2vt.models.base import CaptionModel, State, run_lstm
from s2vt.models.config import ModelConfig
from s2vt.models.decoding import ATTENTION
from s2vt.text import PAD_ID


class AdditiveAttention(nn.Module):
    """``score_i = v . tanh(W_k key_i + W_q query)``, softmax over the real frames.

    Args:
        key_size: size of one attended vector.
        query_size: size of the query.
        size: the hidden size of the scoring layer.
    """

    def __init__(self, key_size: int, query_size: int, size: int) -> None:
        super().__init__()
        self.key = nn.Linear(key_size, size, bias=False)
        self.query = nn.Linear(query_size, size)
        self.score = nn.Linear(size, 1, bias=False)

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        """(B, T, K) attended vectors -> (B, T, A) projected keys (once per video)."""
        return self.key(values)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attend.

        Args:
            query: (N, Q).
            keys: (N, T, A) from :meth:`keys`.
            values: (N, T, K).
            mask: (N, T) bool, True for real frames (at least one per row).
        Returns:
            ``context`` (N, K) and ``weights`` (N, T) float32: 0 on padding, rows sum to 1.
        """
        energy = torch.tanh(keys + self.query(query).unsqueeze(1).to(keys.dtype))
        scores = self.score(energy).squeeze(-1).float()
        weights = scores.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        context = torch.bmm(weights.unsqueeze(1).to(values.dtype), values).squeeze(1)
        return context, weights


class S2VTAttention(CaptionModel):
    """S2VT + soft attention over LSTM1's frame-phase outputs.

    Shapes: B videos, T frames, D feature dim, L tokens, V vocab, E embed, H hidden.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        e, h = config.embed_size, config.hidden_size
        self.frame_proj = nn.Linear(config.feature_dim, e)
        self.embed = nn.Embedding(config.vocab_size, e, padding_idx=PAD_ID)
        self.lstm1 = nn.LSTM(e, h, batch_first=True)
        # LSTM2 reads [LSTM1 output ; previous word ; attention context].
        self.lstm2 = nn.LSTM(h + e + h, h, batch_first=True)
        self.attention = AdditiveAttention(h, h, h)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(h + h, config.vocab_size)

    def _encode(self, features: torch.Tensor, feature_mask: torch.Tensor) -> tuple[
            torch.Tensor, tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
        """Frame phase -> LSTM1's outputs (B, T, H) (zero at padding) and the final (h, c)
        of LSTM1 and LSTM2 per video, each (1, B, H)."""
        lengths = self.lengths(feature_mask)
        x = self.drop(self.frame_proj(self.standardize(features, feature_mask)))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out1, state1 = run_lstm(self.lstm1, packed)
        out1, _ = pad_packed_sequence(out1, batch_first=True, total_length=x.shape[1])
        # While frames are read the word input is <pad> (zero embedding) and there is no
        # context yet (zero).
        rest = out1.new_zeros(x.shape[0], x.shape[1],
                              self.config.embed_size + self.config.hidden_size)
        in2 = torch.cat([self.drop(out1), rest], dim=-1)
        packed2 = pack_padded_sequence(in2, lengths, batch_first=True, enforce_sorted=False)
        _, state2 = run_lstm(self.lstm2, packed2)
        return out1, state1, state2

    def _decode_lstm1(self, state1, steps: int) -> torch.Tensor:
        """LSTM1 outputs for ``steps`` decode steps of zero frame input -> (B, steps, H)."""
        zeros = state1[0].new_zeros(state1[0].shape[1], steps, self.config.embed_size)
        out1, _ = run_lstm(self.lstm1, zeros, state1)
        return out1

    def _memory(self, features: torch.Tensor, feature_mask: torch.Tensor,
                steps: int) -> tuple[State, State]:
        """Per-video tensors (frames, keys, mask, LSTM1 decode outputs) and LSTM2's state."""
        frames, state1, (h2, c2) = self._encode(features, feature_mask)
        memory = {"frames": frames, "keys": self.attention.keys(frames),
                  "mask": feature_mask.bool(), "out1": self._decode_lstm1(state1, steps)}
        return memory, {"h2": h2.squeeze(0), "c2": c2.squeeze(0)}

    def _step(self, out1: torch.Tensor, words: torch.Tensor, h2: torch.Tensor,
              c2: torch.Tensor, keys: torch.Tensor, frames: torch.Tensor,
              mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                           torch.Tensor]:
        """One word for N rows: (N, H) LSTM1 output, (N, E) embedded previous word, (N, H)
        LSTM2 state -> logits (N, V), new h2, c2 and the attention weights (N, T)."""
        context, weights = self.attention(h2, keys, frames, mask)
        dtype = out1.dtype
        inputs = torch.cat([self.drop(out1), self.drop(words).to(dtype),
                            self.drop(context).to(dtype)], dim=-1).unsqueeze(1)
        out2, (h, c) = run_lstm(self.lstm2, inputs, (h2.unsqueeze(0), c2.unsqueeze(0)))
        out2 = out2.squeeze(1)
        logits = self.out(self.drop(torch.cat([out2, context.to(out2.dtype)], dim=-1)))
        return logits, h.squeeze(0), c.squeeze(0), weights

    def forward(self, features: torch.Tensor, feature_mask: torch.Tensor,
                tokens: torch.Tensor, video_index: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            features: (B, T, D) frame features (right-padded), or (V, T, D) with video_index.
            feature_mask: (B, T) bool, True for real frames (or (V, T)).
            tokens: (B, L) word ids starting with <bos>.
            video_index: optional (B,) row of ``features`` that each caption describes (the
                frame phase then runs once per video).
        Returns:
            (B, L, V) logits; position i predicts tokens[:, i + 1] (or <eos>).
        """
        memory, state = self._memory(features, feature_mask, tokens.shape[1])
        if video_index is not None:
            memory = {name: value.index_select(0, video_index) for name, value in memory.items()}
            state = {name: value.index_select(0, video_index) for name, value in state.items()}
        words = self.embed(tokens)
        h2, c2 = state["h2"], state["c2"]
        logits = []
        for step in range(tokens.shape[1]):
            step_logits, h2, c2, _ = self._step(memory["out1"][:, step], words[:, step], h2, c2,
                                                memory["keys"], memory["frames"],
                                                memory["mask"])
            logits.append(step_logits)
        return torch.stack(logits, dim=1)

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        memory, state = self._memory(features, feature_mask, max_len)
        # Present from the start so that the state holds the same keys at every step.
        state[ATTENTION] = feature_mask.float() / feature_mask.sum(dim=1, keepdim=True)
        return memory, state

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        """One word per row; ``state["attention"]`` (N, T) holds this word's frame weights."""
        def pick(name: str) -> torch.Tensor:
            return memory[name].index_select(0, rows)

        out1 = memory["out1"][:, step].index_select(0, rows)
        logits, h2, c2, weights = self._step(out1, self.embed(tokens), state["h2"],
                                             state["c2"], pick("keys"), pick("frames"),
                                             pick("mask"))
        return logits, {"h2": h2, "c2": c2, ATTENTION: weights}
