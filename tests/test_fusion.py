"""Late fusion: the fused decoder, fused model dirs, ``s2vt fuse`` and fused captioning."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from s2vt.errors import S2VTError
from s2vt.fusion import FusedModel, check_weights, load_fused_dir
from s2vt.models import ModelConfig, build_model, model_names
from s2vt.text import Vocabulary

# Tiny models run fastest on one thread (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")

WORDS = ("a", "red", "blue", "green", "circle", "square", "triangle", "moves", "left", "right",
         "up", "down", "spins", "bounces", "grows", "shrinks", "and", "the", "small", "big")
SAMPLING = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}
# Two RGB members of different encoders: the tiny colour grid, avg (48-d) and grid2 (192-d).
ENCODERS = (
    {"name": "tiny", "weights": None, "pool": "avg", "image_size": 32, "precision": "fp32"},
    {"name": "tiny", "weights": None, "pool": "grid2", "image_size": 32, "precision": "fp32"},
)
DIMS = (48, 192)


def _vocab(extra: tuple[str, ...] = ()) -> Vocabulary:
    return Vocabulary([*WORDS, *extra])


def _model(name: str, dim: int, vocab: Vocabulary, seed: int):
    torch.manual_seed(seed)
    config = ModelConfig(name=name, feature_dim=dim, vocab_size=len(vocab), embed_size=16,
                         hidden_size=24, dropout=0.0, max_frames=8)
    model = build_model(config).eval()
    # Sharper word distributions than a fresh init, so captions are sentences, not one word.
    with torch.no_grad():
        model.out.weight.mul_(6.0)
    return model, config


def _inputs(batch: int, dim: int, seed: int, lengths: tuple[int, ...] | None = None):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, 6, dim, generator=gen)
    mask = torch.zeros(batch, 6, dtype=torch.bool)
    for i, length in enumerate(lengths or [6, 4, 2, 5, 1, 3][:batch]):
        mask[i, :length] = True
    return features, mask


@pytest.mark.parametrize("name", model_names())
def test_decode_step_is_the_log_of_the_weighted_sum_of_member_probabilities(name: str) -> None:
    vocab = _vocab()
    first, _ = _model(name, 10, vocab, 0)
    second, _ = _model(name, 7, vocab, 1)
    inputs = [_inputs(3, 10, 0), _inputs(3, 7, 1)]
    alpha = 0.3
    decoder = FusedModel([first, second], [alpha, 1 - alpha]).decoder(inputs)
    memory, state = decoder.init_decoding(*decoder.anchor, max_len=5)
    started = [m.init_decoding(*x, 5) for m, x in zip((first, second), inputs, strict=True)]
    memories, states = zip(*started, strict=True)
    states = list(states)
    rows = torch.arange(3)
    tokens = torch.tensor([1, 1, 1])
    for step in range(4):
        fused, state = decoder.decode_step(tokens, state, memory, rows, step)
        probs = []
        for i, member in enumerate((first, second)):
            logits, states[i] = member.decode_step(tokens, states[i], memories[i], rows, step)
            probs.append(torch.softmax(logits.float(), dim=-1))
        expected = torch.log(alpha * probs[0] + (1 - alpha) * probs[1])
        torch.testing.assert_close(fused, expected, atol=1e-5, rtol=1e-5)
        # Log-probabilities: what the searches' log_softmax leaves unchanged.
        torch.testing.assert_close(fused.exp().sum(-1), torch.ones(3), atol=1e-5, rtol=0)
        tokens = torch.tensor([4 + step, 7, 9])
    # Every member state travels under its member's prefix.
    assert {k.split(".", 1)[0] for k in state} == {"0", "1"}


@pytest.mark.parametrize("name", model_names())
def test_alpha_one_and_zero_give_exactly_each_members_captions(name: str) -> None:
    vocab = _vocab()
    first, _ = _model(name, 10, vocab, 3)
    second, _ = _model(name, 7, vocab, 4)
    inputs = [_inputs(5, 10, 5), _inputs(5, 7, 6)]
    for beam in (1, 4):
        alone = [first.generate(*inputs[0], beam_size=beam, max_len=8),
                 second.generate(*inputs[1], beam_size=beam, max_len=8)]
        # The members disagree, so each comparison below can fail.
        assert alone[0] != alone[1]
        fused = FusedModel([first, second], [1.0, 0.0])
        assert fused.generate(inputs, beam_size=beam, max_len=8) == alone[0]
        fused.set_weights([0.0, 1.0])
        assert fused.generate(inputs, beam_size=beam, max_len=8) == alone[1]
        fused.set_weights([0.5, 0.5])
        mixed = fused.generate(inputs, beam_size=beam, max_len=8)
        assert len(mixed) == 5 and all(isinstance(t, int) for seq in mixed for t in seq)


def test_greedy_fusion_follows_the_mixed_distribution() -> None:
    """Greedy fused captions = argmax of alpha p1 + (1 - alpha) p2, step by step."""
    vocab = _vocab()
    first, _ = _model("s2vt", 10, vocab, 7)
    second, _ = _model("s2vt", 7, vocab, 8)
    inputs = [_inputs(4, 10, 9), _inputs(4, 7, 10)]
    alpha = 0.6
    fused = FusedModel([first, second], [alpha, 1 - alpha]).generate(inputs, max_len=6)
    from s2vt.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID

    for video in range(4):
        tokens = [BOS_ID]
        for _ in range(6):
            probs = 0
            for weight, member, (features, mask) in zip((alpha, 1 - alpha), (first, second),
                                                       inputs, strict=True):
                logits = member(features[video:video + 1], mask[video:video + 1],
                                torch.tensor([tokens]))[0, -1]
                probs = probs + weight * torch.softmax(logits, dim=-1)
            probs[[PAD_ID, BOS_ID, UNK_ID]] = 0
            word = int(probs.argmax())
            if word == EOS_ID:
                break
            tokens.append(word)
        assert fused[video] == tokens[1:]


def test_weights_are_checked() -> None:
    assert check_weights([0.25, 0.75], 2) == [0.25, 0.75]
    for bad in ([0.5, 0.6], [1.2, -0.2], [float("nan"), 1.0], [1.0]):
        with pytest.raises(S2VTError, match="weights"):
            check_weights(bad, 2)


# --------------------------------------------------------------------------- model dirs
class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _save_member(root: Path, vocab: Vocabulary, number: int, seed: int, *,
                 stream: dict | None = None, name: str = "s2vt") -> Path:
    from s2vt.checkpoint import save_model_dir

    model, config = _model(name, DIMS[number], vocab, seed)
    encoder = ENCODERS[number]
    save_model_dir(root, model, config, vocab, encoder_spec=encoder, sampling=SAMPLING,
                   features={"feature_dim": DIMS[number], "image_size": 32,
                             "dtype": "float16"}, stream=stream)
    return root


@pytest.fixture
def members(tmp_path: Path) -> tuple[Path, Path]:
    vocab = _vocab()
    return (_save_member(tmp_path / "rgb_a", vocab, 0, 11),
            _save_member(tmp_path / "rgb_b", vocab, 1, 12))


def _features(count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((4, DIMS[0])).astype(np.float16),
             rng.standard_normal((4, DIMS[1])).astype(np.float16)) for _ in range(count)]


def test_fused_dir_is_self_contained_and_loads_as_it_was_fused(
    members: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from s2vt.captioner import Captioner, FusedCaptioner
    from s2vt.cli import main

    (members[0] / "train_state.pt").write_bytes(b"training state stays behind")
    out = tmp_path / "fused"
    assert main(["fuse", "--model", str(members[0]), "--model", str(members[1]),
                 "--out", str(out), "--alpha", "0.7"]) == 0
    assert "weights 0.70, 0.30" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["kind"] == "fused" and config["alpha"] == 0.7
    assert [m["path"] for m in config["members"]] == ["members/0-rgb", "members/1-rgb"]
    assert [m["weight"] for m in config["members"]] == pytest.approx([0.7, 0.3])
    assert config["tuning"] is None
    assert sorted(p.name for p in (out / "members" / "0-rgb").iterdir()) == [
        "config.json", "model.safetensors", "vocab.json"]
    assert "late fusion" in (out / "README.md").read_text()

    features = _features(6, 0)
    in_memory = FusedModel([Captioner.from_pretrained(m).loaded.model for m in members],
                           [0.7, 0.3])
    expected = [Captioner.from_pretrained(members[0]).loaded.vocab.decode(ids) for ids in
                _generate(in_memory, features, beam=3)]
    for folder in members:  # the fused dir needs nothing outside it
        for file in folder.iterdir():
            file.unlink()
    captioner = Captioner.from_pretrained(out, beam_size=3)
    assert isinstance(captioner, FusedCaptioner)
    assert captioner.loaded.weights == pytest.approx([0.7, 0.3])
    assert captioner.caption_features(features) == expected
    loaded = load_fused_dir(out)
    assert [m.path for m in loaded.members] == [out / "members/0-rgb", out / "members/1-rgb"]


def _generate(model: FusedModel, features, beam: int) -> list[list[int]]:
    from s2vt.models.inputs import pad_frames

    inputs = [pad_frames([torch.from_numpy(video[i]).float() for video in features])
              for i in range(2)]
    return model.generate(inputs, beam_size=beam, max_len=20)


def test_fusing_into_an_existing_fused_dir_replaces_it_and_other_folders_are_refused(
    members: tuple[Path, Path], tmp_path: Path
) -> None:
    from s2vt.fusing import fuse

    out = tmp_path / "fused"
    fuse(members, out, alpha=0.2)
    fuse(members, out, alpha=0.9)
    assert load_fused_dir(out).weights == pytest.approx([0.9, 0.1])
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine")
    with pytest.raises(S2VTError, match="exists and is not a fused model dir"):
        fuse(members, taken, alpha=0.5)
    assert (taken / "notes.txt").read_text() == "mine"


def test_members_with_different_vocabularies_are_one_clear_error(
    members: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from s2vt.cli import main

    other = _save_member(tmp_path / "other", _vocab(("purple",)), 1, 13)
    out = tmp_path / "fused"
    assert main(["fuse", "--model", str(members[0]), "--model", str(other), "--out", str(out),
                 "--alpha", "0.5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    assert err.startswith("error: fusion members must share one vocabulary")
    assert f"{len(_vocab())} words" in err and "--vocab-from" in err
    assert not out.exists()


@pytest.mark.parametrize("target", [
    "config.json", "members/0-rgb/model.safetensors", "members/1-rgb/vocab.json",
    "members/1-rgb/config.json",
])
def test_planted_pickle_in_a_fused_dir_or_a_member_is_refused_and_never_runs(
    members: tuple[Path, Path], tmp_path: Path, target: str
) -> None:
    from s2vt.captioner import Captioner
    from s2vt.fusing import fuse

    out = fuse(members, tmp_path / "fused", alpha=0.5).out
    marker = tmp_path / "ran"
    (out / target).write_bytes(pickle.dumps(Payload(marker), protocol=2))
    with pytest.raises(S2VTError, match="(pickle|not valid JSON|not safetensors)"):
        Captioner.from_pretrained(out)
    assert not marker.exists()


def test_member_paths_must_stay_inside_the_fused_dir(
    members: tuple[Path, Path], tmp_path: Path
) -> None:
    from s2vt.fusing import fuse

    out = fuse(members, tmp_path / "fused", alpha=0.5).out
    config = json.loads((out / "config.json").read_text())
    for bad in (str(members[0].resolve()), "../rgb_a", "members/../../rgb_a"):
        config["members"][0]["path"] = bad
        (out / "config.json").write_text(json.dumps(config))
        with pytest.raises(S2VTError, match="inside the fused dir"):
            load_fused_dir(out)
    (out / "members" / "link").symlink_to(members[0].resolve())
    config["members"][0]["path"] = "members/link"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(S2VTError, match="leads outside the fused dir"):
        load_fused_dir(out)


def test_a_fused_dir_is_no_single_model_dir(members: tuple[Path, Path], tmp_path: Path) -> None:
    from s2vt.checkpoint import load_model_dir
    from s2vt.fusing import fuse

    out = fuse(members, tmp_path / "fused", alpha=0.5).out
    with pytest.raises(S2VTError, match="is a fused model dir"):
        load_model_dir(out)
    with pytest.raises(S2VTError, match="is itself a fused model dir"):
        fuse([out, members[1]], tmp_path / "nested", alpha=0.5)


# --------------------------------------------------------------------------- tuning, evaluate
@pytest.fixture(scope="module")
def synth_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny synthetic benchmark (real clips, all splits): annotations.json."""
    from s2vt.synth import synthesize

    return synthesize(tmp_path_factory.mktemp("synth"), num_videos=40, seed=0)


