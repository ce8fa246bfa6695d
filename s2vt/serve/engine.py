"""The captioning side of ``s2vt serve``: one model, bounded concurrency, contained decoding.

Each request's video is decoded in a worker process by the captioner's contained decoding
(the same decode-worker pool ``s2vt extract`` uses): a decoder that crashes or hangs past
``decode_timeout`` costs that request a 422, and the server goes on. Encoding and caption
search run in the server process on the model loaded once at start-up.

Admission is counted before the upload is read: at most ``workers + queue`` requests are in
flight, the next gets 503 with Retry-After, so memory and temporary disk stay bounded.

A request's captions are one beam search's N best beams (N = the beam width), each with
its log-probability under the model, and, for a model with attention over frames, the
weights each word gave the model's input frames.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.errors import S2VTError, one_line
from s2vt.serve.limits import ServeLimits

if TYPE_CHECKING:
    import numpy as np

    from s2vt.captioner import Captioner

log = logging.getLogger(__name__)


class CaptionError(Exception):
    """A video that could not be captioned: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Hypothesis:
    """One candidate caption: how it was found and its log-probability under the model.

    Attributes:
        caption: the sentence.
        log_prob: the sum of its words' and its <eos>'s log-probabilities.
        words: its number of words.
        search: the search that found it (``beam search, 3 beams`` or ``greedy``).
        attention: per word, its weights over the model's input frames (rows sum to 1);
            None for a model without attention over frames.
    """

    caption: str
    log_prob: float
    words: int
    search: str
    attention: list[list[float]] | None = None


