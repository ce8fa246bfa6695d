"""A transformer encoder-decoder captioner (``transformer``, Vaswani et al. 2017).

The encoder reads the projected frame features plus sinusoidal positions (frame order
matters, as it does for S2VT) with padding frames masked out of every attention; a causal
decoder writes the caption, attending to its own past words and to the encoded frames.

Choices: pre-LayerNorm layers (the norm inside each residual branch, a final norm on each
stack), which train stably at the learning rates the LSTMs use without a warm-up; sinusoidal
positions, which hold no weights and so do not tie a model to a caption length; GELU
feed-forward layers. Sizes come from :class:`ModelConfig`: width ``embed_size`` (words and
frames), feed-forward ``hidden_size``, ``num_heads``, ``encoder_layers``, ``decoder_layers``.

Generation caches keys and values: ``init_decoding`` projects the encoded frames into each
decoder layer's cross-attention keys/values once per video (memory), and each
``decode_step`` appends the new word's self-attention key/value to per-layer caches carried
in the state as ``(N, heads, steps, head_dim)`` tensors, so a step costs one position, and
beam search reorders the caches with the rest of the state by ``index_select`` on rows.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from s2vt.errors import ConfigError
from s2vt.models.base import CaptionModel, State
from s2vt.models.config import ModelConfig
from s2vt.text import PAD_ID


def positional_encoding(positions: torch.Tensor, width: int) -> torch.Tensor:
    """Sinusoidal positions: (S,) int positions -> (S, width) float32."""
    half = (width + 1) // 2
    rates = torch.exp(torch.arange(half, device=positions.device, dtype=torch.float32)
                      * (-math.log(10000.0) / half))
    angles = positions.float().unsqueeze(1) * rates.unsqueeze(0)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1)[:, :width]


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over ``heads`` heads (``F.scaled_dot_product_attention``).

    Args:
        width: model width (divisible by ``heads``).
        heads: number of heads.
        dropout: dropout on the attention weights while training.
    """

    def __init__(self, width: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(width, width)
        self.key_value = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)
        self.dropout = dropout

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """(N, S, W) -> (N, heads, S, W / heads)."""
        n, s, w = x.shape
        return x.view(n, s, self.heads, w // self.heads).transpose(1, 2)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, S, W) -> keys and values, each (N, heads, S, W / heads)."""
        key, value = self.key_value(x).chunk(2, dim=-1)
        return self._split(key), self._split(value)

    def attend(self, x: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
               mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        """Queries from ``x`` (N, S, W) over the given keys/values -> (N, S, W).

        ``mask`` (N, K) bool is True for keys that may be attended.
        """
        query = self._split(self.query(x))
        attn_mask = None if mask is None else mask[:, None, None, :]
        out = F.scaled_dot_product_attention(
            query, key.to(query.dtype), value.to(query.dtype), attn_mask=attn_mask,
            dropout_p=self.dropout if self.training else 0.0, is_causal=causal)
        n, _, s, _ = out.shape
        return self.out(out.transpose(1, 2).reshape(n, s, -1))


class FeedForward(nn.Sequential):
    """Linear -> GELU -> dropout -> Linear."""

    def __init__(self, width: int, hidden: int, dropout: float) -> None:
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, width))


