"""``s2vt serve --model DIR [--host 127.0.0.1] [--port 8000]``: a local captioning web page."""

from __future__ import annotations

import argparse
import ipaddress
import logging

from s2vt.errors import S2VTError
from s2vt.hub import MODEL_HELP, resolve_model

log = logging.getLogger(__name__)
INSTALL_HINT = "s2vt serve needs the web extra: pip install 's2vt[serve]' (fastapi, uvicorn, " \
               "python-multipart)"


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "serve",
        help="a local web page (and JSON API) that captions uploaded videos",
        description=(
            "Serve a web page where you drop a video and see its sampled frames, its caption "
            "and the best captions with their log-probabilities, plus a JSON API: POST "
            "/api/caption (multipart field 'file'), GET /api/health, GET /openapi.json. "
            "Listens on 127.0.0.1 (this machine only) unless --host says otherwise."
        ),
    )
    parser.add_argument("--model", required=True, help=MODEL_HELP)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; "
                             "0.0.0.0 opens it to the network)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--beam-size", type=int, default=5, help="default beam width")
    parser.add_argument("--max-upload-mb", type=float, default=200.0,
                        help="largest upload accepted, in MB (default 200)")
    parser.add_argument("--workers", type=int, default=1,
                        help="videos captioned at the same time (default 1)")
    parser.add_argument("--queue", type=int, default=4,
                        help="requests that may wait; more get 503 + Retry-After (default 4)")
    parser.add_argument("--decode-timeout", type=float, default=60.0,
                        help="seconds a video may take to decode (default 60)")
    return parser


def is_loopback(host: str) -> bool:
    """True for localhost or an address in 127.0.0.0/8 or ::1."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from s2vt.serve.app import create_app
    except ImportError:
        raise S2VTError(INSTALL_HINT) from None
    from s2vt.captioner import Captioner
    from s2vt.serve.engine import CaptionEngine
    from s2vt.serve.limits import ServeLimits

    if not 0 < args.port < 65536:
        raise S2VTError(f"--port must be 1..65535, got {args.port}")
    limits = ServeLimits(max_upload_mb=args.max_upload_mb, workers=args.workers,
                         queue=args.queue, decode_timeout=args.decode_timeout,
                         max_beam_size=max(10, args.beam_size))
    if args.beam_size < 1:
        raise S2VTError(f"--beam-size must be at least 1, got {args.beam_size}")
    folder = resolve_model(args.model)
    captioner = Captioner.from_pretrained(folder, device=args.device, beam_size=args.beam_size)
    engine = CaptionEngine(captioner, limits)  # model and encoder loaded once, here
    app = create_app(engine, limits)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"s2vt serve: model {folder} on http://{shown}:{args.port}/ "
          f"(API: POST /api/caption, GET /api/health, GET /openapi.json)", flush=True)
    if is_loopback(args.host):
        print(f"listening on {args.host} only: this machine can connect, others cannot "
              "(--host 0.0.0.0 to open it to the network)", flush=True)
    else:
        print(f"WARNING: listening on {args.host}: anyone who can reach this machine can "
              "upload videos to it", flush=True)
    print(f"limits: uploads up to {limits.max_upload_mb:g} MB, {limits.workers} at a time, "
          f"{limits.queue} waiting, {limits.decode_timeout:g} s to decode", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info",
                timeout_keep_alive=5, limit_concurrency=limits.capacity + 32)
    return 0
