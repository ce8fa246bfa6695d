"""Captioner: the one inference path from a raw video (or its features) to a sentence.

It decodes and encodes a video exactly the way the model's training features were made
(the encoder spec and frame sampling are read from the model dir), so a raw video and a
feature store built by ``s2vt extract`` give the same caption. How captions are searched
for (beam, greedy, sampling, how many per video) is one
:class:`~s2vt.models.decoding.DecodingOptions`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.devices import resolve_device
from s2vt.errors import S2VTError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from s2vt.checkpoint import LoadedModel
    from s2vt.encoders import FrameEncoder
    from s2vt.fusion import LoadedFused
    from s2vt.models.decoding import DecodingOptions, Hypothesis

logger = logging.getLogger(__name__)


@dataclass
class ScoredCaption:
    """One caption of a video with its log-probability under the model.

    Attributes:
        caption: the sentence.
        log_prob: the sum of its words' (and its <eos>'s) log-probabilities.
        attention: per word, its weights over the model's input frames (each row sums to
            1); None for a model without attention over frames.
    """

    caption: str
    log_prob: float
    attention: list[list[float]] | None = None


@dataclass
class VideoCaption:
    """The outcome for one video: a caption, or the reason it failed.

    ``captions`` holds every caption asked for (``num_captions``), best first; ``caption``
    is the first one's text.
    """

    path: Path
    caption: str | None
    error: str | None = None
    captions: list[ScoredCaption] = field(default_factory=list)


class Captioner:
    """Turn videos or precomputed features into captions with a trained model dir.

    Example:
        >>> captioner = Captioner.from_pretrained("runs/demo/s2vt/model")
        >>> captioner("clip.mp4")
        'a red circle moves to the left'
        >>> from s2vt.models.decoding import DecodingOptions
        >>> sampler = Captioner.from_pretrained(
        ...     "runs/demo/s2vt/model", decoding=DecodingOptions(sample=True, num_captions=5,
        ...                                                      seed=0))
        >>> [c.caption for c in sampler.caption_features_scored([features])[0]]

    Args:
        loaded: the loaded model dir.
        device: where the model runs.
        beam_size / max_len: the search's beam width (1 = greedy) and longest caption,
            used when ``decoding`` is None.
        batch_size: videos captioned together.
        decoding: every decoding setting at once (replaces ``beam_size`` and ``max_len``).
        runtime: the encoder runtime (``auto``, ``torch``, ``openvino``); None keeps the
            model dir's.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str | torch.device = "cpu",
        beam_size: int = 5,
        max_len: int = 20,
        batch_size: int = 64,
        *,
        decoding: DecodingOptions | None = None,
        runtime: str | None = None,
    ) -> None:
        from s2vt.models.decoding import DecodingOptions

        self.loaded = loaded
        self.device = resolve_device(device)
        self.decoding = (decoding if decoding is not None
                         else DecodingOptions(beam_size=beam_size, max_len=max_len))
        self.batch_size = batch_size
        self.runtime = runtime
        self._encoder: FrameEncoder | None = None

    @property
    def beam_size(self) -> int:
        """The default beam width (1 = greedy)."""
        return self.decoding.beam_size

    @property
    def max_len(self) -> int:
        """The longest caption, in words."""
        return self.decoding.max_len

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, device: str | torch.device = "cpu", **options: Any
    ) -> Captioner:
        """Load a model dir written by ``s2vt train`` (config.json, model.safetensors, vocab.json).

        A fused dir (``s2vt fuse``) gives a :class:`FusedCaptioner`.

        Args:
            model_dir: the model folder, or a Hugging Face Hub model (``hf:org/name``, or
                ``org/name`` when no such folder exists; see :func:`s2vt.hub.resolve_model`).
            device: ``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
            **options: ``beam_size``, ``max_len``, ``batch_size`` or ``decoding`` defaults
                for later calls.
        """
        from s2vt.checkpoint import load_model_dir
        from s2vt.fusion import is_fused_dir, load_fused_dir
        from s2vt.hub import resolve_model

        device = resolve_device(device)
        folder = resolve_model(model_dir, hub_fallback=True)
        if is_fused_dir(folder):
            return FusedCaptioner(load_fused_dir(folder, device=str(device)), device=device,
                                  **options)
        return cls(load_model_dir(folder, device=str(device)), device=device, **options)

    # ------------------------------------------------------------------ public calls
    def __call__(
        self, videos: str | Path | Sequence[str | Path], beam_size: int | None = None
    ) -> str | list[str]:
        """Caption one video path (-> str) or a list of paths (-> list of str).

        Raises:
            VideoError: a video cannot be decoded (use :meth:`caption_videos` to keep going).
        """
        if isinstance(videos, str | Path):
            return self._caption_paths([Path(videos)], beam_size)[0]
        return self._caption_paths([Path(v) for v in videos], beam_size)

    def caption_videos(
        self,
        paths: Sequence[str | Path],
        beam_size: int | None = None,
        *,
        decoding: DecodingOptions | None = None,
        contained: bool | None = None,
        decode_timeout: float = 120.0,
        decode_fn: str | None = None,
    ) -> Iterator[VideoCaption]:
        """Caption many videos, yielding a result per video; a bad video becomes its error.

        Videos are decoded one at a time and captioned in batches, so memory stays bounded.

        Args:
            paths: the video files, captioned (and yielded) in this order.
            beam_size: beam search of this width (1 = greedy) instead of the captioner's
                decoding.
            decoding: decoding options for this call (default: the captioner's).
            contained: decode in a worker process, as ``s2vt extract`` does, so that a
                decoder that crashes (segfault) or hangs costs only that video; None (the
                default) does so when there is more than one video (a worker costs about
                a second to start).
            decode_timeout: seconds one video may take to decode (contained decoding only).
            decode_fn: test hook (fault injection) for the worker, see
                :class:`s2vt.decodepool.DecodePool`.
        """
        paths = [Path(raw) for raw in paths]
        options = self._options(beam_size, decoding)
        if contained is None:
            contained = len(paths) > 1
        decoded = (self._decode_contained(paths, decode_timeout, decode_fn) if contained
                   else self._decode_inline(paths))
        batch: list[tuple[Path, np.ndarray]] = []
        for path, frames, error in decoded:
            if error is not None:
                yield VideoCaption(path, None, error)
                continue
            batch.append((path, self._encode_frames(frames)))
            if len(batch) >= self.batch_size:
                yield from self._flush(batch, options)
                batch = []
        yield from self._flush(batch, options)

    def caption_features(
        self, features: Sequence[np.ndarray], beam_size: int | None = None
    ) -> list[str]:
        """Caption precomputed feature arrays, batched: each video's best caption.

        Args:
            features: one ``(T, D)`` array per video, as stored by ``s2vt extract``.
            beam_size: beam search of this width (1 = greedy) instead of the captioner's
                decoding.

        Returns:
            One caption per array.
        """
        options = self._options(beam_size, None)
        if not options.sample:
            options = replace(options, num_captions=1)  # only the best is returned
        return [found[0].caption for found in self.caption_features_scored(features, options)]

    def caption_features_scored(
        self, features: Sequence[np.ndarray], decoding: DecodingOptions | None = None
    ) -> list[list[ScoredCaption]]:
        """Caption precomputed feature arrays with their log-probabilities, batched.

        Args:
            features: one ``(T, D)`` array per video, as stored by ``s2vt extract``.
            decoding: decoding options for this call (default: the captioner's).

        Returns:
            Per array, ``num_captions`` captions (the N best beams or N samples), best
            first, each with its log-probability and, for attention models, the weights
            each word gave the model's input frames.
        """
        import torch

        options = self._options(None, decoding)
        results: list[list[ScoredCaption]] = []
        for start in range(0, len(features), self.batch_size):
            chunk = features[start : start + self.batch_size]
            with torch.inference_mode():
                found = self._search(chunk, options)
            results.extend([self._scored(h) for h in hypotheses] for hypotheses in found)
        return results

    def video_features(self, path: str | Path) -> np.ndarray:
        """Decode and encode one video the way its training features were made.

        Returns:
            ``(T, D)`` float16 features, as ``s2vt extract`` stores them.
        """
        encoder = self._get_encoder()
        clip = self._read_clip(Path(path), int(encoder.image_size))
        return self._encode_frames(clip.frames)

    # ------------------------------------------------------------------ internals
    def _encode_frames(self, frames: np.ndarray) -> np.ndarray:
        """(T, S, S, 3) uint8 frames -> (T, D) float16 features."""
        features = self._get_encoder().encode(frames)
        # The store keeps float16; round the same way so a raw video matches its stored features.
        return features.float().cpu().numpy().astype("float16")

    def _decode_inline(
        self, paths: list[Path]
    ) -> Iterator[tuple[Path, np.ndarray | None, str | None]]:
        """Decode in this process: (path, frames, None) or (path, None, reason)."""
        size = int(self._get_encoder().image_size)  # a model/encoder mismatch stops here
        for path in paths:
            try:
                clip = self._read_clip(path, size)
            except S2VTError as error:
                yield path, None, str(error)
                continue
            yield path, clip.frames, None

    def _decode_contained(
        self, paths: list[Path], timeout: float, decode_fn: str | None
    ) -> Iterator[tuple[Path, np.ndarray | None, str | None]]:
        """Decode in one worker process (crash/hang -> that video's error), in order."""
        from s2vt.decodepool import DEFAULT_DECODE_FN, DecodePool
        from s2vt.inputs import VideoInput
        from s2vt.video import SamplingConfig

        sampling = SamplingConfig(**self.loaded.sampling)
        # A flow model's worker returns flow images, exactly as extraction's workers do.
        stream_fn, options = self._decode_call()
        if decode_fn is not None:
            options = {}
        # One worker keeps the output in input order; the encoder runs here meanwhile.
        pool = DecodePool(1, sampling, timeout,
                          decode_fn=decode_fn or stream_fn or DEFAULT_DECODE_FN,
                          decode_options=options)
        # Ids are positions: the same file may be listed twice.
        videos = [VideoInput(str(i), path) for i, path in enumerate(paths)]
        try:
            pool.start()  # the worker imports its libraries while the encoder loads
            size = int(self._get_encoder().image_size)
            for item in pool.imap(videos, size, max_ready=2):
                path = item.video.path
                if item.error is not None:
                    reason = item.error
                    if not reason.startswith("cannot decode video"):
                        reason = f"cannot decode video {path}: {reason}"
                    yield path, None, reason
                else:
                    if (item.decoding or {}).get("warning"):
                        # Captioned, but from part of the video or after a decoder failed.
                        logger.warning("%s: %s", path, item.decoding["warning"])
                    yield path, item.frames, None
        finally:
            pool.close()

    def _read_clip(self, path: Path, size: int) -> Any:
        """Decode one video in this process as its training features were made: the
        sampled frames, or a flow model's flow images (:func:`s2vt.flow.clip.read_flow_clip`)."""
        import importlib

        from s2vt.video import SamplingConfig, read_clip

        sampling = SamplingConfig(**self.loaded.sampling)
        stream_fn, options = self._decode_call()
        if stream_fn is None:
            clip = read_clip(path, sampling, size=size, **options)
        else:
            module, _, name = stream_fn.partition(":")
            clip = getattr(importlib.import_module(module), name)(path, sampling, size, **options)
        if getattr(clip, "warning", None):
            # Captioned, but from part of the video or after a decoder failed.
            logger.warning("%s: %s", path, clip.warning)
        return clip

    def _decode_call(self) -> tuple[str | None, dict[str, Any]]:
        """The decode function (``"module:function"``, None: plain frames) and its options."""
        from s2vt.flow.stream import decode_call

        stream_fn, options = decode_call(self.loaded.stream, self.device)
        return stream_fn, {**options, "decoder": self.decoder}

    @cached_property
    def decoder(self) -> str:
        """The video decoder for raw videos: the one the model's features were made with
        (``config.json`` features.decoder) where it runs here, else ``auto`` (decord and
        PyAV give the same pixels). Assign to override."""
        from s2vt.errors import ConfigError
        from s2vt.video import decoder_chain

        name = self.loaded.features.get("decoder") or "auto"
        try:
            decoder_chain(name)
        except ConfigError as error:
            logger.warning("%s; decoding with auto instead", error)
            name = "auto"
        return name

    def _model_inputs(self, arrays: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored-style ``(T, D)`` arrays -> the model's padded batch ``(B, T, D)`` and mask."""
        from s2vt.models.inputs import fit_frames, pad_frames

        expected = self.loaded.config.feature_dim
        for array in arrays:
            if array.ndim != 2 or array.shape[1] != expected or array.shape[0] == 0:
                raise S2VTError(
                    f"features of shape {tuple(array.shape)} do not fit this model "
                    f"(expects (T, {expected}))"
                )
        # Long videos are subsampled evenly, exactly as training did.
        chunk = [fit_frames(array, self.loaded.config.max_frames) for array in arrays]
        return pad_frames(chunk, self.device)

    def _options(self, beam_size: int | None,
                 decoding: DecodingOptions | None) -> DecodingOptions:
        """This call's decoding options: ``decoding``, else the captioner's, with an
        explicit ``beam_size`` turning them into a beam search of that width."""
        options = self.decoding if decoding is None else decoding
        if beam_size is None:
            return options
        return replace(options, beam_size=beam_size, sample=False,
                       num_captions=min(options.num_captions, beam_size))

    def _search(self, chunk: Sequence[Any], options: DecodingOptions) -> list[list[Hypothesis]]:
        """The hypotheses of one batch of videos' features (under inference mode)."""
        from s2vt.models.decoding import search

        batch, mask = self._model_inputs(chunk)
        return search(self.loaded.model, batch, mask, options)

    def _scored(self, hypothesis: Hypothesis) -> ScoredCaption:
        attention = hypothesis.attention
        return ScoredCaption(self.loaded.vocab.decode(hypothesis.tokens), hypothesis.log_prob,
                             None if attention is None else attention.tolist())

    def _get_encoder(self) -> FrameEncoder:
        if self._encoder is None:
            from s2vt.encoders import EncoderSpec, build_encoder

            spec = EncoderSpec(**self.loaded.encoder_spec)
            if self.runtime is not None:
                spec = replace(spec, runtime=self.runtime)
            encoder = build_encoder(spec, device=self.device)
            expected = self.loaded.config.feature_dim
            # Say so before any video is decoded, naming both sides, not per video later.
            if int(encoder.feature_dim) != expected:
                raise S2VTError(
                    f"model dir {self.loaded.path} expects {expected}-dim features but its "
                    f"encoder {spec.name!r} gives {int(encoder.feature_dim)}-dim features"
                )
            self._encoder = encoder
        return self._encoder

    def _caption_paths(self, paths: list[Path], beam_size: int | None) -> list[str]:
        features = [self.video_features(path) for path in paths]
        return self.caption_features(features, beam_size)

    def _flush(
        self, batch: list[tuple[Path, np.ndarray]], options: DecodingOptions
    ) -> Iterator[VideoCaption]:
        if not batch:
            return
        found = self.caption_features_scored([features for _, features in batch], options)
        for (path, _), captions in zip(batch, found, strict=True):
            yield VideoCaption(path, captions[0].caption, captions=captions)


class FusedCaptioner(Captioner):
    """A fused model dir (``s2vt fuse``): late fusion of member models.

    Each video is decoded once for all members (:func:`s2vt.fusion.read_fused_clip`), each
    member's own encoder makes its features (RGB frames, or flow images for a flow member),
    and greedy or beam search runs on the weighted sum of the members' word probabilities.
    A video's features are a tuple with one ``(T_i, D_i)`` array per member, in member
    order: what :meth:`video_features` returns and :meth:`caption_features` takes.
    """

    def __init__(
        self,
        loaded: LoadedFused,
        device: str | torch.device = "cpu",
        beam_size: int = 5,
        max_len: int = 20,
        batch_size: int = 64,
        *,
        decoding: DecodingOptions | None = None,
        runtime: str | None = None,
    ) -> None:
        super().__init__(loaded, device, beam_size, max_len, batch_size,  # type: ignore[arg-type]
                         decoding=decoding, runtime=runtime)
        self.members = [Captioner(member, self.device, beam_size, max_len, batch_size,
                                  decoding=decoding, runtime=runtime)
                        for member in loaded.members]

    def video_features(self, path: str | Path) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        """Decode one video once and encode it for every member: one ``(T_i, D_i)`` each."""
        self._get_encoder()  # a model/encoder mismatch stops before decoding
        clip = self._read_clip(Path(path), 0)
        return self._encode_frames(clip.frames)

    def _encode_frames(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:  # type: ignore[override]
        return tuple(member._encode_frames(part)
                     for member, part in zip(self.members, frames, strict=True))

    def _decode_call(self) -> tuple[str | None, dict[str, Any]]:
        from s2vt.fusion import FUSED_DECODE_FN

        members = [{"sampling": member.loaded.sampling,
                    "size": int(member._get_encoder().image_size),
                    "stream": member.loaded.stream} for member in self.members]
        return FUSED_DECODE_FN, {"members": members, "device": str(self.device),
                                 "decoder": self.decoder}

    @cached_property
    def decoder(self) -> str:
        """The first member's decoder (a video is decoded once for all members); members
        whose features were decoded otherwise are named in one warning. Assign to override."""
        names = [member.decoder for member in self.members]
        if len(set(names)) > 1:
            logger.warning("the fused members' features were decoded with %s; decoding with "
                           "the first member's decoder, %s", ", ".join(names), names[0])
        return names[0]

    def _get_encoder(self) -> FrameEncoder:
        """Build (once) and check every member's encoder; the first member's is returned.

        The base class reads only its image size, as the nominal frame size of a decode
        call, which the fused decode function ignores (each member brings its own).
        """
        return [member._get_encoder() for member in self.members][0]

    def _search(self, chunk: Sequence[Any], options: DecodingOptions) -> list[list[Hypothesis]]:
        import numpy as np

        from s2vt.models.decoding import search

        for video in chunk:
            if isinstance(video, np.ndarray) or len(video) != len(self.members):
                raise S2VTError(f"a fused model with {len(self.members)} members needs one "
                                "feature array per member for each video")
        inputs = [member._model_inputs([video[i] for video in chunk])
                  for i, member in enumerate(self.members)]
        decoder = self.loaded.model.decoder(inputs)
        return search(decoder, *decoder.anchor, options)
