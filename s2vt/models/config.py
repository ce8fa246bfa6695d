"""The architecture config shared by every caption model (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from s2vt.errors import ConfigError


@dataclass
class ModelConfig:
    """Architecture of a caption model; models take only this.

    Attributes:
        name: registry name, ``s2vt`` (stacked LSTM, the paper) or ``meanpool`` (baseline).
        feature_dim: D, the size of one frame feature; 0 in a training config means "take
            it from the feature store" (a non-zero value must match the store).
        vocab_size: V, including the four specials; set by training from the vocabulary.
        embed_size: word embedding and frame projection size (paper: 500).
        hidden_size: LSTM hidden size (paper: 1000).
        dropout: dropout on embeddings and LSTM outputs (paper: 0.5).
        max_frames: the most frame steps a model reads (paper: 80).

    Raises:
        ConfigError: a value out of range; the message names its key.
    """

    name: str = "s2vt"
    feature_dim: int = 0
    vocab_size: int = 0
    embed_size: int = 500
    hidden_size: int = 1000
    dropout: float = 0.5
    max_frames: int = 80

    def __post_init__(self) -> None:
        for key in ("embed_size", "hidden_size", "max_frames"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("feature_dim", "vocab_size"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
