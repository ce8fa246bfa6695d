"""What one ``s2vt serve`` process accepts: upload size, concurrency, decode time."""

from __future__ import annotations

from dataclasses import dataclass

from s2vt.errors import ConfigError


@dataclass(frozen=True)
class ServeLimits:
    """Bounds that keep the server steady under load and hostile input.

    Attributes:
        max_upload_mb: the largest upload accepted (MiB); bigger ones get 413 before or
            while they stream in, so disk use is bounded too.
        workers: videos captioned at the same time (each decodes in its own process).
        queue: requests that may wait for a worker; one more gets 503 with Retry-After.
            Requests in flight (uploading, waiting or running) are at most
            ``workers + queue``, which bounds memory and temporary disk space.
        decode_timeout: seconds a video may take to decode before its worker is killed and
            the request fails (a hanging decoder costs one request, not the server).
        retry_after: seconds suggested to a client turned away with 503.
        max_beam_size: the widest beam a client may ask for.
        max_frames_shown: frames returned as thumbnails (the strip on the page).
    """

    max_upload_mb: float = 200.0
    workers: int = 1
    queue: int = 4
    decode_timeout: float = 60.0
    retry_after: int = 5
    max_beam_size: int = 10
    max_frames_shown: int = 32

    def __post_init__(self) -> None:
        for key in ("max_upload_mb", "decode_timeout"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"serve {key} must be > 0, got {getattr(self, key)}")
        for key, low in (("workers", 1), ("queue", 0), ("retry_after", 1),
                         ("max_beam_size", 1), ("max_frames_shown", 0)):
            if getattr(self, key) < low:
                raise ConfigError(f"serve {key} must be >= {low}, got {getattr(self, key)}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def capacity(self) -> int:
        """Requests in flight at most (running + waiting)."""
        return self.workers + self.queue
