"""The captioning side of ``s2vt serve``: one model, bounded concurrency, contained decoding.

Each request's video is decoded in a worker process by the captioner's contained decoding
(the same decode-worker pool ``s2vt extract`` uses): a decoder that crashes or hangs past
``decode_timeout`` costs that request a 422, and the server goes on. Encoding and caption
search run in the server process on the model loaded once at start-up.

Admission is counted before the upload is read: at most ``workers + queue`` requests are in
flight, the next gets 503 with Retry-After, so memory and temporary disk stay bounded.
"""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from s2vt.errors import S2VTError, one_line
from s2vt.serve.limits import ServeLimits

if TYPE_CHECKING:
    import numpy as np

    from s2vt.captioner import Captioner

log = logging.getLogger(__name__)

NBEST_NOTE = ("this model's beam search returns only its best beam, so the list holds it and "
              "the greedy caption when that differs, each with its log-probability under the "
              "model")


class CaptionError(Exception):
    """A video that could not be captioned: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class Hypothesis:
    """One candidate caption: how it was found and its log-probability under the model."""

    caption: str
    log_prob: float
    words: int
    search: str


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
        return {
            "name": Path(str(loaded.path)).name if loaded.path else None,
            "architecture": loaded.config.name,
            "encoder": loaded.encoder_spec.get("name"),
            "image_size": (loaded.encoder_spec.get("image_size")
                           or loaded.features.get("image_size")),
            "frames": loaded.sampling.get("num_frames"),
            "sampling": loaded.sampling.get("mode"),
            "vocabulary": len(loaded.vocab),
            "beam_size": self.captioner.beam_size,
            "attention": False,
        }

    # -- captioning (blocking; called from a worker thread)
    def caption_file(self, path: Path, beam_size: int | None = None,
                     frames: bool = True) -> dict[str, Any]:
        """Decode (contained), encode and caption one file.

        Returns:
            ``caption``, ``hypotheses`` (best first), ``frames`` (JPEG data URIs and
            times), ``attention`` (None: no attention model yet), notes and timings.

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
        return {
            "caption": hypotheses[0].caption,
            "hypotheses": [asdict(h) for h in hypotheses],
            "nbest_note": NBEST_NOTE,
            "attention": None,
            "attention_note": "this model has no attention over frames",
            "num_frames": int(len(clip_frames)),
            "frames": self._thumbnails(clip_frames) if frames else [],
            "seconds": {"decode": round(decoded - started, 3),
                        "encode": round(encoded - decoded, 3),
                        "caption": round(done - encoded, 3)},
        }

    def _hypotheses(self, features: np.ndarray, beam: int) -> list[Hypothesis]:
        searches = [(f"beam search, {beam} beams" if beam > 1 else "greedy", beam)]
        if beam > 1:
            searches.append(("greedy", 1))
        found: list[Hypothesis] = []
        for label, width in searches:
            (caption,) = self.captioner.caption_features([features], beam_size=width)
            if any(h.caption == caption for h in found):
                continue
            found.append(Hypothesis(caption, self._log_prob(features, caption),
                                    len(caption.split()), label))
        return found

    def _log_prob(self, features: np.ndarray, caption: str) -> float:
        """Sum of the caption's word log-probabilities (and <eos>) under the model."""
        import torch

        from s2vt.models.inputs import fit_frames

        loaded = self.captioner.loaded
        array = fit_frames(features, loaded.config.max_frames)
        tokens = loaded.vocab.encode(caption, add_bos=True, add_eos=True)
        device = self.captioner.device
        feats = torch.from_numpy(array.astype("float32"))[None].to(device)
        mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=device)
        ids = torch.tensor([tokens], device=device)
        with torch.inference_mode():
            logits = loaded.model(feats, mask, ids[:, :-1])
            logp = torch.log_softmax(logits.float(), dim=-1)
            picked = logp.gather(-1, ids[:, 1:, None]).sum()
        return round(float(picked), 4)

    def _thumbnails(self, clip_frames: np.ndarray) -> list[dict[str, Any]]:
        import numpy as np

        count = len(clip_frames)
        shown = min(count, self.limits.max_frames_shown)
        if shown == 0:
            return []
        picks = np.linspace(0, count - 1, shown).round().astype(int)
        return [{"index": int(i), "src": _jpeg_data_uri(np.ascontiguousarray(clip_frames[i]))}
                for i in picks]


def _client_reason(error: str, path: Path) -> str:
    """A decode failure for the client: one line, the server's temp path replaced."""
    text = " ".join(error.split()).replace(str(path), "the upload")
    text = text.replace("cannot decode video the upload: ", "")
    return f"cannot decode the upload as a video: {text}"[:300]
