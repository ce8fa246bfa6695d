"""Strict configs: numbers as people type them, in YAML files and in ``key=value`` overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from s2vt.config import load_config, parse_overrides
from s2vt.errors import ConfigError


@dataclass
class Inner:
    lr: float = 0.1
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Example:
    inner: Inner = field(default_factory=Inner)
    scale: float = 1.0
    margin: float | None = None
    epochs: int = 3
    name: str = "x"


NUMBERS = [
    ("1e-3", 1e-3), ("2E-4", 2e-4), ("5", 5.0), (".5", 0.5), ("-1e-3", -1e-3),
    ("+1.5e+2", 150.0), ("0.25", 0.25), ("3.", 3.0), ("-2", -2.0), ("1.0e-3", 1e-3),
]


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_float_keys_take_every_typed_number_in_overrides(text: str, expected: float):
    overrides = [f"inner.lr={text}", f"scale={text}", f"margin={text}"]
    config = load_config(Example, overrides=overrides)
    for value in (config.inner.lr, config.scale, config.margin):
        assert type(value) is float and value == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_float_keys_take_every_typed_number_in_yaml(tmp_path: Path, text: str, expected: float):
    path = tmp_path / "config.yaml"
    path.write_text(f"scale: {text}\nmargin: {text}\ninner:\n  lr: {text}\n"
                    f"  betas: [{text}, 0.5]\n")
    config = load_config(Example, path)
    for value in (config.inner.lr, config.scale, config.margin, config.inner.betas[0]):
        assert type(value) is float and value == pytest.approx(expected, rel=1e-12)
    assert config.inner.betas[1] == 0.5


def test_yaml_reads_exponents_without_a_dot_as_strings():
    # The reason the coercion exists: PyYAML follows YAML 1.1 here.
    assert parse_overrides(["lr=1e-3", "x=1.0e-3"]) == {"lr": "1e-3", "x": 1e-3}


@pytest.mark.parametrize(("text", "shown"), [
    ("abc", "'abc'"), ("1e", "'1e'"), ("e3", "'e3'"), ("1.2.3", "'1.2.3'"),
    ("1e-3x", "'1e-3x'"), ("nan", "'nan'"), ("inf", "'inf'"), ("true", "True"), ("''", "''"),
])
def test_float_keys_reject_what_is_not_a_number(text: str, shown: str):
    with pytest.raises(ConfigError) as info:
        load_config(Example, overrides=[f"scale={text}"])
    assert str(info.value) == f"config key 'scale' must be of type float, got {shown}"


@pytest.mark.parametrize(("text", "message"), [
    ("1.5", "must be of type int, got 1.5"), ("1e3", "must be of type int, got '1e3'"),
    ("2.0", "must be of type int, got 2.0"), ("true", "must be an integer, got True"),
    ("ten", "must be of type int, got 'ten'"),
])
def test_int_keys_reject_non_integers_with_a_clear_error(text: str, message: str):
    with pytest.raises(ConfigError) as info:
        load_config(Example, overrides=[f"epochs={text}"])
    assert str(info.value) == f"config key 'epochs' {message}"


def test_int_and_str_keys_keep_their_types():
    config = load_config(Example, overrides=["epochs=7", "name=1e-3"])
    assert config.epochs == 7 and type(config.epochs) is int
    assert config.name == "1e-3"


def test_train_config_takes_a_learning_rate_in_exponent_form(tmp_path: Path):
    from s2vt.training import TrainConfig

    config = load_config(TrainConfig, overrides=["optimizer.lr=1e-3", "grad_clip=5"])
    assert config.optimizer.lr == pytest.approx(1e-3) and config.grad_clip == 5.0
    path = tmp_path / "train.yaml"
    path.write_text("optimizer:\n  lr: 2E-4\n  weight_decay: 1e-5\n")
    config = load_config(TrainConfig, path)
    assert config.optimizer.lr == pytest.approx(2e-4)
    assert config.optimizer.weight_decay == pytest.approx(1e-5)
    with pytest.raises(ConfigError, match="'epochs' must be of type int, got 1.5"):
        load_config(TrainConfig, overrides=["epochs=1.5"])
