"""Caption models: a registry of name -> builder, each builder taking only a ModelConfig.

``import s2vt.models`` stays cheap: torch and the model classes load when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from s2vt.errors import ConfigError
from s2vt.models.config import ModelConfig

if TYPE_CHECKING:
    from s2vt.models.base import CaptionModel

__all__ = ["ModelConfig", "build_model", "model_names", "MODELS"]


def _build_s2vt(config: ModelConfig) -> CaptionModel:
    from s2vt.models.stacked_lstm import S2VT

    return S2VT(config)


def _build_s2vt_att(config: ModelConfig) -> CaptionModel:
    from s2vt.models.attention_lstm import S2VTAttention

    return S2VTAttention(config)


def _build_transformer(config: ModelConfig) -> CaptionModel:
    from s2vt.models.transformer import TransformerCaptioner

    return TransformerCaptioner(config)


def _build_meanpool(config: ModelConfig) -> CaptionModel:
    from s2vt.models.meanpool import MeanPool

    return MeanPool(config)


MODELS: dict[str, Callable[[ModelConfig], CaptionModel]] = {
    "s2vt": _build_s2vt,
    "s2vt_att": _build_s2vt_att,
    "transformer": _build_transformer,
    "meanpool": _build_meanpool,
}


def model_names() -> list[str]:
    """The registered model names."""
    return sorted(MODELS)


def check_model_name(name: str) -> None:
    """Raise ``ConfigError`` listing the known models if ``name`` is not registered."""
    if name not in MODELS:
        raise ConfigError(f"unknown model '{name}' (known models: {', '.join(model_names())})")


def build_model(config: ModelConfig) -> CaptionModel:
    """Build the model named by ``config.name``.

    Raises:
        ConfigError: unknown name (the message lists the known ones), feature_dim unset,
            vocab_size < 5, or sizes a model cannot take (e.g. the transformer's
            embed_size not divisible by num_heads).
    """
    check_model_name(config.name)
    if config.feature_dim < 1:
        raise ConfigError(f"model.feature_dim must be set (>= 1), got {config.feature_dim}")
    if config.vocab_size < 5:
        raise ConfigError(f"model.vocab_size must be at least 5 (4 specials + 1 word), "
                          f"got {config.vocab_size}")
    return MODELS[config.name](config)
