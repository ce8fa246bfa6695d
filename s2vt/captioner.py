"""Captioner: the one inference path from a raw video (or its features) to a sentence.

It decodes and encodes a video exactly the way the model's training features were made
(the encoder spec and frame sampling are read from the model dir), so a raw video and a
feature store built by ``s2vt extract`` give the same caption.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.errors import S2VTError

if TYPE_CHECKING:
    import numpy as np

    from s2vt.checkpoint import LoadedModel
    from s2vt.encoders import FrameEncoder

logger = logging.getLogger(__name__)


@dataclass
class VideoCaption:
    """The outcome for one video: a caption, or the reason it failed."""

    path: Path
    caption: str | None
    error: str | None = None


class Captioner:
    """Turn videos or precomputed features into captions with a trained model dir.

    Example:
        >>> captioner = Captioner.from_pretrained("runs/demo/s2vt/model")
        >>> captioner("clip.mp4")
        'a red circle moves to the left'
    """

    def __init__(
        self,
        loaded: LoadedModel,
        device: str = "cpu",
        beam_size: int = 5,
        max_len: int = 20,
        batch_size: int = 64,
    ) -> None:
        self.loaded = loaded
        self.device = device
        self.beam_size = beam_size
        self.max_len = max_len
        self.batch_size = batch_size
        self._encoder: FrameEncoder | None = None

    @classmethod
    def from_pretrained(
        cls, model_dir: str | Path, device: str = "cpu", **options: Any
    ) -> Captioner:
        """Load a model dir written by ``s2vt train`` (config.json, model.safetensors, vocab.json).

        Args:
            model_dir: the model folder.
            device: ``cpu`` or ``cuda``.
            **options: ``beam_size``, ``max_len``, ``batch_size`` defaults for later calls.
        """
        from s2vt.checkpoint import load_model_dir

        return cls(load_model_dir(Path(model_dir), device=device), device=device, **options)

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
        self, paths: Sequence[str | Path], beam_size: int | None = None
    ) -> Iterator[VideoCaption]:
        """Caption many videos, yielding a result per video; a bad video becomes its error.

        Videos are decoded one at a time and captioned in batches, so memory stays bounded.
        """
        batch: list[tuple[Path, np.ndarray]] = []
        for raw in paths:
            path = Path(raw)
            try:
                batch.append((path, self.video_features(path)))
            except S2VTError as error:
                yield VideoCaption(path, None, str(error))
                continue
            if len(batch) >= self.batch_size:
                yield from self._flush(batch, beam_size)
                batch = []
        yield from self._flush(batch, beam_size)

    def caption_features(
        self, features: Sequence[np.ndarray], beam_size: int | None = None
    ) -> list[str]:
        """Caption precomputed feature arrays, batched.

        Args:
            features: one ``(T, D)`` array per video, as stored by ``s2vt extract``.
            beam_size: beam width (1 = greedy); defaults to the captioner's.

        Returns:
            One caption per array.
        """
        import numpy as np
        import torch

        beam = self.beam_size if beam_size is None else beam_size
        expected = self.loaded.config.feature_dim
        captions: list[str] = []
        model = self.loaded.model
        for start in range(0, len(features), self.batch_size):
            chunk = features[start : start + self.batch_size]
            for array in chunk:
                if array.ndim != 2 or array.shape[1] != expected or array.shape[0] == 0:
                    raise S2VTError(
                        f"features of shape {tuple(array.shape)} do not fit this model "
                        f"(expects (T, {expected}))"
                    )
            max_t = min(max(a.shape[0] for a in chunk), self.loaded.config.max_frames)
            batch = np.zeros((len(chunk), max_t, expected), dtype=np.float32)
            mask = np.zeros((len(chunk), max_t), dtype=bool)
            for row, array in enumerate(chunk):
                length = min(array.shape[0], max_t)
                batch[row, :length] = array[:length]
                mask[row, :length] = True
            with torch.inference_mode():
                token_lists = model.generate(
                    torch.from_numpy(batch).to(self.device),
                    torch.from_numpy(mask).to(self.device),
                    beam_size=beam,
                    max_len=self.max_len,
                )
            captions.extend(self.loaded.vocab.decode(tokens) for tokens in token_lists)
        return captions

    def video_features(self, path: str | Path) -> np.ndarray:
        """Decode and encode one video the way its training features were made.

        Returns:
            ``(T, D)`` float16 features, as ``s2vt extract`` stores them.
        """
        from s2vt.video import SamplingConfig, read_clip

        encoder = self._get_encoder()
        sampling = SamplingConfig(**self.loaded.sampling)
        clip = read_clip(Path(path), sampling, size=encoder.image_size)
        features = encoder.encode(clip.frames)
        # The store keeps float16; round the same way so a raw video matches its stored features.
        return features.numpy().astype("float16")

    # ------------------------------------------------------------------ internals
    def _get_encoder(self) -> FrameEncoder:
        if self._encoder is None:
            from s2vt.encoders import EncoderSpec, build_encoder

            spec = EncoderSpec(**self.loaded.encoder_spec)
            self._encoder = build_encoder(spec, device=self.device)
        return self._encoder

    def _caption_paths(self, paths: list[Path], beam_size: int | None) -> list[str]:
        features = [self.video_features(path) for path in paths]
        return self.caption_features(features, beam_size)

    def _flush(
        self, batch: list[tuple[Path, np.ndarray]], beam_size: int | None
    ) -> Iterator[VideoCaption]:
        if not batch:
            return
        captions = self.caption_features([features for _, features in batch], beam_size)
        for (path, _), caption in zip(batch, captions, strict=True):
            yield VideoCaption(path, caption)
