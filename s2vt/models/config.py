"""The architecture config shared by every caption model (no torch import here)."""

from __future__ import annotations

from dataclasses import dataclass

from s2vt.errors import ConfigError


@dataclass
class ModelConfig:
    """Architecture of a caption model; models take only this.

    The sizes mean the same thing in every model where they apply: ``embed_size`` is the
    width of the word and frame vectors (the transformer's ``d_model``), ``hidden_size`` the
    width of the recurrent or feed-forward layer behind them. The last three keys are read
    by the transformer only; adding them left old ``config.json`` files loadable (a
    missing key takes its default).

    Attributes:
        name: registry name (see :func:`s2vt.models.model_names`): ``s2vt`` (stacked LSTM,
            the paper), ``s2vt_att`` (S2VT + soft attention over frames), ``transformer``
            or ``meanpool`` (baseline).
        feature_dim: D, the size of one frame feature; 0 in a training config means "take
            it from the feature store" (a non-zero value must match the store).
        vocab_size: V, including the four specials; set by training from the vocabulary.
        embed_size: word embedding and frame projection size (paper: 500); the
            transformer's model width, which ``num_heads`` must divide.
        hidden_size: LSTM hidden size (paper: 1000); the transformer's feed-forward size.
        dropout: dropout on embeddings and layer outputs (paper: 0.5).
        max_frames: the most frame steps a model reads (paper: 80).
        encoder_layers: transformer encoder layers over the frames.
        decoder_layers: transformer decoder layers.
        num_heads: attention heads per transformer layer.

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
    encoder_layers: int = 2
    decoder_layers: int = 2
    num_heads: int = 8

    def __post_init__(self) -> None:
        for key in ("embed_size", "hidden_size", "max_frames", "encoder_layers",
                    "decoder_layers", "num_heads"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key} must be >= 1, got {getattr(self, key)}")
        for key in ("feature_dim", "vocab_size"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.{key} must be >= 0, got {getattr(self, key)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")
