"""Caption models: shapes, exact masking, overfitting, greedy and beam search."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from s2vt.errors import ConfigError
from s2vt.models import ModelConfig, build_model, model_names
from s2vt.models.inputs import fit_frames, pad_frames
from s2vt.text import BOS_ID, EOS_ID, PAD_ID, Vocabulary

# Every registered model, so a newly registered one cannot skip these tests.
NAMES = model_names()


# Tiny models run fastest on one thread (see tests/conftest.py).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_config(name: str, **kwargs) -> ModelConfig:
    values = dict(name=name, feature_dim=12, vocab_size=20, embed_size=16, hidden_size=32,
                  dropout=0.0, max_frames=8)
    values.update(kwargs)
    return ModelConfig(**values)


def batch_inputs(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(3, 8, 12, generator=gen)
    mask = torch.zeros(3, 8, dtype=torch.bool)
    for i, length in enumerate([8, 5, 1]):
        mask[i, :length] = True
    tokens = torch.randint(4, 20, (3, 6), generator=gen)
    tokens[:, 0] = BOS_ID
    return features, mask, tokens


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes_and_padding_does_not_matter(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_config(name)).eval()
    features, mask, tokens = batch_inputs()
    logits = model(features, mask, tokens)
    assert logits.shape == (3, 6, 20)
    # garbage in padded frames changes nothing
    noisy = features.clone()
    noisy[~mask] = 1e3
    torch.testing.assert_close(model(noisy, mask, tokens), logits)
    # a video alone (no padding at all) gives the same logits as inside the padded batch
    alone = model(features[1:2, :5], mask[1:2, :5], tokens[1:2])
    torch.testing.assert_close(alone, logits[1:2], atol=1e-5, rtol=1e-5)
    assert model.generate(noisy, mask, max_len=5) == model.generate(features, mask, max_len=5)


@pytest.mark.parametrize("name", NAMES)
def test_decode_steps_match_teacher_forced_forward(name: str) -> None:
    torch.manual_seed(1)
    model = build_model(tiny_config(name)).eval()
    features, mask, tokens = batch_inputs(1)
    logits = model(features, mask, tokens)
    memory, state = model.init_decoding(features, mask, tokens.shape[1])
    rows = torch.arange(3)
    for step in range(tokens.shape[1]):
        step_logits, state = model.decode_step(tokens[:, step], state, memory, rows, step)
        torch.testing.assert_close(step_logits, logits[:, step], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_decode_steps_match_forward_with_shared_videos_and_beam_rows(name: str) -> None:
    """The step hooks as a training objective uses them (scheduled sampling feeds its own
    words through them): rows that repeat and reorder videos, with ``video_index`` on the
    teacher-forced side, still give forward's logits."""
    torch.manual_seed(4)
    model = build_model(tiny_config(name)).eval()
    features, mask, _ = batch_inputs(4)
    rows = torch.tensor([2, 0, 0, 1, 2])
    tokens = torch.randint(4, 20, (5, 6), generator=torch.Generator().manual_seed(4))
    tokens[:, 0] = BOS_ID
    logits = model(features, mask, tokens, rows)
    memory, state = model.init_decoding(features, mask, tokens.shape[1])
    state = {key: value.index_select(0, rows) for key, value in state.items()}
    for step in range(tokens.shape[1]):
        step_logits, state = model.decode_step(tokens[:, step], state, memory, rows, step)
        torch.testing.assert_close(step_logits, logits[:, step], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_beam_size_one_equals_greedy_and_beams_are_valid(name: str) -> None:
    torch.manual_seed(2)
    model = build_model(tiny_config(name)).eval()
    features, mask, _ = batch_inputs(2)
    greedy = model.generate(features, mask, beam_size=1, max_len=7)
    from s2vt.models.decoding import beam_search

    assert beam_search(model, features, mask, 1, 7, 1.0) == greedy
    beams = model.generate(features, mask, beam_size=4, max_len=7)
    assert len(beams) == 3
    for seq in beams + greedy:
        assert len(seq) <= 7 and all(4 <= t < 20 for t in seq)


@pytest.mark.parametrize("name", NAMES)
def test_batched_beam_search_gives_each_video_what_it_gets_alone(name: str) -> None:
    """Videos share the batch (and the first step is taken once per video, not per beam)
    without changing any video's caption."""
    torch.manual_seed(3)
    model = build_model(tiny_config(name)).eval()
    features, mask, _ = batch_inputs(2)
    together = model.generate(features, mask, beam_size=3, max_len=7)
    alone = [model.generate(features[i:i + 1], mask[i:i + 1], beam_size=3, max_len=7)[0]
             for i in range(len(features))]
    assert together == alone


def test_standardisation_buffers_are_used_and_saved() -> None:
    model = build_model(tiny_config("s2vt"))
    assert "feature_mean" in model.state_dict() and "feature_std" in model.state_dict()
    features, mask, tokens = batch_inputs()
    model.eval()
    before = model(features, mask, tokens)
    model.set_feature_stats(torch.full((12,), 0.5), torch.full((12,), 2.0))
    assert not torch.allclose(model(features, mask, tokens), before)
    torch.testing.assert_close(model(features * 2.0 + 0.5, mask, tokens), before)


def test_bad_inputs_and_unknown_model() -> None:
    model = build_model(tiny_config("s2vt"))
    features, mask, tokens = batch_inputs()
    with pytest.raises(ValueError, match="right-padded"):
        model(features, mask.flip(1), tokens)
    with pytest.raises(ValueError, match="features must be"):
        model(features[..., :5], mask, tokens)
    with pytest.raises(ConfigError, match=f"unknown model 'lstm'.*{', '.join(NAMES)}"):
        build_model(tiny_config("lstm"))


def test_registry_is_what_the_tests_iterate() -> None:
    """The parametrized tests above take their names from the registry, which holds at
    least the paper's model, the baseline, the attention model and the transformer."""
    from s2vt.models import MODELS

    assert set(NAMES) == set(MODELS)
    assert {"s2vt", "meanpool", "s2vt_att", "transformer"} <= set(NAMES)


@pytest.mark.parametrize(("key", "value"), [("embed_size", 0), ("hidden_size", 0),
                                            ("max_frames", 0), ("feature_dim", -1),
                                            ("vocab_size", -1), ("dropout", 1.0),
                                            ("encoder_layers", 0), ("decoder_layers", 0),
                                            ("num_heads", 0)])
def test_bad_model_config_is_a_config_error_naming_the_key(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"^model\.{key} must be"):
        ModelConfig(**{key: value})


def test_fit_frames_keeps_short_videos_and_subsamples_long_ones_evenly() -> None:
    short = np.arange(10, dtype=np.float16).reshape(5, 2)
    assert fit_frames(short, 5) is short
    long = np.arange(20, dtype=np.float16).reshape(10, 2)
    fitted = fit_frames(long, 4)
    # rows 0, 3, 6, 9: the first and the last frame, evenly spaced between
    np.testing.assert_array_equal(fitted[:, 0], [0, 6, 12, 18])
    assert fitted.dtype == np.float16 and fitted.shape == (4, 2)


def test_pad_frames_right_pads_with_zeros_and_masks_real_frames() -> None:
    videos = [torch.full((3, 2), 1.5, dtype=torch.float16), np.full((1, 2), -2.0, np.float32),
              torch.arange(8.0).reshape(4, 2)]
    frames, mask = pad_frames(videos)
    assert frames.shape == (3, 4, 2) and frames.dtype == torch.float32
    assert mask.dtype == torch.bool
    assert mask.tolist() == [[True] * 3 + [False], [True] + [False] * 3, [True] * 4]
    assert torch.equal(frames[0, :3], torch.full((3, 2), 1.5))
    assert torch.equal(frames[1, 0], torch.tensor([-2.0, -2.0]))
    assert torch.equal(frames[2], torch.arange(8.0).reshape(4, 2))
    assert not frames[~mask].any()
    with pytest.raises(ValueError, match="at least one video"):
        pad_frames([])
    with pytest.raises(ValueError, match="one D"):
        pad_frames([torch.zeros(2, 3), torch.zeros(2, 4)])


CAPTIONS = [
    "a red circle moves left",
    "a blue square moves right",
    "a green triangle spins",
    "a red square bounces up and down",
    "two blue circles",
    "a green circle moves left slowly",
]


@pytest.mark.parametrize("name", NAMES)
def test_overfit_then_generate_exact_captions(name: str) -> None:
    torch.manual_seed(0)
    vocab = Vocabulary.build(CAPTIONS)
    config = tiny_config(name, vocab_size=len(vocab), embed_size=32, hidden_size=64)
    model = build_model(config)
    n = len(CAPTIONS)
    features = torch.randn(n, 8, 12)
    mask = torch.zeros(n, 8, dtype=torch.bool)
    for i in range(n):
        mask[i, : 3 + i % 6] = True
    encoded = [vocab.encode(c, add_bos=True, add_eos=True) for c in CAPTIONS]
    length = max(map(len, encoded))
    seqs = torch.full((n, length), PAD_ID, dtype=torch.long)
    for i, ids in enumerate(encoded):
        seqs[i, : len(ids)] = torch.tensor(ids)
    inputs, targets = seqs[:, :-1], seqs[:, 1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(150):
        logits = model(features, mask, inputs)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05
    for beam_size in (1, 3):
        out = model.generate(features, mask, beam_size=beam_size, max_len=10)
        assert [vocab.decode(ids) for ids in out] == CAPTIONS
    assert model.training  # generate restores the mode
    assert all(EOS_ID not in ids for ids in out)


@pytest.mark.parametrize("name", NAMES)
def test_cpu_bf16_autocast_runs_and_stays_close(name: str) -> None:
    """LSTMs fall back to fp32 under CPU autocast (oneDNN bf16 LSTM fails or crawls)."""
    torch.manual_seed(3)
    model = build_model(tiny_config(name)).eval()
    features, mask, tokens = batch_inputs(3)
    reference = model(features, mask, tokens)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(features, mask, tokens)
        generated = model.generate(features, mask, beam_size=2, max_len=5)
    torch.testing.assert_close(logits.float(), reference, atol=0.05, rtol=0.05)
    assert len(generated) == 3
    logits.float().sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", NAMES)
def test_shared_video_pass_equals_one_pass_per_caption(name: str) -> None:
    """forward(..., video_index) runs each video once and gives the per-caption logits."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, feature_dim=6, vocab_size=12, embed_size=8,
                                    hidden_size=10, dropout=0.0)).eval()
    videos = torch.randn(2, 5, 6)
    video_mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    video_index = torch.tensor([1, 0, 1, 1])
    tokens = torch.randint(4, 12, (4, 7))
    tokens[:, 0] = 1
    shared = model(videos, video_mask, tokens, video_index)
    per_caption = model(videos[video_index], video_mask[video_index], tokens)
    assert torch.allclose(shared, per_caption, atol=1e-6)
