"""CIDEr-D without Java, self-critical training and scheduled sampling."""

from __future__ import annotations

import json
import math
import os
import random
import socket
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, str(Path(__file__).parent))

from test_training import assert_same_weights, make_data, small_config  # noqa: E402

from s2vt import distributed  # noqa: E402
from s2vt.cider import CiderD  # noqa: E402
from s2vt.cli import main as cli_main  # noqa: E402
from s2vt.config import load_config  # noqa: E402
from s2vt.errors import ConfigError  # noqa: E402
from s2vt.models import ModelConfig, build_model, model_names  # noqa: E402
from s2vt.models.inputs import pad_frames  # noqa: E402
from s2vt.text import BOS_ID, EOS_ID, PAD_ID, tokenize  # noqa: E402
from s2vt.training import TrainConfig, load_train_state, train  # noqa: E402
from s2vt.training.objectives import BLOCKED  # noqa: E402
from s2vt.training.objectives.crossentropy import scheduled_sampling_logits  # noqa: E402
from s2vt.training.objectives.scst import sample_captions, training_scorer  # noqa: E402
from s2vt.training.trainer import Trainer  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = [f"w{i}" for i in range(25)]


def pycoco_cider(refs: list[list[str]], hyps: list[str]) -> np.ndarray:
    """pycocoevalcap's Cider (CIDEr-D) per video: one hypothesis per video, df over refs."""
    from pycocoevalcap.cider.cider import Cider

    gts = {i: list(r) for i, r in enumerate(refs)}
    res = {i: [h] for i, h in enumerate(hyps)}
    return np.asarray(Cider().compute_score(gts, res)[1], dtype=np.float64)


def random_captions(rng: random.Random, count: int, low: int, high: int,
                    extra: tuple[str, ...] = ()) -> list[str]:
    return [" ".join(rng.choice(WORDS + list(extra)) for _ in range(rng.randint(low, high)))
            for _ in range(count)]


# -- CIDEr-D ---------------------------------------------------------------------------
def test_cider_d_equals_pycocoevalcap_per_video() -> None:
    rng = random.Random(0)
    refs = [random_captions(rng, rng.randint(1, 7), 1, 12) for _ in range(60)]
    refs[5].append("")                                 # an empty reference counts, scores 0
    hyps = random_captions(rng, 60, 0, 14, extra=("unseen", "other"))
    hyps[0] = refs[0][0]                               # an exact reference
    hyps[1] = "w1 w1 w1 w1 w1 w1"                      # clipping
    hyps[2] = "w3"                                     # one word: no bigram
    hyps[3] = ""                                       # nothing
    hyps[4] = "unseen unseen other unseen"             # no reference n-gram at all
    scorer = CiderD.from_words([[r.split() for r in rs] for rs in refs])
    ours = scorer.score_words(range(60), [h.split() for h in hyps])
    theirs = pycoco_cider(refs, hyps)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert ours[0] > 1.0 and ours[3] == 0.0 and ours[4] == 0.0
    assert len(set(np.round(ours, 6))) > 40            # the comparison is not trivially 0s


def test_training_reward_equals_pycocoevalcap_on_decoded_samples() -> None:
    """Several samples per video, scored with token ids of a model vocabulary against
    references holding words the vocabulary lacks; df from all training videos."""
    rng = random.Random(1)
    refs = {f"v{i}": random_captions(rng, rng.randint(2, 5), 2, 10, extra=("rare",))
            for i in range(30)}
    refs["v3"] = ["A w1, w2's w3!", "w1 W2 rare"]      # raw text: tokenised as validation does
    itos = ["<pad>", "<bos>", "<eos>", "<unk>", *WORDS[:15]]
    ids = list(refs)
    scorer = training_scorer(refs, ids, itos)
    samples, videos = [], []
    for _ in range(3):
        for position in range(len(ids)):
            samples.append([rng.randrange(4, len(itos)) for _ in range(rng.randint(0, 9))])
            videos.append(position)
    samples[0] = [itos.index("w1"), itos.index("w2")]
    ours = scorer.score(videos, samples)
    tokenised = [[" ".join(tokenize(c)) for c in refs[v]] for v in ids]
    for k in range(3):
        chunk = slice(k * len(ids), (k + 1) * len(ids))
        texts = [" ".join(itos[i] for i in s) for s in samples[chunk]]
        np.testing.assert_allclose(ours[chunk], pycoco_cider(tokenised, texts), rtol=1e-9,
                                   atol=1e-12)
    # the padded fast path (sampled rows with <eos> and fill) gives the same numbers
    tokens = np.full((len(samples), 12), EOS_ID)
    for row, sample in enumerate(samples):
        tokens[row, :len(sample)] = sample
    padded = scorer.score_padded(np.array(videos), tokens, np.array([len(s) for s in samples]))
    np.testing.assert_array_equal(padded, ours)