@pytest.fixture
def bench(synth_data: Path, tmp_path: Path) -> dict:
    """Two members with the benchmark's vocabulary and a random-feature store for each."""
    from s2vt.features import FeatureStore

    data = json.loads(synth_data.read_text())
    vocab = Vocabulary.build(s["caption"] for s in data["sentences"])
    dirs, stores = [], []
    rng = np.random.default_rng(0)
    for number in range(2):
        dirs.append(_save_member(tmp_path / f"member{number}", vocab, number, 20 + number))
        store = FeatureStore.create(tmp_path / f"features{number}", {
            "feature_dim": DIMS[number], "encoder": ENCODERS[number], "image_size": 32,
            "sampling": SAMPLING})
        for video in data["videos"]:
            store.write(video["video_id"], rng.standard_normal((4, DIMS[number])),
                        np.arange(4), np.arange(4) / 10.0)
        stores.append(tmp_path / f"features{number}")
    return {"annotations": synth_data, "members": dirs, "stores": stores, "vocab": vocab}


def _val_cider(member: Path, store: Path, annotations: Path) -> float:
    from s2vt.captioner import Captioner
    from s2vt.datasets import load_annotations
    from s2vt.features import FeatureStore
    from s2vt.metrics import score_captions

    refs = {k: v for k, v in load_annotations(annotations).split("val").references().items()
            if v}
    features = FeatureStore.open(store)
    captions = Captioner.from_pretrained(member).caption_features(
        [features.read(vid).features for vid in refs])
    return score_captions(dict(zip(refs, captions, strict=True)), refs,
                          java=False).scores["CIDEr"]