class EncoderLayer(nn.Module):
    """Pre-LN self-attention over the frames + feed-forward."""

    def __init__(self, width: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attention = MultiHeadAttention(width, heads, dropout)
        self.feed_forward = FeedForward(width, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, W) frames, (B, T) mask -> (B, T, W)."""
        normed = self.norm1(x)
        x = x + self.drop(self.attention.attend(normed, *self.attention.keys_values(normed),
                                                mask=mask))
        return x + self.drop(self.feed_forward(self.norm2(x)))


class DecoderLayer(nn.Module):
    """Pre-LN causal self-attention, cross-attention to the frames, feed-forward."""

    def __init__(self, width: int, heads: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(width) for _ in range(3))
        self.self_attention = MultiHeadAttention(width, heads, dropout)
        self.cross_attention = MultiHeadAttention(width, heads, dropout)
        self.feed_forward = FeedForward(width, hidden, dropout)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, self_kv: tuple[torch.Tensor, torch.Tensor],
                cross_kv: tuple[torch.Tensor, torch.Tensor], mask: torch.Tensor,
                causal: bool) -> torch.Tensor:
        """Words ``x`` (N, S, W) -> (N, S, W).

        Args:
            self_kv: self-attention keys/values of every position up to the last of ``x``
                (with ``causal``: exactly ``x``'s positions, each attending to its past).
            cross_kv: the frames' keys/values for this layer, (N, heads, T, W / heads).
            mask: (N, T) real frames.
        """
        x = x + self.drop(self.self_attention.attend(self.norm1(x), *self_kv, causal=causal))
        x = x + self.drop(self.cross_attention.attend(self.norm2(x), *cross_kv, mask=mask))
        return x + self.drop(self.feed_forward(self.norm3(x)))


class TransformerCaptioner(CaptionModel):
    """Transformer encoder over frames + causal transformer decoder over words.

    Shapes: B videos, T frames, D feature dim, L tokens, V vocab, W width (``embed_size``).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        width, heads = config.embed_size, config.num_heads
        if width % heads:
            raise ConfigError(f"model.embed_size ({width}) must be divisible by "
                              f"model.num_heads ({heads}) for the transformer")
        hidden, dropout = config.hidden_size, config.dropout
        self.frame_proj = nn.Linear(config.feature_dim, width)
        self.embed = nn.Embedding(config.vocab_size, width, padding_idx=PAD_ID)
        self.encoder = nn.ModuleList(EncoderLayer(width, heads, hidden, dropout)
                                     for _ in range(config.encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(width, heads, hidden, dropout)
                                     for _ in range(config.decoder_layers))
        self.encoder_norm = nn.LayerNorm(width)
        self.decoder_norm = nn.LayerNorm(width)
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(width, config.vocab_size)

    def _encode(self, features: torch.Tensor, feature_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, D) frames -> (B, T, W) encoded frames (padding rows are never attended)."""
        self.lengths(feature_mask)  # checks the mask is right-padded with >= 1 frame
        mask = feature_mask.bool()
        x = self.frame_proj(self.standardize(features, feature_mask))
        positions = torch.arange(x.shape[1], device=x.device)
        x = self.drop(x + positional_encoding(positions, x.shape[-1]).to(x.dtype))
        for layer in self.encoder:
            x = layer(x, mask)
        return self.encoder_norm(x)

    def _cross(self, frames: torch.Tensor) -> State:
        """Each decoder layer's cross-attention keys/values of the encoded frames."""
        memory: State = {}
        for i, layer in enumerate(self.decoder):
            memory[f"cross_k{i}"], memory[f"cross_v{i}"] = (
                layer.cross_attention.keys_values(frames))
        return memory

    def _words(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """(N, S) tokens at positions start.. -> (N, S, W) embedded words plus positions."""
        x = self.embed(tokens)
        positions = torch.arange(start, start + tokens.shape[1], device=tokens.device)
        return self.drop(x + positional_encoding(positions, x.shape[-1]).to(x.dtype))

    def forward(self, features: torch.Tensor, feature_mask: torch.Tensor,
                tokens: torch.Tensor, video_index: torch.Tensor | None = None) -> torch.Tensor:
        """Teacher-forced logits.

        Args:
            features: (B, T, D) frame features (right-padded), or (V, T, D) with video_index.
            feature_mask: (B, T) bool, True for real frames (or (V, T)).
            tokens: (B, L) word ids starting with <bos>.
            video_index: optional (B,) row of ``features`` that each caption describes (the
                encoder then runs once per video).
        Returns:
            (B, L, V) logits; position i predicts tokens[:, i + 1] (or <eos>).
        """
        mask = feature_mask.bool()
        memory = self._cross(self._encode(features, feature_mask))
        if video_index is not None:
            memory = {name: value.index_select(0, video_index) for name, value in memory.items()}
            mask = mask.index_select(0, video_index)
        x = self._words(tokens, 0)
        for i, layer in enumerate(self.decoder):
            self_kv = layer.self_attention.keys_values(layer.norm1(x))
            x = layer(x, self_kv, (memory[f"cross_k{i}"], memory[f"cross_v{i}"]), mask,
                      causal=True)
        return self.out(self.decoder_norm(x))

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        frames = self._encode(features, feature_mask)
        memory = self._cross(frames)
        memory["mask"] = feature_mask.bool()
        batch, heads = features.shape[0], self.config.num_heads
        empty = frames.new_zeros(batch, heads, 0, self.config.embed_size // heads)
        state = {}
        for i in range(len(self.decoder)):
            state[f"self_k{i}"], state[f"self_v{i}"] = empty, empty
        return memory, state

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        """One position per row; the state's caches grow by that position."""
        x = self._words(tokens.unsqueeze(1), step)                     # (N, 1, W)
        mask = memory["mask"].index_select(0, rows)
        new_state: State = {}
        for i, layer in enumerate(self.decoder):
            key, value = layer.self_attention.keys_values(layer.norm1(x))
            key = torch.cat([state[f"self_k{i}"].to(key.dtype), key], dim=2)
            value = torch.cat([state[f"self_v{i}"].to(value.dtype), value], dim=2)
            new_state[f"self_k{i}"], new_state[f"self_v{i}"] = key, value
            cross = (memory[f"cross_k{i}"].index_select(0, rows),
                     memory[f"cross_v{i}"].index_select(0, rows))
            # One query over all cached positions: nothing later exists to be masked.
            x = layer(x, (key, value), cross, mask, causal=False)
        return self.out(self.decoder_norm(x)).squeeze(1), new_state