def _published_cider_d(candidate: list[str], references: list[list[str]],
                       df: dict[tuple[str, ...], int], num_docs: int,
                       sigma: float = 6.0) -> float:
    """Vedantam et al. 2015, CIDEr-D, transcribed: 10/M sum_j exp(-(l_c-l_j)^2/2s^2)
    * min(g(c), g(s_j)) . g(s_j) / (|g(c)| |g(s_j)|), averaged over n = 1..4 (lengths in
    words)."""
    def g(words: list[str], n: int) -> dict[tuple[str, ...], float]:
        counts = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
        return {gram: tf * (math.log(num_docs) - math.log(max(1, df.get(gram, 0))))
                for gram, tf in counts.items()}

    total = 0.0
    for n in range(1, 5):
        gc = g(candidate, n)
        for ref in references:
            gr = g(ref, n)
            dot = sum(min(v, gr.get(k, 0.0)) * gr.get(k, 0.0) for k, v in gc.items())
            norm = math.sqrt(sum(v * v for v in gc.values())) * \
                math.sqrt(sum(v * v for v in gr.values()))
            penalty = math.exp(-((len(candidate) - len(ref)) ** 2) / (2 * sigma ** 2))
            total += penalty * (dot / norm if norm else 0.0) / len(references)
    return 10.0 * total / 4


def test_clipping_and_length_penalty_follow_the_published_formula() -> None:
    refs = [[["a", "man", "plays", "a", "guitar"], ["someone", "plays", "music"]],
            [["a", "cat", "sits"], ["the", "cat", "is", "on", "a", "mat"]],
            [["a", "dog", "runs", "on", "the", "grass"]]]
    df: Counter = Counter()
    for video in refs:
        df.update({tuple(r[i:i + n]) for r in video for n in range(1, 5)
                   for i in range(len(r) - n + 1)})
    scorer = CiderD.from_words(refs)
    cases = [(0, "a man plays a guitar"), (0, "a a a a a a a a"), (0, "man plays"),
             (0, "a man plays a guitar on a stage in front of many many people"),
             (1, "cat cat cat sits"), (2, "a dog runs on the grass fast")]
    for video, text in cases:
        expected = _published_cider_d(text.split(), refs[video], df, len(refs))
        got = float(scorer.score_words([video], [text.split()])[0])
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), text
    # clipping matters: "a" repeated scores far below its unclipped dot product would give
    repeated = float(scorer.score_words([0], [["a"] * 8])[0])
    assert repeated < 0.5 * float(scorer.score_words([0], [["a", "man"]])[0])
    # the Gaussian penalty: the same words, 10 words longer, lose exp(-100/72) of each term
    long = float(scorer.score_words([2], [refs[2][0] + ["x"] * 10])[0])
    exact = float(scorer.score_words([2], [refs[2][0]])[0])
    assert long < exact * math.exp(-100 / 72) * 1.01


def test_cider_d_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one reference"):
        CiderD([[[1, 2]], []])
    scorer = CiderD([[[1, 2, 3]]])
    with pytest.raises(ValueError, match="video index out of range"):
        scorer.score([1], [[1, 2]])


# -- sampling with gradients, for every registered model -------------------------------
def tiny_model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(name=name, feature_dim=12, vocab_size=20, embed_size=16,
                                   hidden_size=32, dropout=0.0, max_frames=8, num_heads=2))


def video_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(3, 8, 12, generator=gen)
    mask = torch.zeros(3, 8, dtype=torch.bool)
    for i, length in enumerate([8, 5, 1]):
        mask[i, :length] = True
    return features, mask


