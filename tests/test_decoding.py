"""Caption search: log-probabilities, N-best beams, sampling, attention weights, the
transformer's key/value caches, and the decoding flags of ``s2vt caption``."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

from s2vt.errors import ConfigError
from s2vt.models import ModelConfig, build_model, model_names
from s2vt.models.decoding import (
    ATTENTION,
    DecodingOptions,
    Hypothesis,
    beam_hypotheses,
    beam_search,
    greedy_hypotheses,
    greedy_search,
    sample_search,
    search,
)
from s2vt.text import BOS_ID, EOS_ID, Vocabulary

NAMES = model_names()

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_model(name: str, seed: int = 0, **kwargs):
    values = dict(name=name, feature_dim=12, vocab_size=20, embed_size=16, hidden_size=32,
                  dropout=0.0, max_frames=8)
    values.update(kwargs)
    torch.manual_seed(seed)
    return build_model(ModelConfig(**values)).eval()


def inputs(seed: int = 0, lengths: tuple[int, ...] = (8, 5, 1)):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(len(lengths), 8, 12, generator=gen)
    mask = torch.zeros(len(lengths), 8, dtype=torch.bool)
    for i, length in enumerate(lengths):
        mask[i, :length] = True
    return features, mask


def teacher_forced_log_prob(model, features, mask, video: int, tokens: list[int],
                            max_len: int) -> float:
    """log p(tokens [+ <eos> if it fits in max_len]) by one teacher-forced forward pass."""
    targets = tokens + ([EOS_ID] if len(tokens) < max_len else [])
    ids = torch.tensor([[BOS_ID, *targets]])
    with torch.no_grad():
        logits = model(features[video:video + 1], mask[video:video + 1], ids[:, :-1])
    logp = torch.log_softmax(logits.float(), dim=-1)
    return float(logp[0].gather(1, ids[0, 1:, None]).sum())


def check_log_probs(model, features, mask, found: list[list[Hypothesis]], max_len: int) -> None:
    for video, hypotheses in enumerate(found):
        for hypothesis in hypotheses:
            expected = teacher_forced_log_prob(model, features, mask, video, hypothesis.tokens,
                                               max_len)
            assert hypothesis.log_prob == pytest.approx(expected, abs=1e-4)


# --------------------------------------------------------------------------- every model
@pytest.mark.parametrize("name", NAMES)
def test_every_search_reports_the_log_prob_the_model_gives_its_caption(name: str) -> None:
    """Greedy, each of the N best beams and each sample: the reported log-probability is
    the teacher-forced one (so beam reordering kept every row's state, caches included)."""
    model = tiny_model(name, seed=4)
    features, mask = inputs(4)
    with torch.no_grad():
        greedy = greedy_hypotheses(model, features, mask, 6)
        beams = beam_hypotheses(model, features, mask, 4, 6, 1.0, num_captions=4)
        samples = sample_search(model, features, mask, 6, num_captions=3,
                                generator=torch.Generator().manual_seed(0))
    for found in (greedy, beams, samples):
        check_log_probs(model, features, mask, found, 6)
    assert [h[0].tokens for h in greedy] == model.generate(features, mask, max_len=6)


@pytest.mark.parametrize("name", NAMES)
def test_n_best_beams_are_sorted_distinct_and_led_by_the_best_beam(name: str) -> None:
    model = tiny_model(name, seed=5)
    features, mask = inputs(5)
    with torch.no_grad():
        found = beam_hypotheses(model, features, mask, 5, 7, 1.0, num_captions=5)
        best = beam_search(model, features, mask, 5, 7, 1.0)
    for hypotheses, top in zip(found, best, strict=True):
        assert len(hypotheses) == 5
        scores = [h.score for h in hypotheses]
        assert scores == sorted(scores, reverse=True)
        assert len({tuple(h.tokens) for h in hypotheses}) == 5
        assert hypotheses[0].tokens == top
        for h in hypotheses:  # the score is the length-normalised log-probability
            length = len(h.tokens) + (len(h.tokens) < 7)
            assert h.score == pytest.approx(h.log_prob / length, abs=1e-5)
    three = model.search(features, mask, DecodingOptions(beam_size=5, max_len=7,
                                                         num_captions=3))
    assert [[h.tokens for h in v] for v in three] == [[h.tokens for h in v[:3]] for v in found]


@pytest.mark.parametrize("name", NAMES)
def test_sampling_with_a_seed_is_reproducible_and_seeds_differ(name: str) -> None:
    model = tiny_model(name, seed=6)
    features, mask = inputs(6)

    def draw(seed: int) -> list[list[list[int]]]:
        options = DecodingOptions(sample=True, num_captions=4, max_len=6, seed=seed)
        return [[h.tokens for h in v] for v in model.search(features, mask, options)]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


@pytest.mark.parametrize("name", NAMES)
def test_zero_temperature_top_k_one_and_tiny_top_p_are_greedy(name: str) -> None:
    model = tiny_model(name, seed=7)
    features, mask = inputs(7)
    with torch.no_grad():
        greedy = greedy_search(model, features, mask, 7)
        gen = torch.Generator().manual_seed(3)
        for settings in ({"temperature": 0.0}, {"temperature": 1e-4}, {"top_k": 1},
                         {"top_p": 1e-6}, {"temperature": 5.0, "top_k": 1}):
            found = sample_search(model, features, mask, 7, num_captions=3, generator=gen,
                                  **settings)
            for hypotheses, tokens in zip(found, greedy, strict=True):
                assert [h.tokens for h in hypotheses] == [tokens] * 3, settings
        # and a hot, unfiltered sampler does leave the greedy path somewhere
        hot = sample_search(model, features, mask, 7, temperature=2.0, num_captions=3,
                            generator=gen)
    assert any(h.tokens != tokens for v, tokens in zip(hot, greedy, strict=True) for h in v)


# --------------------------------------------------------------------------- sampling maths
class FixedDecoder:
    """A Decoder whose every step has the same logits (words 4..7), for sampling maths."""

    def __init__(self, logits: list[float]) -> None:
        self.logits = torch.tensor([-1e9, -1e9, -1e9, -1e9, *logits])

    def init_decoding(self, features, feature_mask, max_len):
        return {}, {"unused": torch.zeros(features.shape[0], 1)}

    def decode_step(self, tokens, state, memory, rows, step):
        return self.logits.expand(len(tokens), -1).clone(), state


def word_frequencies(decoder: FixedDecoder, **settings) -> torch.Tensor:
    features = torch.zeros(1, 1, 1)
    found = sample_search(decoder, features, torch.ones(1, 1, dtype=torch.bool), 1,
                          num_captions=20000, generator=torch.Generator().manual_seed(0),
                          **settings)
    words = torch.tensor([h.tokens[0] for h in found[0]])
    return torch.bincount(words, minlength=8)[4:].float() / len(words)


def test_sampling_draws_from_the_tempered_filtered_distribution() -> None:
    logits = [2.0, 1.0, 0.0, -1.0]
    decoder = FixedDecoder(logits)
    base = torch.tensor(logits)
    torch.testing.assert_close(word_frequencies(decoder), base.softmax(0), atol=0.015, rtol=0)
    torch.testing.assert_close(word_frequencies(decoder, temperature=2.0),
                               (base / 2).softmax(0), atol=0.015, rtol=0)
    top2 = torch.tensor([2.0, 1.0, -math.inf, -math.inf]).softmax(0)
    torch.testing.assert_close(word_frequencies(decoder, top_k=2), top2, atol=0.015, rtol=0)
    # p = (0.64, 0.24, 0.09, 0.03): the nucleus of 0.85 is the first two words
    torch.testing.assert_close(word_frequencies(decoder, top_p=0.85), top2, atol=0.015, rtol=0)
    # the reported log-probability is the model's, untempered and unfiltered
    found = sample_search(decoder, torch.zeros(1, 1, 1), torch.ones(1, 1, dtype=torch.bool), 1,
                          temperature=3.0, top_k=2, num_captions=50,
                          generator=torch.Generator().manual_seed(0))
    logp = torch.log_softmax(torch.tensor([-1e9] * 4 + logits), 0)
    for h in found[0]:
        assert h.log_prob == pytest.approx(float(logp[h.tokens[0]]), abs=1e-5)
    assert [h.log_prob for h in found[0]] == sorted((h.log_prob for h in found[0]), reverse=True)


@pytest.mark.parametrize(("settings", "message"), [
    ({"temperature": -0.1}, "temperature must be >= 0"),
    ({"top_k": -1}, "top_k must be >= 0"),
    ({"top_p": 0.0}, r"top_p must be in \(0, 1\]"),
    ({"top_p": 1.5}, r"top_p must be in \(0, 1\]"),
    ({"num_captions": 0}, "num_captions must be >= 1"),
    ({"beam_size": 3, "num_captions": 4}, r"num_captions \(4\) must be <= beam_size \(3\)"),
    ({"max_len": 0}, "max_len must be >= 1"),
])
def test_bad_decoding_options_are_config_errors(settings: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DecodingOptions(**settings)
    DecodingOptions(sample=True, beam_size=1, num_captions=5)  # sampling is not bound by it


# --------------------------------------------------------------------------- attention
def test_attention_weights_sum_to_one_over_real_frames_and_are_zero_on_padding() -> None:
    model = tiny_model("s2vt_att", seed=8)
    features, mask = inputs(8)
    memory, state = model.init_decoding(features, mask, 4)
    rows = torch.arange(3)
    tokens = torch.full((3,), BOS_ID)
    for step in range(4):
        _, state = model.decode_step(tokens, state, memory, rows, step)
        weights = state[ATTENTION]
        assert weights.shape == (3, 8) and weights.dtype == torch.float32
        assert torch.equal(weights[~mask], torch.zeros(int((~mask).sum())))
        torch.testing.assert_close(weights.sum(1), torch.ones(3), atol=1e-6, rtol=0)
        assert bool((weights[mask] > 0).all())
        tokens = torch.randint(4, 20, (3,))
    # the one-frame video can only look at its frame
    assert weights[2, 0].item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_generation_returns_each_words_frame_weights(beam_size: int) -> None:
    """Per hypothesis a (words, real frames) matrix, each row the weights the model used
    for that word, followed along the beam's own history (replayed here step by step)."""
    model = tiny_model("s2vt_att", seed=9)
    features, mask = inputs(9)
    found = model.search(features, mask, DecodingOptions(beam_size=beam_size, max_len=6,
                                                         num_captions=beam_size))
    for video, hypotheses in enumerate(found):
        frames = int(mask[video].sum())
        for h in hypotheses:
            assert h.attention.shape == (len(h.tokens), frames)
            torch.testing.assert_close(h.attention.sum(1), torch.ones(len(h.tokens)),
                                       atol=1e-6, rtol=0)
            memory, state = model.init_decoding(features[video:video + 1],
                                                mask[video:video + 1], 6)
            previous = BOS_ID
            for step, word in enumerate(h.tokens):
                _, state = model.decode_step(torch.tensor([previous]), state, memory,
                                             torch.zeros(1, dtype=torch.long), step)
                torch.testing.assert_close(h.attention[step], state[ATTENTION][0, :frames],
                                           atol=1e-6, rtol=0)
                previous = word


def test_models_without_attention_return_none() -> None:
    features, mask = inputs(0)
    found = tiny_model("s2vt").search(features, mask, DecodingOptions(beam_size=2))
    assert all(h.attention is None for v in found for h in v)


# --------------------------------------------------------------------------- transformer
def test_transformer_cached_steps_equal_full_recompute_of_the_prefix() -> None:
    model = tiny_model("transformer", seed=10, num_heads=4, encoder_layers=2,
                       decoder_layers=3)
    features, mask = inputs(10)
    tokens = torch.randint(4, 20, (3, 7), generator=torch.Generator().manual_seed(1))
    tokens[:, 0] = BOS_ID
    memory, state = model.init_decoding(features, mask, 7)
    rows = torch.arange(3)
    with torch.no_grad():
        for step in range(7):
            cached, state = model.decode_step(tokens[:, step], state, memory, rows, step)
            full = model(features, mask, tokens[:, : step + 1])[:, step]
            torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)
            assert state["self_k2"].shape == (3, 4, step + 1, 4)
            assert set(state) == {f"self_{kv}{i}" for kv in "kv" for i in range(3)}


def test_transformer_sizes_come_from_the_config() -> None:
    model = tiny_model("transformer", num_heads=2, encoder_layers=1, decoder_layers=3,
                       embed_size=16, hidden_size=24)
    assert len(model.encoder) == 1 and len(model.decoder) == 3
    assert model.decoder[0].self_attention.heads == 2
    assert model.decoder[0].feed_forward[0].out_features == 24
    with pytest.raises(ConfigError, match=r"model.embed_size \(16\) must be divisible by "
                                          r"model.num_heads \(3\)"):
        tiny_model("transformer", num_heads=3)


def test_old_config_without_the_new_keys_still_loads() -> None:
    from s2vt.config import config_from_dict

    old = {"name": "s2vt", "feature_dim": 10, "vocab_size": 9, "embed_size": 8,
           "hidden_size": 12, "dropout": 0.1, "max_frames": 6}
    config = config_from_dict(ModelConfig, old, where="model")
    assert (config.encoder_layers, config.decoder_layers, config.num_heads) == (2, 2, 8)


# --------------------------------------------------------------------------- CLI
TINY_SPEC = {"name": "tiny", "weights": None, "pool": "avg", "image_size": 32,
             "precision": "fp32"}
SAMPLING = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}


