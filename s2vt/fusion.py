"""Late fusion of caption models (S2VT's RGB + flow): a weighted sum of word probabilities.

At every decoding step the fused model's word distribution is
``p(w) = sum_i weight_i * p_i(w)`` over its members (two streams: ``alpha * p_rgb(w) +
(1 - alpha) * p_flow(w)``), each member reading its own features. This module holds:

- :class:`FusedDecoder`, the :class:`~s2vt.models.decoding.Decoder` the existing greedy and
  beam searches run on. It is built per batch with every member's ``(features, mask)``;
  its state and memory are the members' own, under prefixed names (``"0.h2"``, ...), so
  the searches' row reordering (``index_select``) reorders every member alike;
- :class:`FusedModel`: the members and their weights, and ``generate``;
- reading the fused model dir (``config.json`` of kind ``fused`` + a copy of each member
  model dir under ``members/``; nothing pickled, every file checked as a model dir's is;
  :func:`s2vt.fusing.save_fused_dir` writes it);
- :func:`read_fused_clip`: a video decoded once for all members (RGB frames and the frame
  pairs of a flow stream), so a raw video gets exactly each member's stored features.

Writing a fused dir and tuning its weight on a validation split is the fuse stage
(:mod:`s2vt.fusing`).
Importing this module imports neither torch nor a decoder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.errors import S2VTError

if TYPE_CHECKING:
    import torch

    from s2vt.checkpoint import LoadedModel
    from s2vt.models.base import CaptionModel
    from s2vt.models.decoding import Decoder, State
    from s2vt.text import Vocabulary
    from s2vt.video import Clip

FUSED_KIND = "fused"
FUSED_FORMAT_VERSION = 1
MEMBERS_DIR = "members"
FUSED_DECODE_FN = "s2vt.fusion:read_fused_clip"
COMBINE_RULE = "p(w) = sum_i weight_i * p_i(w) at every decoding step"
_WEIGHT_TOLERANCE = 1e-6


def check_weights(weights: Sequence[float], members: int) -> list[float]:
    """Validate member weights: one per member, each in [0, 1], summing to 1.

    Returns:
        The weights as floats, rescaled so that they sum to exactly 1 in float arithmetic.
    Raises:
        S2VTError: a wrong count, a negative / non-finite weight, or a sum other than 1.
    """
    values = [float(w) for w in weights]
    if len(values) != members:
        raise S2VTError(f"{len(values)} fusion weights for {members} members")
    if any(not math.isfinite(w) or w < 0 or w > 1 for w in values):
        raise S2VTError(f"fusion weights must lie in [0, 1], got {values}")
    total = sum(values)
    if abs(total - 1.0) > _WEIGHT_TOLERANCE:
        raise S2VTError(f"fusion weights must sum to 1, got {values} (sum {total:g})")
    return [w / total for w in values]


# --------------------------------------------------------------------------- decoding
class FusedDecoder:
    """The fused model as the searches see it, bound to one batch of member inputs.

    ``decode_step`` returns log-probabilities, not logits: the searches apply
    ``log_softmax`` to what it returns, and ``log_softmax`` of log-probabilities that sum
    to one is the identity. Members with weight 0 are not run at all; when only one member
    is left its logits pass through unchanged, so weights (1, 0) decode exactly as that
    member alone does.

    Args:
        members: the member models (their ``init_decoding`` / ``decode_step``).
        weights: one weight per member (see :func:`check_weights`).
        inputs: per member ``(features (B, T_i, D_i), feature_mask (B, T_i))``, same B.
    """

    def __init__(self, members: Sequence[Decoder], weights: Sequence[float],
                 inputs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> None:
        weights = check_weights(weights, len(members))
        if len(inputs) != len(members):
            raise ValueError(f"{len(inputs)} inputs for {len(members)} members")
        batches = {int(features.shape[0]) for features, _ in inputs}
        if len(batches) != 1:
            raise ValueError(f"member inputs hold different batch sizes: {sorted(batches)}")
        self.batch = batches.pop()
        self.active = [i for i, w in enumerate(weights) if w > 0]
        self.members = list(members)
        self.weights = weights
        self.inputs = list(inputs)
        self._names: dict[int, list[str]] = {}

    @property
    def anchor(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The (features, mask) to hand the searches (only their batch size and device count)."""
        return self.inputs[self.active[0]]

    def init_decoding(self, features: torch.Tensor, feature_mask: torch.Tensor,
                      max_len: int) -> tuple[State, State]:
        """Each active member's memory and state, under ``"<member>.<name>"``.

        ``features`` / ``feature_mask`` are the search's arguments; each member reads the
        inputs bound at construction instead, so they only have to describe the same batch.
        """
        if int(features.shape[0]) != self.batch:
            raise ValueError(f"the search runs {features.shape[0]} videos but the fused "
                             f"decoder was built for {self.batch}")
        memory: State = {}
        state: State = {}
        for i in self.active:
            member_memory, member_state = self.members[i].init_decoding(*self.inputs[i],
                                                                         max_len)
            memory.update({f"{i}.{k}": v for k, v in member_memory.items()})
            state.update({f"{i}.{k}": v for k, v in member_state.items()})
            self._names[i] = list(member_state)
        return memory, state

    def decode_step(self, tokens: torch.Tensor, state: State, memory: State,
                    rows: torch.Tensor, step: int) -> tuple[torch.Tensor, State]:
        """Tokens (N,) -> (N, V) log of the weighted sum of member probabilities, state."""
        import torch

        new_state: State = {}
        mixed = []
        for i in self.active:
            prefix = f"{i}."
            member_state = {name: state[prefix + name] for name in self._names[i]}
            member_memory = {k[len(prefix):]: v for k, v in memory.items()
                             if k.startswith(prefix)}
            logits, member_state = self.members[i].decode_step(tokens, member_state,
                                                               member_memory, rows, step)
            new_state.update({prefix + name: value for name, value in member_state.items()})
            if len(self.active) == 1:
                return logits, new_state
            mixed.append(torch.log_softmax(logits.float(), dim=-1) + math.log(self.weights[i]))
        # log sum_i w_i p_i, computed stably in log space.
        return torch.logsumexp(torch.stack(mixed), dim=0), new_state