@pytest.mark.parametrize("name", model_names())
def test_samples_carry_their_log_probability_and_gradients(name: str) -> None:
    model = tiny_model(name).eval()
    features, mask = video_batch()
    torch.manual_seed(3)
    tokens, log_prob, lengths = sample_captions(model, features, mask, 4, 7)
    assert tokens.shape[0] == 12 and tokens.shape[1] <= 7 and log_prob.shape == (12,)
    assert not set(tokens.unique().tolist()) & set(BLOCKED)
    # the same captions teacher-forced: the sum of log p over the words and the <eos>
    inputs = torch.cat([torch.full((12, 1), BOS_ID), tokens], dim=1)
    with torch.no_grad():
        logp = torch.log_softmax(model(features.repeat_interleave(4, 0),
                                       mask.repeat_interleave(4, 0), inputs[:, :-1]).float(),
                                 dim=-1)
    for row in range(12):
        words = int(lengths[row])
        assert tokens[row, :words].ne(EOS_ID).all()
        counted = min(words + 1, tokens.shape[1])      # + <eos> unless cut at max_len
        assert tokens[row, words:].eq(EOS_ID).all()
        picked = logp[row, torch.arange(counted), tokens[row, :counted]]
        assert float(log_prob[row].detach()) == pytest.approx(float(picked.sum()), abs=1e-4)
    log_prob.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    torch.manual_seed(3)
    again, _, _ = sample_captions(model, features, mask, 4, 7)
    assert torch.equal(again, tokens)                  # the global generator drives it


@pytest.mark.parametrize("name", model_names())
def test_scheduled_sampling_at_prob_0_is_teacher_forcing(name: str) -> None:
    model = tiny_model(name).eval()
    features, mask = video_batch()
    inputs = torch.randint(4, 20, (5, 6), generator=torch.Generator().manual_seed(0))
    inputs[:, 0] = BOS_ID
    inputs[4, 4:] = PAD_ID
    video_index = torch.tensor([0, 0, 1, 2, 2])
    forced = model(features, mask, inputs, video_index)
    stepped = scheduled_sampling_logits(model, features, mask, inputs, video_index, 0.0)
    torch.testing.assert_close(stepped, forced, atol=1e-5, rtol=1e-5)
    # at prob 1 every input word after <bos> is the model's own sample (padding stays)
    fed: list[torch.Tensor] = []
    original = model.decode_step

    def recording(tokens, *args):
        fed.append(tokens.clone())
        return original(tokens, *args)

    model.decode_step = recording
    scheduled_sampling_logits(model, features, mask, inputs, video_index, 1.0)
    fed_inputs = torch.stack(fed, dim=1)
    assert torch.equal(fed_inputs[:, 0], inputs[:, 0])
    assert torch.equal(fed_inputs[4, 4:], inputs[4, 4:])
    assert not torch.equal(fed_inputs[:, 1:4], inputs[:, 1:4])
    assert not set(fed_inputs[:4, 1:].unique().tolist()) & set(BLOCKED)


# -- the scheduled-sampling schedule in training ---------------------------------------
def test_schedule_values_are_as_configured() -> None:
    config = load_config(TrainConfig, None, [
        "scheduled_sampling.start_epoch=3", "scheduled_sampling.increase_every=2",
        "scheduled_sampling.step=0.1", "scheduled_sampling.max_prob=0.25"])
    values = [config.scheduled_sampling.probability(e) for e in range(1, 11)]
    assert values == pytest.approx([0, 0, 0.1, 0.1, 0.2, 0.2, 0.25, 0.25, 0.25, 0.25])
    default = load_config(TrainConfig, None, ["scheduled_sampling={}"]).scheduled_sampling
    assert [default.probability(e) for e in (1, 5, 6, 11, 21, 40)] == pytest.approx(
        [0.05, 0.05, 0.1, 0.15, 0.25, 0.25])
    assert TrainConfig().scheduled_sampling is None


def test_scheduled_sampling_off_until_it_starts_then_changes_training(tmp_path: Path,
                                                                      monkeypatch) -> None:
    features, ann = make_data(tmp_path)
    train(small_config(epochs=2), features, ann, tmp_path / "plain", progress=False)
    late = small_config(epochs=2, **{"scheduled_sampling.start_epoch": 3})
    train(late, features, ann, tmp_path / "late", progress=False)
    assert_same_weights(tmp_path / "plain" / "last", tmp_path / "late" / "last")
    # from epoch 2 on at 0.5: epoch 1 as plain, epoch 2 fed with the model's words
    probs: list[float] = []
    from s2vt.training.objectives import crossentropy

    original = crossentropy.scheduled_sampling_logits

    def recording(*args):
        probs.append(args[-1])
        return original(*args)

    monkeypatch.setattr(crossentropy, "scheduled_sampling_logits", recording)
    early = small_config(epochs=2, **{"scheduled_sampling.start_epoch": 2,
                                      "scheduled_sampling.step": 0.5,
                                      "scheduled_sampling.max_prob": 0.5})
    train(early, features, ann, tmp_path / "early", progress=False)
    assert probs and set(probs) == {0.5} and len(probs) == 5      # the 5 steps of epoch 2
    with pytest.raises(AssertionError):
        assert_same_weights(tmp_path / "plain" / "last", tmp_path / "early" / "last")


