"""Data-parallel training: two CPU processes with the Gloo backend (as torchrun starts them)."""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))

from test_training import assert_same_weights, make_data, small_config  # noqa: E402

from s2vt.checkpoint import load_model_dir  # noqa: E402
from s2vt.training import load_train_state, train  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, features: str, ann: str,
            runs: list[tuple[str, int, bool]], record: str) -> None:
    """One rank with torchrun's environment; trains each (out, epochs, resume) in ``runs``.

    The worker creates the process group itself so several runs share it (train() then
    leaves it alone); a bare ``torchrun`` launch lets train() create and destroy it.
    """
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        for out, epochs, resume in runs:
            def hook(epoch: int, hook_rank: int, indices: list[int], out: str = out) -> None:
                name = f"{Path(out).name}-epoch{epoch}-rank{hook_rank}.json"
                (Path(record) / name).write_text(json.dumps(indices))

            config = small_config(epochs=epochs, batch_size=4, save_every_steps=3)
            train(config, Path(features), Path(ann), Path(out), resume=resume,
                  sample_hook=hook, progress=False)
    finally:
        dist.destroy_process_group()


def _spawn(features: Path, ann: Path, runs: list[tuple[Path, int, bool]],
           record: Path) -> None:
    record.mkdir(exist_ok=True)
    mp.spawn(_worker, nprocs=2, join=True,
             args=(2, _free_port(), str(features), str(ann),
                   [(str(out), epochs, resume) for out, epochs, resume in runs], str(record)))


def test_two_gloo_processes_shard_the_data_and_resume_exactly(tmp_path: Path) -> None:
    features, ann = make_data(tmp_path, n_train=8)   # 8 train videos x 2 captions = 16 pairs
    straight, resumed, record = tmp_path / "straight", tmp_path / "resumed", tmp_path / "rec"
    # one spawn (process start-up dominates): 2 epochs straight; 1 epoch, then --resume to 2
    _spawn(features, ann, [(straight, 2, False), (resumed, 1, False), (resumed, 2, True)],
           record)

    for epoch in (0, 1):
        ranks = [json.loads((record / f"straight-epoch{epoch}-rank{r}.json").read_text())
                 for r in (0, 1)]
        assert len(ranks[0]) == len(ranks[1]) == 8
        assert set(ranks[0]).isdisjoint(ranks[1])
        assert set(ranks[0]) | set(ranks[1]) == set(range(16))
    assert (json.loads((record / "straight-epoch0-rank0.json").read_text())
            != json.loads((record / "straight-epoch1-rank0.json").read_text()))

    # only rank 0 wrote: one metrics line per epoch, a model dir that loads and captions
    lines = (straight / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2]
    state = load_train_state(straight / "train_state.pt")
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert state["step"] == 2 * 2                 # 8 pairs per rank / batch 4, 2 epochs
    loaded = load_model_dir(straight)
    feats = torch.randn(2, 5, 16)
    out = loaded.model.generate(feats, torch.ones(2, 5, dtype=torch.bool), beam_size=2)
    assert len(out) == 2 and all(isinstance(loaded.vocab.decode(ids), str) for ids in out)

    # distributed --resume: 1 epoch, then resume to 2 == 2 epochs straight
    assert_same_weights(straight / "last", resumed / "last")
    assert [json.loads(x)["epoch"]
            for x in (resumed / "metrics.jsonl").read_text().splitlines()] == [1, 2]