def test_fuse_without_alpha_tunes_it_on_val_and_records_the_grid(
    bench: dict, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from s2vt.cli import main

    out = tmp_path / "fused"
    args = ["fuse", "--out", str(out), "--annotations", str(bench["annotations"])]
    for member, store in zip(bench["members"], bench["stores"], strict=True):
        args += ["--model", str(member), "--features", str(store)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    tuning = json.loads((out / "config.json").read_text())["tuning"]
    assert tuning["grid"] == pytest.approx([i / 10 for i in range(11)])
    assert len(tuning["scores"]) == 11 and tuning["split"] == "val"
    assert tuning["metric"] == "CIDEr" and tuning["videos"] > 0
    best = max(tuning["scores"])
    chosen = tuning["grid"].index(tuning["alpha"])
    assert tuning["scores"][chosen] == best
    # Ties go to the alpha nearest 0.5.
    assert all(abs(a - 0.5) >= abs(tuning["alpha"] - 0.5)
               for a, s in zip(tuning["grid"], tuning["scores"], strict=True) if s == best)
    assert load_fused_dir(out).weights == pytest.approx([tuning["alpha"], 1 - tuning["alpha"]])
    # The ends of the grid are the members alone.
    assert tuning["scores"][-1] == pytest.approx(
        _val_cider(bench["members"][0], bench["stores"][0], bench["annotations"]), abs=1e-9)
    assert tuning["scores"][0] == pytest.approx(
        _val_cider(bench["members"][1], bench["stores"][1], bench["annotations"]), abs=1e-9)
    assert "<- chosen" in printed and f"alpha {tuning['alpha']:.2f}" in printed
    assert "| 0.50 |" in (out / "README.md").read_text()


def test_tuning_needs_one_store_per_member_and_annotations(bench: dict, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    from s2vt.cli import main

    base = ["fuse", "--model", str(bench["members"][0]), "--model", str(bench["members"][1]),
            "--out", str(tmp_path / "fused")]
    assert main(base) == 2
    assert "give --features for each member and --annotations" in capsys.readouterr().err
    assert main([*base, "--features", str(bench["stores"][0]), "--annotations",
                 str(bench["annotations"])]) == 2
    assert "one feature store per member: 2 members, 1 --features" in capsys.readouterr().err
    swapped = [*base, "--features", str(bench["stores"][1]), "--features",
               str(bench["stores"][0]), "--annotations", str(bench["annotations"])]
    assert main(swapped) == 2
    assert "does not fit model dir" in capsys.readouterr().err


def test_evaluate_takes_one_store_per_member_of_a_fused_dir(bench: dict, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture) -> None:
    from s2vt.cli import main
    from s2vt.fusing import fuse

    fused = fuse(bench["members"], tmp_path / "fused", alpha=1.0).out
    common = ["--annotations", str(bench["annotations"]), "--no-java", "--no-report",
              "--beam-size", "3"]
    assert main(["evaluate", "--model", str(bench["members"][0]), "--features",
                 str(bench["stores"][0]), "--out", str(tmp_path / "alone"), *common]) == 0
    assert main(["evaluate", "--model", str(fused), "--features", str(bench["stores"][0]),
                 "--features", str(bench["stores"][1]), "--out", str(tmp_path / "fused_eval"),
                 *common]) == 0
    alone = json.loads((tmp_path / "alone" / "predictions.json").read_text())
    both = json.loads((tmp_path / "fused_eval" / "predictions.json").read_text())
    assert both == alone  # alpha 1 = the first member alone
    scores = json.loads((tmp_path / "fused_eval" / "scores.json").read_text())
    assert scores["settings"]["features"] == [str(s) for s in bench["stores"]]
    assert "Scores on split `test`" in (fused / "README.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", "--model", str(fused), "--features", str(bench["stores"][0]),
                 "--out", str(tmp_path / "bad"), *common]) == 2
    assert "has 2 member(s) but 1 feature store(s)" in capsys.readouterr().err


def test_train_vocab_from_gives_the_other_models_vocabulary(bench: dict, tmp_path: Path) -> None:
    from s2vt.cli import main

    data = json.loads(bench["annotations"].read_text())
    donor = _save_member(tmp_path / "donor", Vocabulary.build(
        [s["caption"] for s in data["sentences"][:20]] + ["a purple star"]), 0, 30)
    out = tmp_path / "trained"
    assert main(["train", "--features", str(bench["stores"][1]), "--annotations",
                 str(bench["annotations"]), "--out", str(out), "--vocab-from", str(donor),
                 "--epochs", "1", "--device", "cpu", "--no-progress",
                 "--set", "model.embed_size=8", "--set", "model.hidden_size=8"]) == 0
    assert json.loads((out / "vocab.json").read_text())["itos"] == \
        json.loads((donor / "vocab.json").read_text())["itos"]
    # And so the two can be fused.
    from s2vt.fusing import fuse

    assert fuse([donor, out], tmp_path / "fused", alpha=0.5).weights == [0.5, 0.5]


# --------------------------------------------------------------------------- raw videos
def _flow_stream(size: int) -> dict:
    from s2vt.flow import FlowConfig, stream_meta

    return stream_meta("flow", FlowConfig(method="farneback", size=size))


def _needs_farneback() -> None:
    from s2vt.flow.registry import method_unavailable

    reason = method_unavailable("farneback")
    if reason:
        pytest.skip(reason)


@pytest.mark.parametrize(("second", "reads"), [("rgb", 1), ("flow", 2), ("flow_other_size", 3)])
def test_a_raw_video_is_decoded_once_into_each_members_own_features(
    tmp_path: Path, make_video, monkeypatch: pytest.MonkeyPatch, second: str, reads: int
) -> None:
    """Each member's part of the fused features equals what that member alone makes, and
    the video is read no more often than its most demanding member reads it alone (a flow
    member: its sampled positions, then its frame pairs), plus one read for an RGB member
    of another frame size."""
    import s2vt.flow.frames
    import s2vt.video
    from s2vt.captioner import Captioner
    from s2vt.fusing import fuse

    vocab = _vocab()
    stream = None
    if second != "rgb":
        _needs_farneback()
        # 32 px = the tiny encoder's size: one decoding pass; 48 px: a second pass.
        stream = _flow_stream(32 if second == "flow" else 48)
    first = _save_member(tmp_path / "rgb", vocab, 0, 1)
    other = _save_member(tmp_path / "second", vocab, 1, 2, stream=stream)
    fused = fuse([first, other], tmp_path / "fused", alpha=0.5).out
    clip = make_video("moving.mp4", num_frames=24, width=64, height=48)
    captioner = Captioner.from_pretrained(fused)
    calls = []
    original = s2vt.video.read_clip

    def counted(*args, **kwargs):
        calls.append(args[2])
        return original(*args, **kwargs)

    monkeypatch.setattr(s2vt.video, "read_clip", counted)
    monkeypatch.setattr(s2vt.flow.frames, "read_clip", counted)
    pairs_original = s2vt.flow.frames.read_frames

    def counted_pairs(*args, **kwargs):  # the other frames of a flow member's pairs
        calls.append(args[2])
        return pairs_original(*args, **kwargs)

    monkeypatch.setattr(s2vt.flow.frames, "read_frames", counted_pairs)
    parts = captioner.video_features(clip)
    assert len(calls) == reads
    monkeypatch.undo()
    assert len(parts) == 2
    for part, member in zip(parts, (first, other), strict=True):
        alone = Captioner.from_pretrained(member).video_features(clip)
        assert part.dtype == np.float16 and part.shape == alone.shape
        np.testing.assert_array_equal(part, alone)
    if second != "rgb":  # flow features differ from the frames' (the stream is really flow)
        assert not np.array_equal(parts[1][:, :48], Captioner.from_pretrained(
            _save_member(tmp_path / "rgb_grid", vocab, 1, 2)).video_features(clip)[:, :48])


@pytest.mark.parametrize("second", ["rgb", "flow"])
def test_caption_prints_a_caption_for_a_raw_video_with_a_fused_dir(
    tmp_path: Path, make_video, capsys: pytest.CaptureFixture, second: str
) -> None:
    from s2vt.captioner import Captioner
    from s2vt.cli import main
    from s2vt.fusing import fuse

    stream = None
    if second == "flow":
        _needs_farneback()
        stream = _flow_stream(32)
    vocab = _vocab()
    first = _save_member(tmp_path / "rgb", vocab, 0, 3)
    other = _save_member(tmp_path / "other", vocab, 1, 4, stream=stream)
    fused = fuse([first, other], tmp_path / "fused", alpha=0.4).out
    clips = [make_video("a.mp4", num_frames=20, width=64, height=48),
             make_video("b.webm", num_frames=16, width=48, height=64)]
    captioner = Captioner.from_pretrained(fused, beam_size=2)
    expected = [captioner.caption_features([captioner.video_features(c)])[0] for c in clips]
    assert all(expected)
    assert main(["caption", str(clips[0]), "--model", str(fused), "--beam-size", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"{clips[0]}\t{expected[0]}"
    # Two videos: decoded in a worker process, with the same captions.
    assert main(["caption", str(clips[0]), str(clips[1]), "--model", str(fused),
                 "--beam-size", "2", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [item["caption"] for item in printed] == expected


# --------------------------------------------------------------------------- recipes
def test_flow_configs_match_their_rgb_streams() -> None:
    """Each benchmark's flow stream samples the frames its RGB stream samples and renders
    flow at the RGB encoder's input side, so a fused model reuses one decoded clip."""
    from s2vt.config import load_config
    from s2vt.extraction import ExtractConfig
    from s2vt.pipelines import CONFIG_ROOT
    from s2vt.training import TrainConfig

    folders = sorted(p.parent for p in CONFIG_ROOT.glob("*/extract_flow.yaml"))
    assert [f.name for f in folders] == ["demo", "msrvtt", "msvd", "vatex"]
    for folder in folders:
        rgb = load_config(ExtractConfig, folder / "extract.yaml", [])
        flow = load_config(ExtractConfig, folder / "extract_flow.yaml", [])
        assert (rgb.stream, flow.stream) == ("rgb", "flow"), folder
        assert flow.sampling == rgb.sampling, folder
        assert flow.flow.gap == 1, folder  # the paper's consecutive frames
        if folder.name != "demo":  # the benchmarks: the RGB stream's CNN on flow images
            assert flow.encoder == rgb.encoder, folder
            assert flow.flow.size == 224, folder
    demo = load_config(TrainConfig, CONFIG_ROOT / "demo" / "s2vt_flow.yaml", [])
    assert demo.model.name == "s2vt" and demo.vocab_from is None  # the recipe sets it


def test_streams_are_parsed_with_clear_errors() -> None:
    from s2vt.pipelines.benchmarks import parse_streams

    assert parse_streams("rgb") == ("rgb",)
    assert parse_streams("flow, rgb") == ("rgb", "flow")
    with pytest.raises(S2VTError, match="unknown stream 'depth'"):
        parse_streams("rgb,depth")
    with pytest.raises(S2VTError, match="--streams rgb,flow"):
        parse_streams("flow")


def test_run_with_the_flow_stream_trains_both_streams_and_their_fusion(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _needs_farneback()
    from s2vt.cli import main
    from s2vt.synth import synthesize

    root = synthesize(tmp_path / "data", num_videos=30, seed=1).parent
    out = tmp_path / "run"
    tiny = []
    for stage in ("train", "train_flow"):
        tiny += ["--set", f"{stage}.epochs=1", "--set", f"{stage}.batch_size=8",
                 "--set", f"{stage}.model.hidden_size=16", "--set", f"{stage}.model.embed_size=8",
                 "--set", f"{stage}.save_every_steps=0"]
    for stage in ("extract", "extract_flow"):
        tiny += ["--set", f"{stage}.encoder.name=tiny", "--set", f"{stage}.workers=1"]
    args = ["run", "msrvtt", "--root", str(root), "--out", str(out), "--no-progress",
            "--no-java", "--beam-size", "2", "--no-report", "--streams", "rgb,flow",
            "--set", "extract_flow.flow.size=32", *tiny]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "rgb      flow  rgb+flow" in printed
    flow_meta = json.loads((out / "flow" / "features" / "meta.json").read_text())
    assert flow_meta["stream"]["name"] == "flow"
    assert json.loads((out / "flow" / "model" / "config.json").read_text())["stream"]["name"] \
        == "flow"
    # The flow model speaks the RGB model's words, and the fused dir holds both.
    assert (out / "flow" / "model" / "vocab.json").read_text() == \
        (out / "model" / "vocab.json").read_text()
    fused = load_fused_dir(out / "fused" / "model")
    assert [m.stream["name"] for m in fused.members] == ["rgb", "flow"]
    assert len(fused.info["tuning"]["grid"]) == 11
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["streams"]) == {"rgb", "flow", "rgb+flow"}
    for label, folder in (("flow", "flow"), ("rgb+flow", "fused")):
        saved = json.loads((out / folder / "test" / "scores.json").read_text())
        assert summary["streams"][label]["CIDEr"] == saved["CIDEr"]
    assert summary["counts"]["fusion_alpha"] == fused.info["alpha"]
    # A rerun reuses every stage.
    assert main(args) == 0
    capsys.readouterr()
    stages = json.loads((out / "summary.json").read_text())["stages_run"]
    assert set(stages) >= {"extract_flow", "train_flow", "fuse", "evaluate_fused"}
    assert not any(stages.values()), stages