# -- self-critical training ------------------------------------------------------------
@pytest.fixture(scope="module")
def xe_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Features, annotations and a briefly trained cross-entropy model dir."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("scst")
    features, ann = make_data(root)
    train(small_config(epochs=1, **{"optimizer.lr": 0.003}), features, ann, root / "xe",
          progress=False)
    return features, ann, root / "xe"


def scst_config(model_dir: Path, **kwargs) -> TrainConfig:
    values = {"objective": "scst", "init_from": str(model_dir), "batch_size": 4, "epochs": 2,
              "optimizer.lr": 0.01, "save_every_steps": 2, "scst.num_samples": 3,
              "scst.max_len": 8, **kwargs}
    return small_config(**values)


def test_a_scst_step_raises_the_reward_of_the_batch_it_repeats(xe_run, tmp_path) -> None:
    features, ann, xe = xe_run
    trainer = Trainer(scst_config(xe, batch_size=6, **{"scst.num_samples": 5}), features, ann,
                      tmp_path / "scst", False, distributed.DistContext(),
                      torch.device("cpu"), None, progress=False)
    objective = trainer.objective
    batch = objective.epoch_batches(0, 0, 1)[0]
    frames, mask = pad_frames([trainer.train.features[objective.videos[p]] for p in batch])

    def greedy_reward() -> float:
        captions = trainer.model.generate(frames, mask, max_len=objective.max_len)
        return float(objective.scorer.score(batch, captions).mean())

    def sample_reward() -> float:
        """The mean reward of 20 samples per video (dropout off, no gradients)."""
        trainer.model.eval()
        with torch.no_grad():
            tokens, _, lengths = sample_captions(trainer.model, frames, mask, 20,
                                                 objective.max_len)
        trainer.model.train()
        return float(objective.rewards(batch, tokens, lengths).mean())

    before = greedy_reward(), sample_reward()
    trainer.net.train()
    for _ in range(20):
        trainer._train_step(batch)
    after = greedy_reward(), sample_reward()
    # measured: greedy 0.0 -> 0.13, samples 0.64 -> 0.90
    assert after[1] > before[1] + 0.15 and after[0] > before[0], (before, after)


