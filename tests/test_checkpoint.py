"""Model dir save/load: round trip, refusal of pickles, clear errors."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from s2vt.checkpoint import load_model_dir, save_model_dir
from s2vt.errors import S2VTError
from s2vt.models import ModelConfig, build_model, model_names
from s2vt.text import Vocabulary

ENCODER = {"name": "tiny", "weights": None, "pool": "avg", "image_size": 32, "precision": "auto"}
SAMPLING = {"mode": "uniform", "num_frames": 6, "stride": 10, "fps": 1.0, "max_frames": 80}


# Tiny models run fastest on one thread (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def make_dir(tmp_path: Path, name: str = "s2vt") -> tuple[Path, object, Vocabulary]:
    torch.manual_seed(0)
    vocab = Vocabulary.build(["a red circle moves left", "a blue square spins"])
    config = ModelConfig(name=name, feature_dim=10, vocab_size=len(vocab), embed_size=8,
                         hidden_size=12, dropout=0.1, max_frames=6)
    model = build_model(config)
    model.set_feature_stats(torch.rand(10), torch.rand(10) + 0.5)
    out = tmp_path / "model"
    save_model_dir(out, model, config, vocab, ENCODER, SAMPLING,
                   features={"feature_dim": 10, "image_size": 32, "dtype": "float16"},
                   info={"epoch": 3})
    return out, model.eval(), vocab


@pytest.mark.parametrize("name", model_names())
def test_round_trip_gives_identical_outputs(tmp_path: Path, name: str) -> None:
    out, model, vocab = make_dir(tmp_path, name)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors",
                                                     "vocab.json"]
    loaded = load_model_dir(out, device="cpu")
    assert loaded.vocab == vocab and loaded.config == model.config
    assert loaded.encoder_spec == ENCODER and loaded.sampling == SAMPLING
    assert loaded.features["feature_dim"] == 10 and loaded.info == {"epoch": 3}
    assert not loaded.model.training
    for key, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.model.state_dict()[key]), key
    features = torch.randn(2, 6, 10)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    tokens = torch.tensor([[1, 4, 5], [1, 6, 7]])
    assert torch.equal(model(features, mask, tokens), loaded.model(features, mask, tokens))
    assert model.generate(features, mask, beam_size=2) == loaded.model.generate(
        features, mask, beam_size=2)


@pytest.mark.parametrize("target", ["config.json", "model.safetensors", "vocab.json"])
@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_planted_pickle_is_refused_and_never_runs(tmp_path: Path, target: str,
                                                  protocol: int) -> None:
    out, _, _ = make_dir(tmp_path)
    marker = tmp_path / "pwned"
    (out / target).write_bytes(pickle.dumps(Payload(marker), protocol=protocol))
    with pytest.raises(S2VTError, match=f"{target}.*(pickle|not valid JSON|not safetensors)"):
        load_model_dir(out)
    assert not marker.exists()


def test_torch_save_zip_and_pt_files_are_refused(tmp_path: Path) -> None:
    out, _, _ = make_dir(tmp_path)
    marker = tmp_path / "pwned"
    torch.save({"x": Payload(marker)}, out / "model.safetensors")
    with pytest.raises(S2VTError, match="zip archive .*refusing"):
        load_model_dir(out)
    (out / "model.safetensors").unlink()
    torch.save({"x": Payload(marker)}, out / "model.pt")
    with pytest.raises(S2VTError, match="has model.pt but no model.safetensors.*never unpickles"):
        load_model_dir(out)
    assert not marker.exists()


def test_clear_errors_for_broken_dirs(tmp_path: Path) -> None:
    with pytest.raises(S2VTError, match="model dir not found"):
        load_model_dir(tmp_path / "nope")
    out, _, _ = make_dir(tmp_path)
    config = json.loads((out / "config.json").read_text())

    (out / "vocab.json").rename(out / "vocab.bak")
    with pytest.raises(S2VTError, match="has no vocab.json"):
        load_model_dir(out)
    (out / "vocab.bak").rename(out / "vocab.json")

    (out / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(S2VTError, match="format_version 99"):
        load_model_dir(out)
    (out / "config.json").write_text("{broken")
    with pytest.raises(S2VTError, match="config.json is not valid JSON"):
        load_model_dir(out)
    (out / "config.json").write_text(json.dumps({**config, "model": {**config["model"],
                                                                      "hidden_size": 16}}))
    with pytest.raises(S2VTError, match="lstm.*has shape"):
        load_model_dir(out)
    (out / "config.json").write_text(json.dumps({**config, "model": {"bogus": 1}}))
    with pytest.raises(S2VTError, match="unknown config key 'model.bogus'"):
        load_model_dir(out)
    (out / "config.json").write_text(json.dumps(config))
    (out / "model.safetensors").write_bytes((16).to_bytes(8, "little") + b"{garbage garbage garbag")
    with pytest.raises(S2VTError, match="not a valid safetensors file"):
        load_model_dir(out)
    (out / "model.safetensors").write_bytes(b"\x00" * 40)
    with pytest.raises(S2VTError, match="not a valid safetensors file"):
        load_model_dir(out)
    (out / "model.safetensors").unlink()
    with pytest.raises(S2VTError, match="has no model.safetensors"):
        load_model_dir(out)
