"""Greedy and beam search over any model with the two decoding hooks, batched over videos
and beams.

The searches need only :class:`Decoder` (``init_decoding`` and ``decode_step``), not the
model base class, so the base class can import them and no import runs in a circle.
"""

from __future__ import annotations

from typing import Protocol

import torch

from s2vt.text import BOS_ID, EOS_ID, PAD_ID, UNK_ID

# Named decoding tensors of a batch; every value has the batch (or row) axis first.
State = dict[str, torch.Tensor]


class Decoder(Protocol):
    """What greedy and beam search call on a model (see :class:`CaptionModel`)."""

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        """(B, T, D) features + (B, T) mask -> (memory per video, state per row)."""
        ...

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        """Tokens (N,) of N rows (``rows`` (N,) maps row -> video) -> logits (N, V), state."""
        ...

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


def greedy_search(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
                  max_len: int) -> list[list[int]]:
    """Pick the most likely word at each step for every video at once.

    Returns:
        B lists of token ids without <bos>/<eos>.
    """
    batch = features.shape[0]
    memory, state = model.init_decoding(features, feature_mask, max_len)
    rows = torch.arange(batch, device=features.device)
    tokens = torch.full((batch,), BOS_ID, dtype=torch.long, device=features.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
    out = []
    for step in range(max_len):
        logits, state = model.decode_step(tokens, state, memory, rows, step)
        tokens = _log_probs(logits).argmax(dim=-1)
        tokens = tokens.masked_fill(finished, EOS_ID)
        out.append(tokens)
        finished |= tokens == EOS_ID
        if bool(finished.all()):
            break
    ids = torch.stack(out, dim=1).tolist()
    return [_trim(seq) for seq in ids]


def beam_search(model: Decoder, features: torch.Tensor, feature_mask: torch.Tensor,
                beam_size: int, max_len: int, length_penalty: float) -> list[list[int]]:
    """Beam search with ``beam_size`` beams per video; all B*k beams step together.

    A beam that emits <eos> stays in the beam with a frozen score and competes with live
    beams through its length-normalised score ``logp / length**length_penalty`` (length
    counts the words plus <eos>). With ``beam_size=1`` this is exactly greedy search.

    Returns:
        B lists of token ids without <bos>/<eos>: each video's best hypothesis.
    """
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
    for step in range(max_len):
        if step == 0:
            # All k beams of a video still hold the same <bos> hypothesis: step one row per
            # video and give its result to the k beams (the others score -inf anyway).
            logits, state = model.decode_step(
                tokens.index_select(0, first),
                {name: value.index_select(0, first) for name, value in state.items()},
                memory, rows.index_select(0, first), step)
            logits = logits.repeat_interleave(k, dim=0)
            state = {name: value.repeat_interleave(k, dim=0) for name, value in state.items()}
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
        tokens = word.view(-1)
        if bool(finished.all()):
            break
    final = scores.view(n) / lengths.clamp_min(1.0).pow(length_penalty)
    best = final.view(batch, k).argmax(dim=1) + offsets.squeeze(1)
    return [_trim(seq) for seq in history.index_select(0, best).tolist()]