def test_scst_run_writes_rewards_and_resumes_exactly(xe_run, tmp_path, monkeypatch) -> None:
    features, ann, xe = xe_run
    config = scst_config(xe, epochs=2, save_every_steps=2)
    straight = train(config, features, ann, tmp_path / "straight", progress=False)
    rows = [json.loads(x) for x in (tmp_path / "straight" / "metrics.jsonl").read_text()
            .splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2] and straight.steps == 6   # 12 videos / 4
    assert all(0 < r["train_reward"] < 10 and "train_loss" not in r for r in rows)
    assert "CIDEr" in rows[0]["val"]
    saved = load_config(TrainConfig, tmp_path / "straight" / "train_config.yaml")
    assert saved.objective == "scst" and saved.model.hidden_size == 24

    original = Trainer._train_step
    done = {"steps": 0}

    def interrupted(self, batch):
        if done["steps"] == 5:
            raise KeyboardInterrupt
        done["steps"] += 1
        return original(self, batch)

    out = tmp_path / "interrupted"
    monkeypatch.setattr(Trainer, "_train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(config, features, ann, out, progress=False)
    monkeypatch.setattr(Trainer, "_train_step", original)
    state = load_train_state(out / "train_state.pt")
    assert (state["epoch"], state["batch_in_epoch"], state["step"]) == (1, 1, 4)
    # resumed from the CLI with the saved config (whose model section came from the dir)
    args = ["train", "--features", str(features), "--annotations", str(ann), "--out",
            str(out), "--resume", "--no-progress"]
    assert cli_main(args) == 0
    assert_same_weights(tmp_path / "straight" / "last", out / "last")
    assert_same_weights(tmp_path / "straight", out)
    resumed = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_reward"] for r in resumed] == [r["train_reward"] for r in rows]


def test_greedy_baseline_trains_too(xe_run, tmp_path) -> None:
    features, ann, xe = xe_run
    # min_word_count need not repeat the XE run's: the vocabulary check uses the model dir's
    config = scst_config(xe, epochs=1, min_word_count=5,
                         **{"scst.baseline": "greedy", "scst.num_samples": 1})
    result = train(config, features, ann, tmp_path / "greedy", progress=False)
    assert result.steps == 3


def test_mixed_objective_adds_the_weighted_cross_entropy_of_the_references(xe_run,
                                                                          tmp_path) -> None:
    import torch.nn.functional as F

    features, ann, xe = xe_run
    losses = {}
    for weight in (0.0, 0.7):
        trainer = Trainer(scst_config(xe, **{"scst.xe_weight": weight}), features, ann,
                          tmp_path / f"w{weight}", False, distributed.DistContext(),
                          torch.device("cpu"), None, progress=False)
        trainer.net.eval()                       # no dropout: the same samples both times
        batch = trainer.objective.epoch_batches(0, 0, 1)[0]
        torch.manual_seed(5)
        losses[weight] = float(trainer.objective.loss(trainer.net, batch, 0)[0].detach())
    # The cross-entropy of every training caption of the batch's videos, computed apart.
    objective, data = trainer.objective, trainer.train
    videos = [objective.videos[p] for p in batch]
    pairs = [(row, ids) for row, v in enumerate(videos) for v_, ids in data.samples if v_ == v]
    assert len(pairs) > len(batch), "every reference of a video counts, not one"
    frames, mask = pad_frames([data.features[v] for v in videos])
    total, tokens = 0.0, 0
    with torch.no_grad():
        for row, ids in pairs:
            logits = trainer.model(frames[row:row + 1], mask[row:row + 1],
                                   torch.tensor([ids[:-1]]), torch.tensor([0]))
            total += float(F.cross_entropy(logits[0], torch.tensor(ids[1:]), reduction="sum"))
            tokens += len(ids) - 1
    assert losses[0.7] - losses[0.0] == pytest.approx(0.7 * total / tokens, rel=1e-4)
    with pytest.raises(ConfigError, match="scst.xe_weight must be >= 0"):
        scst_config(xe, **{"scst.xe_weight": -1.0})


def test_init_from_mismatches_are_one_line(xe_run, tmp_path, capsys) -> None:
    features, ann, xe = xe_run
    base = ["train", "--features", str(features), "--annotations", str(ann),
            "--no-progress", "--out", str(tmp_path / "x")]

    def error_of(*extra: str, annotations: Path | None = None) -> str:
        args = list(base)
        if annotations is not None:
            args[4] = str(annotations)
        assert cli_main([*args, *extra]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1, lines
        return lines[0]

    scst = ["--objective", "scst", "--init-from", str(xe)]
    assert "model.hidden_size is 32 in the config but 24 in model dir" in error_of(
        *scst, "--set", "model.hidden_size=32", "--set", "model.embed_size=16")
    assert "model.name is 'meanpool' in the config but 's2vt'" in error_of(
        *scst, "--model", "meanpool")
    other = tmp_path / "other.json"
    data = json.loads(ann.read_text())
    data["sentences"] = [dict(s, caption=s["caption"] + " quickly") for s in data["sentences"]]
    other.write_text(json.dumps(data))
    message = error_of(*scst, annotations=other)
    assert "the vocabulary of model dir" in message and "'quickly' is only in the split" in message
    assert "objective scst needs init_from" in error_of("--objective", "scst")
    assert "unknown config key 'scst.num_sample'" in error_of(*scst, "--set",
                                                               "scst.num_sample=3")
    assert "scst.num_samples must be >= 2 with scst.baseline 'mean'" in error_of(
        *scst, "--set", "scst.num_samples=1")
    assert "scheduled_sampling applies to objective xe only" in error_of(
        *scst, "--set", "scheduled_sampling={}")
    assert "unknown config key 'scheduled_sampling.start'" in error_of(
        "--set", "scheduled_sampling.start=1")
    with pytest.raises(ConfigError, match="scheduled_sampling.max_prob must be in"):
        load_config(TrainConfig, None, ["scheduled_sampling.max_prob=2"])


def test_scst_configs_load_and_take_the_architecture_from_the_model_dir() -> None:
    from s2vt.pipelines import CONFIG_ROOT

    paths = [CONFIG_ROOT / "demo" / "s2vt_scst.yaml", *CONFIG_ROOT.glob("*/train_scst.yaml")]
    assert {p.parent.name for p in paths} == {"demo", "msvd", "msrvtt", "vatex"}
    for path in paths:
        config = load_config(TrainConfig, path)
        assert config.objective == "scst" and config.init_from is None, path
        assert config.model == ModelConfig(), f"{path} has a model section"
        assert 1e-5 <= config.optimizer.lr <= 1e-4 and config.scst.num_samples >= 2, path
        xe = path.with_name("s2vt.yaml" if path.parent.name == "demo" else "train.yaml")
        assert config.max_caption_len == load_config(TrainConfig, xe).max_caption_len, path


# -- data-parallel self-critical training ----------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, features: str, ann: str, xe: str, out: str,
            record: str) -> None:
    os.environ.update({"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank),
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        seen: dict[int, list[int]] = {}
        ctx = distributed.setup("cpu")
        trainer = Trainer(scst_config(Path(xe), epochs=1, batch_size=3), Path(features),
                          Path(ann), Path(out), False, ctx, torch.device("cpu"),
                          lambda epoch, r, indices: seen.setdefault(epoch, indices),
                          progress=False)
        trainer.run()
        weights = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
        Path(record, f"rank{rank}.json").write_text(json.dumps(
            {"videos": seen[0], "weights": weights.tolist()}))
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_shard_videos_and_stay_in_sync(xe_run, tmp_path) -> None:
    features, ann, xe = xe_run
    record = tmp_path / "rec"
    record.mkdir()
    mp.spawn(_worker, nprocs=2, join=True, args=(2, _free_port(), str(features), str(ann),
                                                 str(xe), str(tmp_path / "ddp"), str(record)))
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert set(ranks[0]["videos"]).isdisjoint(ranks[1]["videos"])
    assert sorted(ranks[0]["videos"] + ranks[1]["videos"]) == list(range(12))
    # different videos and samples on each rank, averaged gradients: the same weights
    assert ranks[0]["weights"] == ranks[1]["weights"]
    before = torch.cat([p.flatten() for p in load_model_dir_params(xe)])
    assert not torch.equal(before, torch.tensor(ranks[0]["weights"]))


def load_model_dir_params(path: Path) -> list[torch.Tensor]:
    from s2vt.checkpoint import load_model_dir

    return [p.detach() for p in load_model_dir(path).model.parameters()]


# -- the demo recipe's optional SCST model ---------------------------------------------
def test_demo_trains_s2vt_scst_from_its_s2vt_when_asked(tmp_path: Path, capsys) -> None:
    from s2vt.pipelines.synthetic import DemoSettings, run_demo

    tiny = {"extract": ["encoder.name=tiny", "encoder.pool=avg"],
            "s2vt": ["epochs=1", "model.hidden_size=32", "model.embed_size=16"],
            "meanpool": ["epochs=1", "model.hidden_size=32", "model.embed_size=16"],
            "s2vt_scst": ["epochs=1", "batch_size=8"]}
    out = tmp_path / "run"
    settings = DemoSettings(num_videos=24, seed=3, beam_size=1, overrides=tiny, report=False,
                            flow=False, extra_models=("s2vt_scst",))
    result = run_demo(out, settings)
    saved = load_config(TrainConfig, out / "s2vt_scst" / "model" / "train_config.yaml")
    assert saved.objective == "scst" and saved.init_from == str(out / "s2vt" / "model")
    assert saved.model == load_config(TrainConfig, out / "s2vt" / "model" /
                                      "train_config.yaml").model
    row = json.loads((out / "s2vt_scst" / "model" / "metrics.jsonl").read_text())
    assert "train_reward" in row and row["epoch"] == 1
    assert set(result.scores["s2vt_scst"]) == {"test", "test_novel"}
    assert "s2vt_scst test" in result.table and isinstance(result.sample["s2vt_scst"], str)
    # a second run reuses it
    stamp = out / "s2vt_scst" / "model" / "model.safetensors"
    mtime = stamp.stat().st_mtime_ns
    run_demo(out, settings)
    assert stamp.stat().st_mtime_ns == mtime
    assert cli_main(["demo", "--out", str(out), "--models", "s2vt,nonsense"]) == 2
    assert ("unknown demo model 'nonsense' (optional models: s2vt_att, transformer, "
            "s2vt_scst)") in capsys.readouterr().err
