"""Caption search over any model with the two decoding hooks, batched over videos and rows:
greedy search, beam search (its best beam or its N best) and sampling (temperature, top-k,
top-p), each reporting every caption's log-probability under the model.

The searches need only :class:`Decoder` (``init_decoding`` and ``decode_step``), not the
model base class, so the base class can import them and no import runs in a circle.

A row is one hypothesis being extended (a video in greedy search, a beam in beam search,
a sample in sampling); ``rows`` maps each row to its video. Every state tensor has the row
axis first, so a search reorders or copies rows by ``index_select`` on every state tensor,
whatever its other axes hold (LSTM states, a transformer's per-layer key/value caches).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from s2vt.errors import ConfigError
from s2vt.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID

# Named decoding tensors of a batch; every value has the batch (or row) axis first.
State = dict[str, torch.Tensor]

# A model with attention over frames puts this step's weights in its returned state
# under this key, (N, T) with T the padded frame axis; the searches collect them per word.
ATTENTION = "attention"


class Decoder(Protocol):
    """What the searches call on a model (see :class:`CaptionModel`)."""

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        """(B, T, D) features + (B, T) mask -> (memory per video, state per row)."""
        ...

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        """Tokens (N,) of N rows (``rows`` (N,) maps row -> video) -> logits (N, V), state.

        ``state[ATTENTION]`` (N, T), when a model returns it, holds the weights over the
        frames that this step's word was predicted from.
        """
        ...


@dataclass
class Hypothesis:
    """One generated caption.

    Attributes:
        tokens: word ids without <bos>/<eos>.
        log_prob: its log-probability under the model: the sum of the log-softmax of each
            chosen word and of the <eos> (when it was emitted within ``max_len``), at
            temperature 1 and unfiltered, whatever the search's temperature or top-k/p.
        score: what the search ranked it by: ``log_prob / length**length_penalty`` in beam
            search (length counts the words and the <eos>), ``log_prob`` otherwise.
        attention: (len(tokens), T_video) float32 on the CPU, each row the weights over the
            video's real frames that the word was predicted from (rows sum to 1); None for
            a model without attention over frames.
    """

    tokens: list[int]
    log_prob: float
    score: float
    attention: torch.Tensor | None = None


@dataclass(frozen=True)
class DecodingOptions:
    """How captions are searched for (one small object instead of many keyword arguments).

    Attributes:
        beam_size: 1 = greedy search, k > 1 = beam search (ignored when sampling).
        max_len: the most words per caption.
        length_penalty: alpha in ``log_prob / length**alpha`` when beams are compared.
        num_captions: captions per video: the N best beams (N <= beam_size) or N samples.
        sample: draw words at random from the model's distribution instead of searching.
        temperature: sampling temperature; 0 is greedy search exactly.
        top_k: sample only among the k most likely words (0 = all).
        top_p: sample only among the most likely words whose probabilities add up to p
            (nucleus sampling; 1 = all).
        seed: seeds the sampling (None: torch's global generator). The same seed, inputs
            and device give the same captions.

    Raises:
        ConfigError: a value out of range; the message names the option.
    """

    beam_size: int = 5
    max_len: int = 20
    length_penalty: float = 1.0
    num_captions: int = 1
    sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        for key in ("beam_size", "max_len", "num_captions"):
            if getattr(self, key) < 1:
                raise ConfigError(f"decoding option {key} must be >= 1, got {getattr(self, key)}")
        if self.temperature < 0:
            raise ConfigError(f"decoding option temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ConfigError(f"decoding option top_k must be >= 0, got {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"decoding option top_p must be in (0, 1], got {self.top_p}")
        if not self.sample and self.num_captions > self.beam_size:
            raise ConfigError(f"decoding option num_captions ({self.num_captions}) must be <= "
                              f"beam_size ({self.beam_size}) with beam search: a search keeps "
                              "only beam_size hypotheses (or sample instead)")


# Never emitted: padding and <bos> are not words, and an <unk> in a caption reads worse
# than the next-best real word.
_BLOCKED = (PAD_ID, BOS_ID, UNK_ID)


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    """(N, V) logits -> float32 log-probabilities with the blocked tokens at -inf."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    logp[:, list(_BLOCKED)] = float("-inf")
    return logp


def _trim(sequence: list[int]) -> list[int]:
    """Cut a generated id list at its first <eos>."""
    return sequence[: sequence.index(EOS_ID)] if EOS_ID in sequence else sequence


class _Attention:
    """Collects ``state[ATTENTION]`` per step, following the rows as a search reorders them."""

    def __init__(self, feature_mask: torch.Tensor) -> None:
        self.frames = feature_mask.sum(dim=1).tolist()     # real frames per video
        self.steps: torch.Tensor | None = None             # (N, steps, T)

    def add(self, state: State, reorder: torch.Tensor | None = None) -> None:
        """Append this step's weights (``state`` already in the new row order)."""
        weights = state.get(ATTENTION)
        if weights is None:
            return
        weights = weights.detach().float().unsqueeze(1)
        if self.steps is None:
            self.steps = weights
            return
        previous = self.steps if reorder is None else self.steps.index_select(0, reorder)
        self.steps = torch.cat([previous, weights], dim=1)

    def of(self, row: int, video: int, words: int) -> torch.Tensor | None:
        """(words, T_video) weights of one row, on the CPU."""
        if self.steps is None:
            return None
        return self.steps[row, :words, : self.frames[video]].cpu()


def _first_step(model: Decoder, tokens: torch.Tensor, state: State, memory: State,
                rows: torch.Tensor, first: torch.Tensor, copies: int
                ) -> tuple[torch.Tensor, State]:
    """Step 0 when all ``copies`` rows of a video hold the same <bos> hypothesis: step one row
    per video (``first``) and give its logits and state to its copies."""
    logits, state = model.decode_step(
        tokens.index_select(0, first),
        {name: value.index_select(0, first) for name, value in state.items()},
        memory, rows.index_select(0, first), 0)
    logits = logits.repeat_interleave(copies, dim=0)
    state = {name: value.repeat_interleave(copies, dim=0) for name, value in state.items()}
    return logits, state


def greedy_hypotheses(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> list[list[Hypothesis]]:
    """Pick the most likely word at each step for every video at once.

    Returns:
        B lists holding one :class:`Hypothesis` each.
    """
    return sample_search(model, features, feature_mask, max_len, temperature=0.0)


def greedy_search(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
                  max_len: int) -> list[list[int]]:
    """Greedy search.

    Returns:
        B lists of token ids without <bos>/<eos>.
    """
    return [found[0].tokens for found in greedy_hypotheses(model, features, feature_mask,
                                                           max_len)]


def _filter(scores: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set the (N, V) scores of words outside the top-k / the top-p nucleus to -inf."""
    if 0 < top_k < scores.shape[-1]:
        keep = torch.zeros_like(scores, dtype=torch.bool)
        keep.scatter_(1, scores.topk(top_k, dim=-1).indices, True)
        scores = scores.masked_fill(~keep, float("-inf"))
    if top_p < 1.0:
        ordered, order = scores.sort(dim=-1, descending=True)
        probs = ordered.softmax(dim=-1)
        # A word stays when the words before it hold less than p: the most likely word
        # always stays, and the nucleus is the smallest set reaching p.
        outside = probs.cumsum(dim=-1) - probs >= top_p
        drop = torch.zeros_like(outside).scatter_(1, order, outside)
        scores = scores.masked_fill(drop, float("-inf"))
    return scores


def sample_search(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
                  max_len: int, *, temperature: float = 1.0, top_k: int = 0,
                  top_p: float = 1.0, num_captions: int = 1,
                  generator: torch.Generator | None = None) -> list[list[Hypothesis]]:
    """Draw ``num_captions`` captions per video, word by word, all rows stepping together.

    Each word is drawn from ``softmax(log_probs / temperature)`` restricted to the top-k
    words and then to the top-p nucleus. ``temperature=0`` takes the most likely word:
    greedy search, exactly, using no random numbers.

    Args:
        model: any :class:`Decoder`.
        features: (B, T, D) frame features, right-padded.
        feature_mask: (B, T) bool, True for real frames.
        max_len: the most words per caption.
        temperature: >= 0.
        top_k: 0 = no top-k filter.
        top_p: in (0, 1]; 1 = no nucleus filter.
        num_captions: samples per video.
        generator: the random source (on the features' device); None = torch's global one.
            A fixed seed gives the same captions for the same batch on the same device.
    Returns:
        B lists of ``num_captions`` hypotheses, most probable first (ties keep draw order).
    """
    device = features.device
    batch, copies = features.shape[0], num_captions
    n = batch * copies
    memory, state = model.init_decoding(features, feature_mask, max_len)
    rows = torch.arange(batch, device=device).repeat_interleave(copies)
    first = torch.arange(batch, device=device) * copies
    state = {name: value.index_select(0, rows) for name, value in state.items()}
    tokens = torch.full((n,), BOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    log_prob = torch.zeros(n, device=device)
    attention = _Attention(feature_mask)
    out = []
    for step in range(max_len):
        if step == 0 and copies > 1:
            logits, state = _first_step(model, tokens, state, memory, rows, first, copies)
        else:
            logits, state = model.decode_step(tokens, state, memory, rows, step)
        attention.add(state)
        logp = _log_probs(logits)
        if temperature == 0.0:
            tokens = logp.argmax(dim=-1)
        else:
            scores = _filter(logp / temperature, top_k, top_p)
            tokens = torch.multinomial(scores.softmax(dim=-1), 1, generator=generator)
            tokens = tokens.squeeze(1)
        tokens = tokens.masked_fill(finished, EOS_ID)
        picked = logp.gather(1, tokens.unsqueeze(1)).squeeze(1)
        log_prob = log_prob + picked.masked_fill(finished, 0.0)
        out.append(tokens)
        finished = finished | (tokens == EOS_ID)
        if bool(finished.all()):
            break
    ids = torch.stack(out, dim=1).tolist()
    values = log_prob.tolist()
    results: list[list[Hypothesis]] = []
    for video in range(batch):
        found = []
        for row in range(video * copies, (video + 1) * copies):
            words = _trim(ids[row])
            found.append(Hypothesis(words, values[row], values[row],
                                    attention.of(row, video, len(words))))
        found.sort(key=lambda h: -h.score)
        results.append(found)
    return results


def beam_hypotheses(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
                    beam_size: int, max_len: int, length_penalty: float,
                    num_captions: int = 1) -> list[list[Hypothesis]]:
    """Beam search with ``beam_size`` beams per video; all B*k beams step together.

    A beam that emits <eos> stays in the beam with a frozen score and competes with live
    beams through its length-normalised score ``logp / length**length_penalty`` (length
    counts the words plus <eos>). With ``beam_size=1`` this is exactly greedy search.

    Args:
        num_captions: how many of the final beams to return (<= ``beam_size``).
    Returns:
        B lists of hypotheses, best score first: the ``num_captions`` best final beams,
        which are distinct captions. A list is shorter only when fewer beams have a finite
        score (a vocabulary with fewer words than beams).
    """
    if not 1 <= num_captions <= beam_size:
        raise ValueError(f"num_captions must be in [1, beam_size={beam_size}], "
                         f"got {num_captions}")
    device = features.device
    batch, k = features.shape[0], beam_size
    n = batch * k
    memory, state = model.init_decoding(features, feature_mask, max_len)
    rows = torch.arange(batch, device=device).repeat_interleave(k)    # row -> video
    state = {name: value.index_select(0, rows) for name, value in state.items()}
    tokens = torch.full((n,), BOS_ID, dtype=torch.long, device=device)
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")    # all beams start identical: keep only the first alive
    lengths = torch.zeros(n, device=device)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    history = torch.empty(n, 0, dtype=torch.long, device=device)
    offsets = (torch.arange(batch, device=device) * k).unsqueeze(1)
    first = offsets.view(-1)                                         # beam 0 of each video
    attention = _Attention(feature_mask)
    for step in range(max_len):
        if step == 0:
            logits, state = _first_step(model, tokens, state, memory, rows, first, k)
        else:
            logits, state = model.decode_step(tokens, state, memory, rows, step)
        logp = _log_probs(logits)
        vocab = logp.shape[-1]
        # A finished beam may only "emit" <eos> again, at no cost and without growing.
        logp[finished] = float("-inf")
        logp[finished, EOS_ID] = 0.0
        new_lengths = lengths + (~finished).float()
        total = scores.view(n, 1) + logp
        norm = new_lengths.clamp_min(1.0).pow(length_penalty).unsqueeze(1)
        ranked = (total / norm).view(batch, k * vocab)
        _, flat = ranked.topk(k, dim=1)                  # (B, k)
        beam = flat // vocab
        word = flat % vocab
        parent = (offsets + beam).view(-1)               # (N,) rows of the chosen parents
        scores = total.view(batch, k * vocab).gather(1, flat)
        lengths = new_lengths.index_select(0, parent)
        finished = finished.index_select(0, parent) | (word.view(-1) == EOS_ID)
        history = torch.cat([history.index_select(0, parent), word.view(-1, 1)], dim=1)
        state = {name: value.index_select(0, parent) for name, value in state.items()}
        # The weights the parent predicted this word from, after the parent's history.
        attention.add(state, reorder=parent)
        tokens = word.view(-1)
        if bool(finished.all()):
            break
    log_prob = scores.view(n)
    final = log_prob / lengths.clamp_min(1.0).pow(length_penalty)
    order = final.view(batch, k).argsort(dim=1, descending=True, stable=True)
    ids, values, ranked_by = history.tolist(), log_prob.tolist(), final.tolist()
    results: list[list[Hypothesis]] = []
    for video in range(batch):
        found = []
        for index in order[video].tolist():
            row = video * k + index
            if len(found) == num_captions or ranked_by[row] == float("-inf"):
                break
            words = _trim(ids[row])
            found.append(Hypothesis(words, values[row], ranked_by[row],
                                    attention.of(row, video, len(words))))
        results.append(found)
    return results


def beam_search(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
                beam_size: int, max_len: int, length_penalty: float) -> list[list[int]]:
    """Beam search (see :func:`beam_hypotheses`).

    Returns:
        B lists of token ids without <bos>/<eos>: each video's best hypothesis.
    """
    return [found[0].tokens for found in beam_hypotheses(model, features, feature_mask,
                                                         beam_size, max_len, length_penalty)]


def search(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
           options: DecodingOptions) -> list[list[Hypothesis]]:
    """Caption a batch the way ``options`` says (greedy, beam or sampling).

    Call it under ``torch.no_grad()`` / ``inference_mode`` with the model in eval mode
    (:meth:`CaptionModel.search` does both).

    Returns:
        B lists of up to ``options.num_captions`` hypotheses, best first.
    """
    if options.sample:
        generator = None
        if options.seed is not None:
            generator = torch.Generator(device=features.device).manual_seed(options.seed)
        return sample_search(model, features, feature_mask, options.max_len,
                             temperature=options.temperature, top_k=options.top_k,
                             top_p=options.top_p, num_captions=options.num_captions,
                             generator=generator)
    if options.beam_size == 1:
        return greedy_hypotheses(model, features, feature_mask, options.max_len)
    return beam_hypotheses(model, features, feature_mask, options.beam_size, options.max_len,
                           options.length_penalty, options.num_captions)
