"""Receiving one uploaded video: streamed to a private folder, size-capped, never trusted.

The multipart body is parsed as it arrives (``python-multipart``'s streaming parser), not
spooled by the web framework first, so that:

- the size limit stops an upload while it streams (and a declared ``Content-Length`` over
  the limit is refused before a byte is read);
- the file goes straight to the server's private folder (mode 0700, one per server) under
  a name the server picks (``upload-XXXXXXXX.mp4``): the client's file name is used only to
  pick the suffix from a fixed list of video suffixes, never as a path;
- every failure is an :class:`UploadError` with an HTTP status and one line for the client,
  and the partial file is deleted.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from s2vt.datasets.core import CLIP_EXTENSIONS

if TYPE_CHECKING:
    from starlette.requests import Request

FIELD = "file"
# Form fields other than the file (there should be none) are skipped, up to this size.
_MAX_OTHER_BYTES = 64 * 1024
# Multipart framing around the file: a Content-Length may exceed the file by this much.
_FRAMING_SLACK = 64 * 1024
HOW_TO_SEND = f"send the video as multipart/form-data in a field named '{FIELD}' " \
              f"(e.g. curl -F {FIELD}=@clip.mp4 URL)"


class UploadError(Exception):
    """A request whose upload cannot be used: HTTP ``status`` and a one-line ``message``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _mb(size: float) -> str:
    return f"{size / (1024 * 1024):.1f} MB"


def safe_suffix(filename: str | None) -> str:
    """The client's file suffix if it is a known video suffix, else ``.bin`` (lowercase)."""
    if not filename:
        return ".bin"
    name = PureWindowsPath(PurePosixPath(filename).name).name  # strip either kind of folder
    suffix = os.path.splitext(name)[1].lower()
    return suffix if suffix in CLIP_EXTENSIONS else ".bin"


def _disposition(value: bytes) -> tuple[str | None, str | None]:
    """(field name, file name) of a part's Content-Disposition header."""
    from python_multipart.multipart import parse_options_header

    kind, params = parse_options_header(value)
    if kind.lower() != b"form-data":
        return None, None
    name, filename = params.get(b"name"), params.get(b"filename")
    return (name.decode("utf-8", errors="replace") if name is not None else None,
            filename.decode("utf-8", errors="replace") if filename is not None else None)


class _Receiver:
    """Callback state of one multipart parse."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.path: Path | None = None
        self.size = 0
        self.other_bytes = 0
        self.fields: list[str] = []
        self.finished_file = False
        self.ended = False
        self._handle = None
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._writing = False

    # -- python-multipart callbacks
    def on_part_begin(self) -> None:
        self._headers = {}
        self._writing = False

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.strip().lower()] = self._header_value.strip()
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        name, filename = _disposition(self._headers.get(b"content-disposition", b""))
        self.fields.append(name if name is not None else "?")
        if name == FIELD and filename is not None and self.path is None:
            fd, raw = tempfile.mkstemp(prefix="upload-", suffix=safe_suffix(filename),
                                       dir=self.folder)
            self.path = Path(raw)
            self._handle = os.fdopen(fd, "wb")
            self._writing = True

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        count = end - start
        if not self._writing:
            self.other_bytes += count
            if self.other_bytes > _MAX_OTHER_BYTES:
                raise UploadError(413, f"form fields other than '{FIELD}' are too large")
            return
        self.size += count
        if self.size > self.max_bytes:
            raise UploadError(413, f"upload too large: over {_mb(self.max_bytes)}, the "
                                   "limit of this server (s2vt serve --max-upload-mb)")
        self._handle.write(data[start:end])

    def on_part_end(self) -> None:
        if self._writing:
            self._handle.close()
            self._handle = None
            self._writing = False
            self.finished_file = True

    def on_end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def callbacks(self) -> dict:
        return {name: getattr(self, name) for name in (
            "on_part_begin", "on_header_field", "on_header_value", "on_header_end",
            "on_headers_finished", "on_part_data", "on_part_end", "on_end")}


async def receive_upload(request: Request, folder: Path, max_bytes: int) -> Path:
    """Stream the video of a ``multipart/form-data`` request into ``folder``.

    Args:
        request: the incoming request (its body is read here).
        folder: the server's private upload folder.
        max_bytes: the largest file accepted.

    Returns:
        The saved file (the caller deletes it).

    Raises:
        UploadError: 400 (not multipart, no ``file`` field, empty or incomplete upload,
            malformed body, client gone), 413 (too large).
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser, parse_options_header
    from starlette.requests import ClientDisconnect

    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind.lower() != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(400, f"expected a file upload: {HOW_TO_SEND}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + _FRAMING_SLACK:
        raise UploadError(413, f"upload too large: {_mb(int(length))}, the limit of this "
                               f"server is {_mb(max_bytes)} (s2vt serve --max-upload-mb)")
    receiver = _Receiver(folder, max_bytes)
    parser = MultipartParser(params[b"boundary"], receiver.callbacks())
    try:
        try:
            async for chunk in request.stream():
                if chunk:
                    parser.write(chunk)
            parser.finalize()
        except ClientDisconnect:
            raise UploadError(400, "the client disconnected during the upload") from None
        except MultipartParseError as error:
            raise UploadError(400, f"malformed multipart body ({error})") from None
        finally:
            receiver.close()
        if receiver.path is None and FIELD in receiver.fields:
            raise UploadError(400, f"the field '{FIELD}' holds text, not a file; {HOW_TO_SEND}")
        if receiver.path is None:
            sent = ", ".join(f"'{name}'" for name in receiver.fields) or "none"
            raise UploadError(400, f"no file in the field '{FIELD}' (fields sent: {sent}); "
                                   f"{HOW_TO_SEND}")
        if not receiver.finished_file or not receiver.ended:
            raise UploadError(400, "the upload is incomplete (the request ended before the "
                                   "end of the form)")
        if receiver.size == 0:
            raise UploadError(400, "the uploaded file is empty")
    except BaseException:
        if receiver.path is not None:
            receiver.path.unlink(missing_ok=True)
        raise
    return receiver.path