class FusedModel:
    """Member caption models with their weights; generates from per-member inputs.

    Not an ``nn.Module`` (it owns no weights of its own); ``to`` and ``eval`` reach the
    members.

    Args:
        members: models that share one vocabulary (not checked here; see
            :func:`check_same_vocab`).
        weights: one weight per member, summing to 1.
    """

    def __init__(self, members: Sequence[CaptionModel], weights: Sequence[float]) -> None:
        if len(members) < 2:
            raise S2VTError(f"a fused model needs at least two members, got {len(members)}")
        self.members = list(members)
        self.weights = check_weights(weights, len(self.members))

    def set_weights(self, weights: Sequence[float]) -> None:
        """Replace the weights (tuning tries several on the same members)."""
        self.weights = check_weights(weights, len(self.members))

    def to(self, device: Any) -> FusedModel:
        for member in self.members:
            member.to(device)
        return self

    def eval(self) -> FusedModel:
        for member in self.members:
            member.eval()
        return self

    def decoder(self, inputs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> FusedDecoder:
        """The :class:`FusedDecoder` of one batch (per member ``(features, mask)``)."""
        return FusedDecoder(self.members, self.weights, inputs)

    def generate(self, inputs: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                 beam_size: int = 1, max_len: int = 20,
                 length_penalty: float = 1.0) -> list[list[int]]:
        """Caption a batch: greedy (``beam_size=1``) or beam search on the fused decoder.

        Args:
            inputs: per member ``(features (B, T_i, D_i), feature_mask (B, T_i))``, right
                padded, in member order.
            beam_size / max_len / length_penalty: as :meth:`CaptionModel.generate`.
        Returns:
            B lists of token ids, without <bos> / <eos>.
        """
        import torch

        from s2vt.models.decoding import beam_search, greedy_search

        if beam_size < 1 or max_len < 1:
            raise ValueError(f"beam_size and max_len must be >= 1, got {beam_size}, {max_len}")
        modes = [member.training for member in self.members]
        self.eval()
        try:
            decoder = self.decoder(inputs)
            features, mask = decoder.anchor
            with torch.no_grad():
                if beam_size == 1:
                    return greedy_search(decoder, features, mask, max_len)
                return beam_search(decoder, features, mask, beam_size, max_len, length_penalty)
        finally:
            for member, mode in zip(self.members, modes, strict=True):
                member.train(mode)


# --------------------------------------------------------------------------- model dir
@dataclass
class LoadedFused:
    """A fused model dir loaded for inference.

    Attributes:
        model: the :class:`FusedModel` (members on the requested device, in eval mode).
        members: each member's :class:`~s2vt.checkpoint.LoadedModel` (with its stream),
            in order.
        weights: each member's weight.
        vocab: the shared vocabulary.
        info: the rest of ``config.json`` worth keeping (the tuning record).
        path: the fused dir.
    """

    model: FusedModel
    members: list[LoadedModel]
    weights: list[float]
    vocab: Vocabulary
    info: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def sampling(self) -> dict[str, Any]:
        """The first member's frame sampling: the nominal sampling of a decode call
        (:func:`read_fused_clip` samples each member its own way)."""
        return self.members[0].sampling


def read_config(directory: Path) -> Any:
    """``config.json`` of a model dir with the pickle refusal of :mod:`s2vt.checkpoint`."""
    from s2vt.checkpoint import CONFIG_FILE, read_model_json

    return read_model_json(Path(directory) / CONFIG_FILE, "the model config")


def is_fused_dir(directory: str | Path) -> bool:
    """Whether ``directory`` holds a fused model dir (a pickled config.json is refused here).

    A folder without ``config.json`` is no fused dir (loading it as a model dir then says
    what is missing).
    """
    directory = Path(directory)
    if not (directory / "config.json").is_file():
        return False
    data = read_config(directory)
    return isinstance(data, dict) and data.get("kind") == FUSED_KIND


def check_same_vocab(vocabs: Sequence[Vocabulary], names: Sequence[str]) -> None:
    """Refuse members whose vocabularies differ (their word ids would mean other words).

    Raises:
        S2VTError: one line naming the first two members that differ and how.
    """
    first = vocabs[0]
    for vocab, name in zip(vocabs[1:], names[1:], strict=True):
        if vocab == first:
            continue
        where = next((i for i, (a, b) in enumerate(zip(first.itos, vocab.itos, strict=False))
                      if a != b), min(len(first), len(vocab)))
        ours = first.itos[where] if where < len(first) else "(end)"
        theirs = vocab.itos[where] if where < len(vocab) else "(end)"
        raise S2VTError(
            f"fusion members must share one vocabulary: {names[0]} has {len(first)} words, "
            f"{name} has {len(vocab)} (word id {where}: {ours!r} vs {theirs!r}); train the "
            f"second with `s2vt train --vocab-from {names[0]}`")


def load_members(directories: Sequence[str | Path], weights: Sequence[float],
                 device: str = "cpu", *, info: dict[str, Any] | None = None,
                 path: Path | None = None) -> LoadedFused:
    """Load member model dirs into a :class:`LoadedFused` (pickles refused, vocab checked).

    Args:
        directories: the member model dirs (single-stream dirs, not fused ones).
        weights: one weight per member, summing to 1.
        device: where the members go.
        info / path: recorded on the result.
    Raises:
        S2VTError: a bad member dir (see :func:`s2vt.checkpoint.load_model_dir`), fewer
            than two members, bad weights, or members with different vocabularies.
    """
    from s2vt.checkpoint import load_model_dir

    directories = [Path(d) for d in directories]
    if len(directories) < 2:
        raise S2VTError(f"fusion needs at least two member model dirs, got {len(directories)}")
    weights = check_weights(weights, len(directories))
    for directory in directories:
        if is_fused_dir(directory):
            raise S2VTError(f"{directory} is itself a fused model dir; fuse its members "
                            "directly")
    members = [load_model_dir(directory, device=device) for directory in directories]
    check_same_vocab([m.vocab for m in members], [str(d) for d in directories])
    model = FusedModel([m.model for m in members], weights)
    return LoadedFused(model=model, members=members, weights=weights, vocab=members[0].vocab,
                       info=dict(info or {}), path=path)


def _member_path(root: Path, entry: Any, number: int) -> Path:
    """The folder of member ``number``; it must lie inside the fused dir."""
    where = f"{root / 'config.json'}: member {number}"
    if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
        raise S2VTError(f"{where} needs a 'path' string")
    relative = Path(entry["path"])
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise S2VTError(f"{where}: path {entry['path']!r} must be a folder inside the fused "
                        "dir")
    folder = root / relative
    # A symlink could still lead out of the fused dir: compare the resolved paths.
    if not folder.resolve().is_relative_to(root.resolve()):
        raise S2VTError(f"{where}: path {entry['path']!r} leads outside the fused dir")
    return folder


def read_fused_config(directory: str | Path) -> dict[str, Any]:
    """Read and check a fused dir's ``config.json`` (no torch needed).

    Raises:
        S2VTError: a missing or pickled file, another kind or format version, or a member
            list that is not a list of ``{"path", "weight"}`` inside the dir.
    """
    root = Path(directory)
    if not root.is_dir():
        raise S2VTError(f"model dir not found: {root}")
    data = read_config(root)
    where = root / "config.json"
    if not isinstance(data, dict) or data.get("kind") != FUSED_KIND:
        raise S2VTError(f"{where} is not a fused model dir config (kind {FUSED_KIND!r})")
    version = data.get("format_version")
    if version != FUSED_FORMAT_VERSION:
        raise S2VTError(f"{where} has format_version {version!r}; this s2vt reads fused "
                        f"format_version {FUSED_FORMAT_VERSION}")
    members = data.get("members")
    if not isinstance(members, list) or len(members) < 2:
        raise S2VTError(f"{where} needs a 'members' list of at least two entries")
    for number, entry in enumerate(members):
        _member_path(root, entry, number)
        weight = entry.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise S2VTError(f"{where}: member {number} needs a numeric 'weight'")
    check_weights([entry["weight"] for entry in members], len(members))
    return data


def load_fused_dir(directory: str | Path, device: str = "cpu") -> LoadedFused:
    """Load a fused model dir written by :func:`s2vt.fusing.save_fused_dir` (``s2vt fuse``).

    Every member is loaded with :func:`s2vt.checkpoint.load_model_dir`, so a pickle
    anywhere a model file goes, in the fused dir or in a member, is refused unread.

    Raises:
        S2VTError: see :func:`read_fused_config` and :func:`load_members`.
    """
    root = Path(directory)
    data = read_fused_config(root)
    entries = data["members"]
    info = {key: value for key, value in data.items() if key not in ("members",)}
    return load_members([_member_path(root, entry, i) for i, entry in enumerate(entries)],
                        [entry["weight"] for entry in entries], device=device, info=info,
                        path=root)


# --------------------------------------------------------------------------- decoding once
def read_fused_clip(
    path: Path,
    sampling: Any = None,
    size: int = 0,
    *,
    num_threads: int = 0,
    members: Sequence[Mapping[str, Any]] = (),
    device: str = "cpu",
    **options: Any,
) -> Clip:
    """Decode a video once for all members: RGB members' frames and flow members' flow
    images, each made exactly as that member's own extraction makes them.

    A flow member reads its sampled positions and their frame pairs
    (:func:`s2vt.flow.frames.read_frame_pairs`); an RGB member whose sampling and frame size
    are those positions' (the usual two-stream setup: one sampling, encoder input side =
    flow working size) takes that very clip, so it costs no decoding of its own. Other RGB
    members read their clip once per distinct sampling and size.

    Args:
        path: the video file.
        sampling / size: unused (the signature of :func:`s2vt.video.read_clip`, so a decode
            worker can run this); each member brings its own.
        num_threads: decoding threads (and OpenCV's, for flow) when > 0.
        members: per member ``{"sampling": SamplingConfig fields, "size": encoder input
            side, "stream": stream record}``.
        device: where a flow network runs.
        **options: passed on to :func:`s2vt.video.read_clip` (e.g. the decoder).
    Returns:
        The first member's :class:`~s2vt.video.Clip` with ``frames`` replaced by a tuple of
        one ``(T_i, S_i, S_i, 3)`` uint8 array per member.
    Raises:
        VideoError: the video cannot be decoded.
    """
    import dataclasses
    import json

    from s2vt.flow.stream import stream_of
    from s2vt.video import SamplingConfig, read_clip

    if not members:
        raise ValueError("read_fused_clip needs at least one member")
    frames: list[Any] = [None] * len(members)
    clips: list[Any] = [None] * len(members)
    read: dict[str, Any] = {}  # (sampling, size) -> the clip of those positions

    def key(fields: Mapping[str, Any], side: int) -> str:
        return json.dumps([dict(fields), int(side)], sort_keys=True)

    flow_first = sorted(range(len(members)),
                        key=lambda i: stream_of(members[i])["name"] != "flow")
    for i in flow_first:
        member = members[i]
        member_sampling = SamplingConfig(**member["sampling"])
        stream = stream_of(member)
        if stream["name"] == "flow":
            frames[i], clips[i], positions = _flow_member(
                Path(path), member_sampling, int(member["size"]), stream, device, num_threads,
                options)
            read.setdefault(key(member["sampling"], positions[1]), positions[0])
            continue
        where = key(member["sampling"], member["size"])
        if where not in read:
            read[where] = read_clip(Path(path), member_sampling, int(member["size"]),
                                    num_threads=num_threads, **options)
        clips[i] = read[where]
        frames[i] = clips[i].frames
    return dataclasses.replace(clips[0], frames=tuple(frames))


def _flow_member(path: Path, sampling: Any, size: int, stream: Mapping[str, Any], device: str,
                 num_threads: int, options: dict[str, Any]) -> tuple[Any, Any, tuple[Any, int]]:
    """A flow member's images as :func:`s2vt.flow.clip.read_flow_clip` makes them.

    Returns:
        (images, its clip, (the clip of the sampled positions, their frame size)).
    """
    import dataclasses

    from s2vt.flow.clip import flow_images, flow_method
    from s2vt.flow.frames import read_frame_pairs
    from s2vt.flow.registry import method_info
    from s2vt.flow.stream import flow_config

    config = flow_config(stream)
    method = flow_method(config, device)  # a missing package fails before any decoding
    pairs = read_frame_pairs(path, sampling, config.size, config.gap, num_threads=num_threads,
                             **options)
    if num_threads > 0 and not method_info(config.method).needs_weights:
        import cv2

        cv2.setNumThreads(num_threads)
    images = flow_images(pairs.first, pairs.second, config, size, method)
    clip = dataclasses.replace(pairs.clip, frames=images, indices=pairs.indices,
                               timestamps=pairs.timestamps)
    return images, clip, (pairs.clip, config.size)