def _jpeg_data_uri(frame: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class CaptionEngine:
    """Caption uploaded files with one loaded :class:`~s2vt.captioner.Captioner`.

    Args:
        captioner: loaded once; its encoder is built here, before the first request.
        limits: concurrency and decode bounds.
        decode_fn: test hook (fault injection) for the decode workers, ``"module:function"``
            (see :class:`s2vt.decodepool.DecodePool`); None decodes normally.
    """

    def __init__(self, captioner: Captioner, limits: ServeLimits, *,
                 decode_fn: str | None = None) -> None:
        self.captioner = captioner
        self.limits = limits
        self.decode_fn = decode_fn
        self.peak_in_flight = 0
        self._running = threading.BoundedSemaphore(limits.workers)
        self._lock = threading.Lock()
        self._in_flight = 0
        self.served = 0
        self.failed = 0
        # Build the frame encoder now: the first request should not pay for it, and
        # concurrent first requests must not build it twice.
        captioner._get_encoder()
        self.attention = self._has_attention()

    # -- admission
    def admit(self) -> bool:
        """Take a place for one request; False when ``workers + queue`` are in flight."""
        with self._lock:
            if self._in_flight >= self.limits.capacity:
                return False
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
            return True

    def release(self) -> None:
        with self._lock:
            self._in_flight -= 1

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    # -- model facts for the page and /api/health
    def model_info(self) -> dict[str, Any]:
        loaded = self.captioner.loaded
        members = getattr(loaded, "members", None)  # a fused model dir
        first = members[0] if members else loaded
        architecture = first.config.name
        if members:
            parts = [f"{m.config.name} {m.stream.get('name', 'rgb')} x {w:g}"
                     for m, w in zip(members, loaded.weights, strict=True)]
            architecture = "fused: " + " + ".join(parts)
        return {
            "name": Path(str(loaded.path)).name if loaded.path else None,
            "architecture": architecture,
            "encoder": first.encoder_spec.get("name"),
            "image_size": (first.encoder_spec.get("image_size")
                           or first.features.get("image_size")),
            "frames": first.sampling.get("num_frames"),
            "sampling": first.sampling.get("mode"),
            "vocabulary": len(loaded.vocab),
            "beam_size": self.captioner.beam_size,
            "decoder": self.captioner.decoder,
            "attention": self.attention,
        }

    def _has_attention(self) -> bool:
        """Whether the model reports attention over frames: one greedy word on a blank
        one-frame video tells (the models say so only while decoding)."""
        import numpy as np

        from s2vt.models.decoding import DecodingOptions

        loaded = self.captioner.loaded
        members = getattr(loaded, "members", None)
        if members:
            blank: Any = tuple(np.zeros((1, m.config.feature_dim), np.float16) for m in members)
        else:
            blank = np.zeros((1, loaded.config.feature_dim), np.float16)
        (found,) = self.captioner.caption_features_scored(
            [blank], DecodingOptions(beam_size=1, max_len=1))
        return found[0].attention is not None

    # -- captioning (blocking; called from a worker thread)
    def caption_file(self, path: Path, beam_size: int | None = None,
                     frames: bool = True) -> dict[str, Any]:
        """Decode (contained), encode and caption one file.

        Returns:
            ``caption``, ``hypotheses`` (the N best beams, best first, each with its
            log-probability and, for attention models, per-word frame weights),
            ``frames`` (JPEG data URIs and their positions among the sampled frames),
            ``attention`` (the best caption's words, weights and the positions of the
            model's input frames; None without attention), notes and timings.

        Raises:
            CaptionError: 422 when the file cannot be decoded (not a video, truncated,
                crashing or hanging decoder).
        """
        beam = self.captioner.beam_size if beam_size is None else beam_size
        with self._running:
            started = time.perf_counter()
            # The captioner's contained decoding: one worker process for this file.
            try:
                ((_, clip_frames, error),) = list(self.captioner._decode_contained(
                    [path], self.limits.decode_timeout, self.decode_fn))
            except S2VTError as failure:  # the worker itself could not start
                self.failed += 1
                raise CaptionError(500, f"decoding is broken on this server: "
                                        f"{one_line(failure)}") from None
            decoded = time.perf_counter()
            if error is not None:
                self.failed += 1
                raise CaptionError(422, _client_reason(error, path))
            features = self.captioner._encode_frames(clip_frames)
            encoded = time.perf_counter()
            hypotheses = self._hypotheses(features, beam)
            done = time.perf_counter()
        self.served += 1
        count = len(clip_frames[0] if isinstance(clip_frames, tuple) else clip_frames)
        best = hypotheses[0]
        attention = None
        if best.attention is not None:
            attention = {"words": best.caption.split(), "weights": best.attention,
                         "frames": self._model_frames(count)}
        return {
            "caption": best.caption,
            "hypotheses": [asdict(h) for h in hypotheses],
            "nbest_note": _nbest_note(beam, len(hypotheses),
                                      self.captioner.decoding.length_penalty),
            "attention": attention,
            "attention_note": None if attention is not None else
            "this model has no attention over frames",
            "num_frames": count,
            "frames": self._thumbnails(clip_frames) if frames else [],
            "seconds": {"decode": round(decoded - started, 3),
                        "encode": round(encoded - decoded, 3),
                        "caption": round(done - encoded, 3)},
        }

    def _hypotheses(self, features: Any, beam: int) -> list[Hypothesis]:
        """The ``beam`` best beams of one beam search (greedy for 1), best first."""
        options = replace(self.captioner.decoding, beam_size=beam, sample=False,
                          num_captions=beam)
        label = f"beam search, {beam} beams" if beam > 1 else "greedy"
        (found,) = self.captioner.caption_features_scored([features], options)
        return [Hypothesis(c.caption, round(c.log_prob, 4), len(c.caption.split()), label,
                           None if c.attention is None else
                           [[round(w, 4) for w in row] for row in c.attention])
                for c in found]

    def _model_frames(self, count: int) -> list[int]:
        """Positions, among ``count`` sampled frames, of the frames the model reads (it
        subsamples a long video evenly to its ``max_frames``), in order."""
        import numpy as np

        from s2vt.models.inputs import fit_frames

        keep = fit_frames(np.arange(count), self.captioner.loaded.config.max_frames)
        return [int(i) for i in keep]

    def _thumbnails(self, clip_frames: np.ndarray | tuple) -> list[dict[str, Any]]:
        import numpy as np

        if isinstance(clip_frames, tuple):  # a fused model: the first member's frames
            clip_frames = clip_frames[0]
        count = len(clip_frames)
        shown = min(count, self.limits.max_frames_shown)
        if shown == 0:
            return []
        picks = np.linspace(0, count - 1, shown).round().astype(int)
        return [{"index": int(i), "src": _jpeg_data_uri(np.ascontiguousarray(clip_frames[i]))}
                for i in picks]


def _nbest_note(beam: int, found: int, length_penalty: float) -> str:
    """What the list of captions holds, in one sentence for the page."""
    if beam == 1:
        return "the one caption greedy search finds (a beam of 2 or more lists the best few)"
    fewer = f" ({found} of them reach a caption)" if found < beam else ""
    rank = ("log p per token (words + end)" if length_penalty == 1 else
            f"log p / length^{length_penalty:g} (length: words + end)")
    return (f"the {beam} final beams of one beam search{fewer}, ranked as the search ranks "
            f"them, by {rank}, each with its log-probability under the model")


def _client_reason(error: str, path: Path) -> str:
    """A decode failure for the client: one line, the server's temp path replaced."""
    text = " ".join(error.split()).replace(str(path), "the upload")
    text = text.replace("cannot decode video the upload: ", "")
    return f"cannot decode the upload as a video: {text}"[:300]
