"""The train stage: outputs, resume exactness (also after kill -9), checks and errors."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from s2vt.checkpoint import load_model_dir
from s2vt.cli import main as cli_main
from s2vt.config import load_config
from s2vt.errors import ConfigError, S2VTError
from s2vt.features import FeatureStore
from s2vt.training import (
    OptimizerConfig,
    TrainConfig,
    build_optimizer,
    grouped_pair_order,
    load_train_state,
    shard_batches,
    train,
)

COLORS = ["red", "blue", "green"]
SHAPES = ["circle", "square"]
ENCODER = {"name": "tiny", "weights": None, "pool": "avg", "image_size": 32, "precision": "auto"}
SAMPLING = {"mode": "uniform", "num_frames": 6, "stride": 10, "fps": 1.0, "max_frames": 80}


# Tiny models run fastest on one thread (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def make_data(root: Path, dim: int = 16, n_train: int = 12, n_val: int = 4,
              encoder: dict | None = None) -> tuple[Path, Path]:
    """A feature store whose features encode colour and shape, and MSR-VTT annotations."""
    rng = np.random.default_rng(0)
    store = FeatureStore.create(root / "features", {
        "feature_dim": dim, "encoder": encoder or ENCODER, "sampling": SAMPLING,
        "image_size": 32})
    videos, sentences = [], []
    for i in range(n_train + n_val):
        color, shape = COLORS[i % 3], SHAPES[(i // 3) % 2]
        frames = 3 + i % 4
        base = np.zeros(dim)
        base[i % 3] = 3.0
        base[3 + (i // 3) % 2] = 3.0
        feats = (base + 0.1 * rng.standard_normal((frames, dim))).astype(np.float16)
        vid = f"video{i}"
        store.write(vid, feats, np.arange(frames), np.arange(frames) / 5.0)
        videos.append({"video_id": vid, "split": "train" if i < n_train else "validate"})
        sentences.append({"video_id": vid, "caption": f"A {color} {shape} moves."})
        sentences.append({"video_id": vid, "caption": f"the {shape} is {color}"})
    ann = root / "annotations.json"
    ann.write_text(json.dumps({"videos": videos, "sentences": sentences}))
    return root / "features", ann


def small_config(**kwargs) -> TrainConfig:
    overrides = [f"{k}={v}" for k, v in {
        "model.embed_size": 16, "model.hidden_size": 24, "model.dropout": 0.2,
        "batch_size": 5, "epochs": 4, "optimizer.lr": 0.01, "save_every_steps": 2,
        "patience": 0, "device": "cpu", **kwargs}.items()]
    return load_config(TrainConfig, None, overrides)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_model_dir(path).model.state_dict()


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_train_writes_outputs_and_learns(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path)
    config = small_config(epochs=12, **{"model.dropout": 0.0})
    result = train(config, features, ann, tmp_path / "run", progress=False)
    out = tmp_path / "run"
    for name in ("config.json", "model.safetensors", "vocab.json", "train_state.pt",
                 "metrics.jsonl", "train_config.yaml", "last/model.safetensors"):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 13))
    assert {"epoch", "step", "train_loss", "val", "seconds"} <= rows[0].keys()
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert "CIDEr" in rows[-1]["val"] and "METEOR" not in rows[-1]["val"]
    assert result.best_score == max(r["val"]["CIDEr"] for r in rows)
    assert result.steps == 12 * 5            # 24 caption pairs (every reference) / batch 5
    loaded = load_model_dir(out)
    assert loaded.config.feature_dim == 16 and loaded.encoder_spec == ENCODER
    assert loaded.sampling == SAMPLING
    # features were standardised with train statistics
    assert float(loaded.model.feature_mean[0]) > 0.5
    store = FeatureStore.open(features)
    feats = torch.from_numpy(store.read("video13").features.astype(np.float32))[None]
    ids = loaded.model.generate(feats, torch.ones(feats.shape[:2], dtype=torch.bool))
    caption = loaded.vocab.decode(ids[0])
    assert caption in ("a blue circle moves", "the circle is blue"), caption
    saved = (out / "train_config.yaml").read_text()
    assert "feature_dim: 16" in saved and "vocab_size:" in saved


def test_resume_is_exact(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path)
    train(small_config(), features, ann, tmp_path / "straight", progress=False)
    train(small_config(epochs=2), features, ann, tmp_path / "resumed", progress=False)
    state = load_train_state(tmp_path / "resumed" / "train_state.pt")
    assert state["epoch"] == 2 and state["batch_in_epoch"] == 0
    result = train(small_config(), features, ann, tmp_path / "resumed", resume=True,
                   progress=False)
    assert result.epochs_completed == 4
    assert_same_weights(tmp_path / "straight" / "last", tmp_path / "resumed" / "last")
    assert_same_weights(tmp_path / "straight", tmp_path / "resumed")
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    straight = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text()
                .splitlines()]
    assert [r["train_loss"] for r in straight] == [json.loads(x)["train_loss"] for x in lines]


@pytest.mark.parametrize(("captions_per_video", "schedule"), [(1, "constant"), (2, "cosine")])
def test_mid_epoch_resume_is_exact(tmp_path: Path, monkeypatch, captions_per_video: int,
                                   schedule: str) -> None:
    """Interrupt inside epoch 2 (after the state saved at step 7), resume, same weights."""
    from s2vt.training.trainer import Trainer

    features, ann = make_data(tmp_path)
    config = small_config(epochs=2, save_every_steps=7, captions_per_video=captions_per_video,
                          **{"optimizer.schedule": schedule})
    train(config, features, ann, tmp_path / "straight", progress=False)
    original = Trainer._train_step
    done = {"steps": 0}

    def interrupted_step(self, batch):
        if done["steps"] == 8:
            raise KeyboardInterrupt
        done["steps"] += 1
        return original(self, batch)

    out = tmp_path / "interrupted"
    monkeypatch.setattr(Trainer, "_train_step", interrupted_step)
    with pytest.raises(KeyboardInterrupt):
        train(config, features, ann, out, progress=False)
    monkeypatch.setattr(Trainer, "_train_step", original)
    state = load_train_state(out / "train_state.pt")
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (1, 2, 7)
    train(config, features, ann, out, resume=True, progress=False)
    assert_same_weights(tmp_path / "straight" / "last", out / "last")
    assert_same_weights(tmp_path / "straight", out)


def test_cosine_schedule_lowers_the_learning_rate_to_zero(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path)
    config = small_config(**{"optimizer.schedule": "cosine", "optimizer.lr": 0.01})
    result = train(config, features, ann, tmp_path / "run", progress=False)
    state = load_train_state(tmp_path / "run" / "train_state.pt")
    last_lr = state["optimizer"]["param_groups"][0]["lr"]
    # The last step of N runs at lr * (1 + cos(pi * (N - 1) / N)) / 2, close to 0.
    total = result.steps
    expected = 0.005 * (1 + np.cos(np.pi * (total - 1) / total))
    assert last_lr == pytest.approx(expected) and last_lr < 0.01 * 0.02


def test_grouped_pair_order_uses_every_pair_once_and_mixes_videos() -> None:
    rng = np.random.default_rng(0)
    # 40 videos with 3..7 captions each, as (video, tokens) pairs in file order.
    samples = [(video, [1, 5, 2]) for video in range(40) for _ in range(rng.integers(3, 8))]
    order = grouped_pair_order(samples, 2, seed=0, epoch=0)
    assert sorted(order) == list(range(len(samples)))
    videos = [samples[i][0] for i in order]
    # Runs of two captions of one video; the first round gives every video one run, in a
    # random order, so a batch of 16 pairs there holds 8 different videos.
    first_round = videos[:80]
    assert all(first_round[i] == first_round[i + 1] for i in range(0, 80, 2))
    assert len(set(first_round[::2])) == 40
    assert first_round[::2] != sorted(first_round[::2])
    assert all(len(set(videos[i:i + 16])) == 8 for i in range(0, 80, 16))
    assert grouped_pair_order(samples, 2, seed=0, epoch=0) == order
    assert grouped_pair_order(samples, 2, seed=0, epoch=1) != order
    assert grouped_pair_order(samples, 2, seed=1, epoch=0) != order


def test_shard_batches_gives_every_rank_the_same_number_of_batches() -> None:
    order = list(range(23))
    whole = shard_batches(order, 5, rank=0, world_size=1)
    assert whole == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14],
                     [15, 16, 17, 18, 19], [20, 21, 22]]
    ranks = [shard_batches(order, 5, rank, 3) for rank in range(3)]
    assert [len(batches) for batches in ranks] == [2, 2, 2]
    dealt = [batch for batches in ranks for batch in batches]
    assert all(batch in dealt for batch in whole)          # nothing dropped, one repeated
    assert shard_batches([0, 1], 5, rank=3, world_size=4) == [[0, 1]]


def test_kill_9_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path, n_train=30)
    args = ["--features", str(features), "--annotations", str(ann), "--no-progress",
            "--epochs", "3", "--threads", "1",
            "--set", "model.embed_size=16", "--set", "model.hidden_size=24",
            "--set", "batch_size=4", "--set", "save_every_steps=3", "--set", "device=cpu",
            "--set", "patience=0"]
    assert cli_main(["train", "--out", str(tmp_path / "straight"), *args]) == 0
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "s2vt", "train", "--out", str(out), *args]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while not (out / "train_state.pt").exists() and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "train_state.pt").exists()
    state = load_train_state(out / "train_state.pt")
    assert state["step"] < 45   # killed before the end (15 batches x 3 epochs)
    assert cli_main(["train", "--out", str(out), "--resume", *args]) == 0
    assert_same_weights(tmp_path / "straight" / "last", out / "last")


def test_cli_train_then_model_dir_loads(tmp_path: Path, capsys) -> None:
    features, ann = make_data(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text("model:\n  name: meanpool\n  embed_size: 16\n  hidden_size: 24\n"
                      "epochs: 2\nbatch_size: 8\ndevice: cpu\n")
    code = cli_main(["train", "--features", str(features), "--annotations", str(ann),
                     "--out", str(tmp_path / "m"), "--config", str(config), "--no-progress"])
    assert code == 0
    assert "2 epochs" in capsys.readouterr().out
    loaded = load_model_dir(tmp_path / "m")
    assert loaded.config.name == "meanpool"
    # again without --resume: refused, nothing lost
    code = cli_main(["train", "--features", str(features), "--annotations", str(ann),
                     "--out", str(tmp_path / "m"), "--config", str(config)])
    assert code == 2
    assert "already holds a training run" in capsys.readouterr().err


def test_errors_are_one_clear_line(tmp_path: Path, capsys) -> None:
    features, ann = make_data(tmp_path)
    base = ["train", "--features", str(features), "--annotations", str(ann), "--no-progress"]

    def error_of(*extra: str) -> str:
        assert cli_main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        return err[-1]

    out = str(tmp_path / "x")
    assert "unknown config key 'model.hiden_size'" in error_of(
        "--out", out, "--set", "model.hiden_size=3")
    assert "config key 'epochs' must be an integer" in error_of(
        "--out", out, "--set", "epochs=true")
    assert "model.feature_dim is 99" in error_of("--out", out, "--set", "model.feature_dim=99")
    assert "unknown model 'lstm'" in error_of("--out", out, "--model", "lstm")
    assert "nothing to resume" in error_of("--out", out, "--resume")
    assert "split 'test2' has no videos" in error_of(
        "--out", out, "--set", "train_split=test2")
    assert "captions_per_video must be >= 1, got 0" in error_of(
        "--out", out, "--set", "captions_per_video=0")
    assert "optimizer.schedule" in error_of("--out", out, "--set", "optimizer.schedule=linear")
    with pytest.raises(S2VTError, match="annotation file or folder not found"):
        train(small_config(), features, tmp_path / "nope.json", tmp_path / "y")
    with pytest.raises(S2VTError, match="feature store not found"):
        train(small_config(), tmp_path / "nofeat", ann, tmp_path / "y")
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        small_config(epochs=0)


def test_empty_train_split_and_missing_features(tmp_path: Path) -> None:
    features, _ = make_data(tmp_path)
    ann = tmp_path / "other.json"
    ann.write_text(json.dumps({"videos": [{"video_id": "zzz", "split": "train"}],
                               "sentences": [{"video_id": "zzz", "caption": "a dog"}]}))
    with pytest.raises(S2VTError, match="no training samples: split 'train' has 1 video"):
        train(small_config(), features, ann, tmp_path / "o")


def test_feature_store_mismatch_on_resume_and_fine_tune(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path / "a")
    train(small_config(epochs=1), features, ann, tmp_path / "run", progress=False)
    other_enc = dict(ENCODER, name="resnet50")
    features_b, _ = make_data(tmp_path / "b", encoder=other_enc)
    with pytest.raises(S2VTError, match="encoder.name is 'resnet50' in the store but 'tiny'"):
        train(small_config(epochs=2), features_b, ann, tmp_path / "run", resume=True)
    features_c, _ = make_data(tmp_path / "c", dim=8)
    with pytest.raises(S2VTError, match="feature_dim is 8 in the store but 16 in model dir"):
        train(small_config(init_from=str(tmp_path / "run")), features_c, ann, tmp_path / "ft")
    # fine-tuning from a compatible model dir starts from its weights and vocabulary
    result = train(small_config(epochs=1, init_from=str(tmp_path / "run")), features, ann,
                   tmp_path / "ft2", progress=False)
    assert result.epochs_completed == 1
    assert load_model_dir(tmp_path / "ft2").vocab == load_model_dir(tmp_path / "run").vocab


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_payload_in_train_state_is_refused(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path)
    train(small_config(epochs=1), features, ann, tmp_path / "run", progress=False)
    marker = tmp_path / "pwned"
    torch.save({"format_version": 1, "x": Payload(marker)}, tmp_path / "run" / "train_state.pt")
    with pytest.raises(S2VTError, match="refusing training state"):
        train(small_config(epochs=2), features, ann, tmp_path / "run", resume=True)
    (tmp_path / "run" / "train_state.pt").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(S2VTError, match="refusing training state"):
        train(small_config(epochs=2), features, ann, tmp_path / "run", resume=True)
    assert not marker.exists()
    assert os.path.exists(tmp_path / "run" / "model.safetensors")


@pytest.mark.parametrize(("cls", "values", "key"), [
    (OptimizerConfig, {"lr": 0.0}, "optimizer.lr"),
    (OptimizerConfig, {"weight_decay": -1.0}, "optimizer.weight_decay"),
    (OptimizerConfig, {"betas": [0.9]}, "optimizer.betas"),
    (TrainConfig, {"batch_size": 0}, "batch_size"),
    (TrainConfig, {"patience": -1}, "patience"),
    (TrainConfig, {"label_smoothing": 1.0}, "label_smoothing"),
])
def test_bad_values_are_a_config_error_naming_the_key(cls, values: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{key} must be"):
        cls(**values)


def _optimizer_of(monkeypatch, adam_class: type) -> torch.optim.Optimizer:
    monkeypatch.setattr(torch.optim, "Adam", adam_class)
    model = torch.nn.Linear(3, 2)
    return build_optimizer(model.parameters(), OptimizerConfig(lr=0.1), torch.device("cpu"))


def test_fused_adam_is_used_only_where_the_installed_torch_supports_it(monkeypatch) -> None:
    built: list[dict] = []

    class NoFusedArgument(torch.optim.Adam):
        """Adam of a torch that has no ``fused`` argument at all."""

        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), weight_decay=0.0):
            built.append({"lr": lr})
            super().__init__(params, lr=lr, betas=betas, weight_decay=weight_decay)

    class FusedOnCudaOnly(torch.optim.Adam):
        """Adam of a torch whose fused kernel exists for CUDA only (as before torch 2.4)."""

        def step(self, closure=None):
            if self.defaults.get("fused"):
                raise RuntimeError("`fused=True` requires all the params to be floating "
                                   "point Tensors of supported devices: ['cuda']")
            return super().step(closure)

    optimizer = _optimizer_of(monkeypatch, NoFusedArgument)
    assert isinstance(optimizer, NoFusedArgument) and not optimizer.defaults.get("fused")
    assert built == [{"lr": 0.1}]
    optimizer = _optimizer_of(monkeypatch, FusedOnCudaOnly)
    assert isinstance(optimizer, FusedOnCudaOnly) and not optimizer.defaults.get("fused")
    optimizer.step()    # the plain implementation runs


@pytest.mark.skipif(tuple(int(x) for x in torch.__version__.split(".")[:2]) < (2, 4),
                    reason="torch before 2.4 has no fused Adam on the CPU")
def test_fused_adam_on_a_cpu_torch_that_has_it(monkeypatch) -> None:
    optimizer = _optimizer_of(monkeypatch, torch.optim.Adam)
    assert optimizer.defaults["fused"] is True


def test_unknown_device_is_one_clear_error(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path)
    with pytest.raises(S2VTError, match="unknown device 'tpu'"):
        train(small_config(device="tpu"), features, ann, tmp_path / "run")