@pytest.fixture
def att_model_dir(tmp_path: Path) -> Path:
    """A random s2vt_att model dir reading the tiny encoder's 48-d features."""
    from s2vt.checkpoint import save_model_dir

    vocab = Vocabulary.build(["a square moves to the right", "a red circle spins slowly"])
    config = ModelConfig(name="s2vt_att", feature_dim=48, vocab_size=len(vocab), embed_size=8,
                         hidden_size=8, dropout=0.0, max_frames=8)
    torch.manual_seed(0)
    save_model_dir(tmp_path / "model", build_model(config), config, vocab,
                   encoder_spec=TINY_SPEC, sampling=SAMPLING)
    return tmp_path / "model"


def test_cli_samples_five_captions_with_log_probs(att_model_dir: Path, make_video,
                                                  capsys: pytest.CaptureFixture) -> None:
    from s2vt.cli import main

    video = make_video("clip.mp4", num_frames=12, fps=10, width=64, height=48)
    command = ["caption", str(video), "--model", str(att_model_dir), "--sample",
               "--num-captions", "5", "--seed", "0", "--max-len", "8", "--json"]
    assert main(command) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["path"] == str(video)
    captions = result["captions"]
    assert len(captions) == 5
    assert all(isinstance(c["caption"], str) and c["log_prob"] <= 0 for c in captions)
    assert [c["log_prob"] for c in captions] == sorted((c["log_prob"] for c in captions),
                                                       reverse=True)
    assert (result["caption"], result["log_prob"]) == (captions[0]["caption"],
                                                       captions[0]["log_prob"])
    assert len({c["caption"] for c in captions}) > 1  # an untrained model's samples differ
    assert main(command) == 0
    assert json.loads(capsys.readouterr().out)[0]["captions"] == captions  # same seed

    # text output: one line per caption
    assert main(command[:-1]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{video}\t{c['caption']}" for c in captions]


def test_cli_beam_search_gives_the_n_best_beams(att_model_dir: Path, make_video,
                                                capsys: pytest.CaptureFixture) -> None:
    from s2vt.captioner import Captioner
    from s2vt.cli import main

    video = make_video("clip.mp4", num_frames=12, fps=10, width=64, height=48)
    assert main(["caption", str(video), "--model", str(att_model_dir), "--beam-size", "4",
                 "--num-captions", "3", "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    captions = [c["caption"] for c in result["captions"]]
    assert len(captions) == 3 == len(set(captions))
    captioner = Captioner.from_pretrained(att_model_dir, beam_size=4)
    assert result["caption"] == captioner(video)
    # a single caption: the same JSON as before, plus its log-probability
    assert main(["caption", str(video), "--model", str(att_model_dir), "--json"]) == 0
    (single,) = json.loads(capsys.readouterr().out)
    assert set(single) == {"path", "caption", "log_prob"}


@pytest.mark.parametrize(("flags", "message"), [
    (["--num-captions", "6"], r"--num-captions \(6\) must be <= --beam-size \(5\)"),
    (["--sample", "--top-p", "0"], r"--top-p must be in \(0, 1\]"),
    (["--sample", "--temperature", "-1"], "--temperature must be >= 0"),
    (["--top-k", "3"], "--top-k, --top-p, --temperature and --seed need --sample"),
])
def test_cli_bad_decoding_flags_are_one_line_errors(att_model_dir: Path, tmp_path: Path,
                                                   flags: list[str], message: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    from s2vt.cli import main

    code = main(["caption", str(tmp_path / "clip.mp4"), "--model", str(att_model_dir),
                 *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert re.search(message, err), err


def test_search_dispatches_on_the_options() -> None:
    model = tiny_model("s2vt", seed=11)
    features, mask = inputs(11)
    with torch.no_grad():
        assert [v[0].tokens for v in search(model, features, mask,
                                            DecodingOptions(beam_size=1, max_len=5))] == \
            greedy_search(model, features, mask, 5)
        assert [v[0].tokens for v in search(model, features, mask,
                                            DecodingOptions(beam_size=3, max_len=5))] == \
            beam_search(model, features, mask, 3, 5, 1.0)


# --------------------------------------------------------------------------- report
def test_report_shows_a_frame_heat_row_per_word_for_attention_models() -> None:
    from s2vt.report import ReportItem, render_report

    weights = [[0.7, 0.2, 0.1], [0.0, 0.25, 0.75]]
    items = [ReportItem("v1", "red <circle>", ["a red circle"], {"CIDEr": 1.0},
                        attention=weights),
             ReportItem("v2", "blue square", ["a blue square"], {"CIDEr": 0.5})]
    page = render_report(items, {"CIDEr": 0.75}, {}, rank_metric="CIDEr", num_frames=0)
    assert page.count('<table class="att"') == 1
    table = page[page.index('<table class="att"'):]
    table = table[: table.index("</table>")]
    rows = table.split("<tr>")[1:]
    assert [row.split("</td>")[0] for row in rows] == ["<td>red", "<td>&lt;circle&gt;"]
    assert all(row.count('class="w"') == 3 for row in rows)
    # shaded relative to the row's largest weight; the exact weight on hover
    assert 'rgba(200,60,20,1.00)" title="frame 1: 0.70"' in rows[0]
    assert 'rgba(200,60,20,0.00)" title="frame 1: 0.00"' in rows[1]
    assert 'rgba(200,60,20,0.33)" title="frame 2: 0.25"' in rows[1]


def test_evaluate_report_of_an_attention_model_has_its_heat_rows(tmp_path: Path) -> None:
    """evaluate -> report.html: each card of an s2vt_att model shows one heat row per word
    of its caption, one cell per frame the model read."""
    import numpy as np

    from s2vt.checkpoint import save_model_dir
    from s2vt.evaluation import evaluate
    from s2vt.features import FeatureStore
    from s2vt.synth import synthesize

    annotations = synthesize(tmp_path / "synth", num_videos=12, seed=0)
    data = json.loads(annotations.read_text())
    store = FeatureStore.create(tmp_path / "store", {"feature_dim": 8, "encoder": TINY_SPEC,
                                                     "image_size": 32, "sampling": SAMPLING})
    rng = np.random.default_rng(0)
    for video in data["videos"]:
        store.write(video["video_id"], rng.standard_normal((5, 8)), np.arange(5),
                    np.arange(5) / 10.0)
    vocab = Vocabulary.build([s["caption"] for s in data["sentences"]])
    config = ModelConfig(name="s2vt_att", feature_dim=8, vocab_size=len(vocab), embed_size=8,
                         hidden_size=8, dropout=0.0, max_frames=8)
    torch.manual_seed(0)
    save_model_dir(tmp_path / "model", build_model(config), config, vocab,
                   encoder_spec=TINY_SPEC, sampling=SAMPLING)
    done = evaluate(tmp_path / "model", tmp_path / "store", annotations, tmp_path / "eval",
                    beam_size=2, max_len=6, java=False)
    page = done.files["report"].read_text(encoding="utf-8")
    cards = page.split('<div class="card">')[1:]
    checked = 0
    for card in cards:
        caption = card.split('<div class="caption">')[1].split("</div>")[0]
        words = caption.split() if not caption.startswith("<em>") else []
        if not words:
            continue
        table = card.split('<table class="att"')[1].split("</table>")[0]
        rows = table.split("<tr>")[1:]
        assert len(rows) == len(words)
        assert all(row.count('class="w"') == 5 for row in rows)
        checked += 1
    assert checked >= 2
