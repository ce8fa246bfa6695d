"""``s2vt serve``: every bad request is a 4xx JSON line, uploads never outlive their request,
decoding is contained, load is bounded; and a real server on loopback under concurrency."""

from __future__ import annotations

import base64
import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="s2vt serve needs the serve extra (pip install "
                    "'s2vt[serve]')")
from fastapi.testclient import TestClient  # noqa: E402
from hubcache import make_model_dir  # noqa: E402
from videos import write_video  # noqa: E402

from s2vt.captioner import Captioner  # noqa: E402
from s2vt.serve.app import create_app, make_upload_dir  # noqa: E402
from s2vt.serve.engine import CaptionEngine  # noqa: E402
from s2vt.serve.limits import ServeLimits  # noqa: E402

LIMITS = ServeLimits(max_upload_mb=1.0, workers=1, queue=1, decode_timeout=4.0, retry_after=1)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A TestClient on an app with a tiny model, small limits and fault injection."""
    root = tmp_path_factory.mktemp("serve")
    captioner = Captioner.from_pretrained(make_model_dir(root / "model"), beam_size=3)
    engine = CaptionEngine(captioner, LIMITS, decode_fn="servefaults:content_faulty_decode")
    folder = make_upload_dir(root)
    app = create_app(engine, LIMITS, upload_dir=folder)
    clip = write_video(root / "clip.mp4", num_frames=30, width=64, height=48)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, clip, folder, engine
    assert not folder.exists()  # removed at shutdown


def upload(client, data: bytes, name: str = "clip.mp4", field: str = "file", **params):
    return client.post("/api/caption", params=params, files={field: (name, data, "video/mp4")})


def assert_error(response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status and text in body["error"], body
    assert "Traceback" not in response.text and "\n" not in body["error"]


def test_page_health_and_openapi(served):
    client, _, folder, _ = served
    page = client.get("/")
    assert page.status_code == 200 and "<title>s2vt: caption a video</title>" in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    # Works offline: nothing is loaded from another host.
    assert "http://" not in page.text and "https://" not in page.text
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["model"]["encoder"] == "tiny"
    assert health["limits"]["max_upload_mb"] == 1.0
    schema = client.get("/openapi.json").json()
    body = schema["paths"]["/api/caption"]["post"]["requestBody"]["content"]
    assert body["multipart/form-data"]["schema"]["required"] == ["file"]
    assert folder.stat().st_mode & 0o777 == 0o700


def _teacher_forced_log_prob(captioner, features, caption: str) -> float:
    """log p(caption | video) by one forward pass: what each listed log p must equal (its
    <eos> counts unless the caption ran to the longest length without one)."""
    import torch

    from s2vt.models.inputs import fit_frames

    loaded = captioner.loaded
    array = fit_frames(features, loaded.config.max_frames)
    ended = len(caption.split()) < captioner.max_len
    ids = torch.tensor([loaded.vocab.encode(caption, add_bos=True, add_eos=ended)])
    feats = torch.from_numpy(array.astype("float32"))[None]
    mask = torch.ones(feats.shape[:2], dtype=torch.bool)
    with torch.inference_mode():
        logits = loaded.model(feats, mask, ids[:, :-1])
        logp = torch.log_softmax(logits.float(), dim=-1)
    return float(logp.gather(-1, ids[:, 1:, None]).sum())


def test_caption_an_upload_lists_the_n_best_beams(served, tmp_path):
    client, clip, folder, engine = served
    response = upload(client, clip.read_bytes())
    assert response.status_code == 200, response.text
    result = response.json()
    hypotheses = result["hypotheses"]
    assert isinstance(result["caption"], str) and result["caption"]
    # The N best beams of one beam search: N = the beam width, distinct, best first.
    assert len(hypotheses) == 3 and hypotheses[0]["caption"] == result["caption"]
    assert {h["search"] for h in hypotheses} == {"beam search, 3 beams"}
    assert len({h["caption"] for h in hypotheses}) == 3
    ranked = [h["log_prob"] / (h["words"] + 1) for h in hypotheses]
    assert ranked == sorted(ranked, reverse=True)
    features = engine.captioner.video_features(clip)
    assert result["caption"] == engine.captioner.caption_features([features], beam_size=3)[0]
    for h in hypotheses:
        assert h["words"] == len(h["caption"].split()) and h["attention"] is None
        assert h["log_prob"] == pytest.approx(
            _teacher_forced_log_prob(engine.captioner, features, h["caption"]), abs=2e-4)
    assert "the 3 final beams of one beam search" in result["nbest_note"]
    assert "only its best beam" not in result["nbest_note"]
    assert result["attention"] is None
    assert result["attention_note"] == "this model has no attention over frames"
    assert result["num_frames"] == 4 and len(result["frames"]) == 4
    from PIL import Image

    head, data = result["frames"][0]["src"].split(",", 1)
    assert head == "data:image/jpeg;base64"
    assert Image.open(io.BytesIO(base64.b64decode(data))).size == (32, 32)
    wide = upload(client, clip.read_bytes(), beam_size=5).json()["hypotheses"]
    assert len(wide) == 5 and len({h["caption"] for h in wide}) == 5
    # Greedy only, no thumbnails.
    lean = upload(client, clip.read_bytes(), beam_size=1, frames="false").json()
    assert [h["search"] for h in lean["hypotheses"]] == ["greedy"] and lean["frames"] == []
    assert lean["caption"] == engine.captioner.caption_features([features], beam_size=1)[0]
    assert list(folder.iterdir()) == []


def _attention_model_dir(out: Path) -> Path:
    """An untrained s2vt_att model dir for the tiny encoder (as make_model_dir)."""
    import torch
    from hubcache import CAPTIONS, ENCODER, SAMPLING

    from s2vt.checkpoint import save_model_dir
    from s2vt.models import ModelConfig, build_model
    from s2vt.text import Vocabulary

    torch.manual_seed(1)
    vocab = Vocabulary.build(CAPTIONS)
    config = ModelConfig(name="s2vt_att", feature_dim=48, vocab_size=len(vocab), embed_size=8,
                         hidden_size=8, dropout=0.0, max_frames=3)
    save_model_dir(out, build_model(config), config, vocab, ENCODER, SAMPLING,
                   features={"feature_dim": 48, "image_size": 32, "dtype": "float16"})
    return out


def test_attention_model_shows_which_frames_each_word_looked_at(tmp_path):
    """s2vt_att: per word of every beam, its weights over the frames the model read (the
    model reads 3 of the 4 sampled frames: its max_frames), the best caption's on top."""
    captioner = Captioner.from_pretrained(_attention_model_dir(tmp_path / "att"), beam_size=3)
    engine = CaptionEngine(captioner, LIMITS)
    app = create_app(engine, LIMITS, upload_dir=make_upload_dir(tmp_path))
    clip = write_video(tmp_path / "clip.mp4", num_frames=30, width=64, height=48)
    with TestClient(app) as client:
        assert client.get("/api/health").json()["model"]["attention"] is True
        result = upload(client, clip.read_bytes()).json()
    assert len(result["hypotheses"]) == 3 and result["attention_note"] is None
    attention = result["attention"]
    assert attention["frames"] == [0, 2, 3]  # fit_frames of 4 to 3: evenly, ends kept
    assert attention["words"] == result["caption"].split()
    assert attention["weights"] == result["hypotheses"][0]["attention"]
    (scored,) = captioner.caption_features_scored([captioner.video_features(clip)])
    for h in result["hypotheses"]:
        assert len(h["attention"]) == h["words"]
        for row in h["attention"]:
            assert len(row) == 3 and sum(row) == pytest.approx(1.0, abs=1e-3)
    np.testing.assert_allclose(attention["weights"], scored[0].attention, atol=1e-4)


def test_a_fused_model_dir_is_served(tmp_path):
    from s2vt.fusing import fuse

    members = [make_model_dir(tmp_path / name) for name in ("a", "b")]
    fused = fuse(members, tmp_path / "fused", alpha=0.5).out
    engine = CaptionEngine(Captioner.from_pretrained(fused, beam_size=2), LIMITS)
    app = create_app(engine, LIMITS, upload_dir=make_upload_dir(tmp_path))
    clip = write_video(tmp_path / "clip.mp4", num_frames=30, width=64, height=48)
    with TestClient(app) as client:
        model = client.get("/api/health").json()["model"]
        result = upload(client, clip.read_bytes()).json()
    assert model["architecture"] == "fused: s2vt rgb x 0.5 + s2vt rgb x 0.5"
    assert model["attention"] is False and model["encoder"] == "tiny"
    assert len(result["hypotheses"]) == 2 and result["num_frames"] == 4
    assert len(result["frames"]) == 4


def multipart(data: bytes, boundary: str = "XyZ", field: str = "file") -> bytes:
    return (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"clip.mp4\"\r\nContent-Type: video/mp4\r\n\r\n").encode() + data + \
        f"\r\n--{boundary}--\r\n".encode()


def test_each_bad_request_is_one_clear_4xx(served):
    client, clip, folder, _ = served
    video = clip.read_bytes()
    cases = [
        (client.post("/api/caption"), 400, "expected a file upload: send the video as "
                                           "multipart/form-data in a field named 'file'"),
        (client.post("/api/caption", json={"file": "clip.mp4"}), 400, "expected a file upload"),
        (upload(client, video, field="video"), 400,
         "no file in the field 'file' (fields sent: 'video')"),
        (client.post("/api/caption", data={"file": "clip.mp4"}), 400, "expected a file upload"),
        (client.post("/api/caption", files={"file": (None, b"clip.mp4")}), 400,
         "the field 'file' holds text, not a file"),
        (upload(client, b""), 400, "the uploaded file is empty"),
        (upload(client, b"just some text, not a video\n" * 20, name="notes.txt"), 422,
         "cannot decode the upload as a video"),
        (upload(client, video[: len(video) // 3]), 422, "cannot decode the upload as a video"),
        (upload(client, b"\0" * (LIMITS.max_upload_bytes + 1)), 413, "upload too large"),
        (client.post("/api/caption", content=multipart(video)[:-40],
                     headers={"content-type": "multipart/form-data; boundary=XyZ"}),
         400, "the upload is incomplete"),
        (upload(client, video, beam_size=0), 400, "bad request: beam_size"),
        (upload(client, video, beam_size="wide"), 400, "bad request: beam_size"),
        (client.get("/api/nothing"), 404, "Not Found"),
        (client.get("/api/caption"), 405, "Method Not Allowed"),
    ]
    for response, status, text in cases:
        assert_error(response, status, text)
        assert list(folder.iterdir()) == []
    assert client.get("/api/health").json()["in_flight"] == 0


def test_size_limit_stops_a_stream_without_content_length(served):
    client, _, folder, _ = served
    chunk = b"\0" * 65536

    def body():
        yield b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\n"
        for _ in range(40):  # 2.5 MB, past the 1 MB limit
            yield chunk
        yield b"\r\n--XyZ--\r\n"

    response = client.post("/api/caption", content=body(),
                           headers={"content-type": "multipart/form-data; boundary=XyZ"})
    assert_error(response, 413, "upload too large: over 1.0 MB")
    assert list(folder.iterdir()) == []


def test_client_file_names_never_choose_where_files_go(served, tmp_path):
    client, clip, folder, _ = served
    seen: list[str] = []
    original = CaptionEngine.caption_file

    def spy(self, path, *args, **kwargs):
        seen.append(str(path))
        return original(self, path, *args, **kwargs)

    CaptionEngine.caption_file = spy
    try:
        for name in ("../../escape.mp4", "/etc/cron.d/x.mp4", "..\\..\\win.MP4", ".hidden",
                     "a\0b.mp4"):
            assert upload(client, clip.read_bytes(), name=name).status_code == 200
    finally:
        CaptionEngine.caption_file = original
    assert [Path(p).parent for p in seen] == [folder] * 5
    assert [Path(p).suffix for p in seen] == [".mp4", ".mp4", ".mp4", ".bin", ".mp4"]
    assert all(Path(p).name.startswith("upload-") for p in seen)
    assert not (folder.parent.parent / "escape.mp4").exists()
    assert list(folder.iterdir()) == []


def test_crashing_or_hanging_decoder_costs_only_that_request(served):
    client, clip, folder, _ = served
    assert_error(upload(client, b"CRASH" + clip.read_bytes()), 422, "decoder crashed")
    started = time.monotonic()
    assert_error(upload(client, b"HANG" + clip.read_bytes()), 422,
                 f"decoding timed out after {LIMITS.decode_timeout:g} s")
    assert time.monotonic() - started < LIMITS.decode_timeout + 20
    assert upload(client, clip.read_bytes()).status_code == 200
    assert list(folder.iterdir()) == []


def test_full_queue_gets_503_with_retry_after(served):
    client, clip, _, engine = served
    taken = 0
    while engine.admit():
        taken += 1
    try:
        assert taken == LIMITS.capacity
        response = upload(client, clip.read_bytes())
        assert_error(response, 503, "busy: 2 videos are being captioned or are waiting")
        assert response.headers["retry-after"] == "1"
        assert client.get("/api/health").status_code == 200  # health still answers
    finally:
        for _ in range(taken):
            engine.release()
    assert upload(client, clip.read_bytes()).status_code == 200


# ------------------------------------------------------------------ a real server

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_real_server_on_loopback_under_concurrent_requests(tmp_path):
    """``s2vt serve`` as a user starts it; 8 clients at once, each retrying after 503."""
    import httpx

    model = make_model_dir(tmp_path / "model")
    clip = write_video(tmp_path / "clip.mp4", num_frames=30, width=64, height=48).read_bytes()
    temp = tmp_path / "tmp"
    temp.mkdir()
    port = free_port()
    env = dict(os.environ, TMPDIR=str(temp), PYTHONUNBUFFERED="1")
    server = subprocess.Popen(
        [sys.executable, "-m", "s2vt", "serve", "--model", str(model), "--port", str(port),
         "--workers", "1", "--queue", "2", "--beam-size", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "".join(lines)
            try:
                if httpx.get(base + "/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not start: " + "".join(lines)
            time.sleep(0.2)
        outcomes: list[tuple[int, int]] = []  # (final status, 503s seen)

        def client() -> None:
            busy = 0
            with httpx.Client(base_url=base, timeout=60) as http:
                for _ in range(30):
                    response = http.post("/api/caption", files={"file": ("c.mp4", clip)})
                    if response.status_code != 503:
                        break
                    busy += 1
                    time.sleep(float(response.headers["retry-after"]))
            outcomes.append((response.status_code, busy))

        threads = [threading.Thread(target=client) for _ in range(8)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not any(thread.is_alive() for thread in threads)
        assert time.monotonic() - started < 120
        assert [status for status, _ in outcomes] == [200] * 8, outcomes
        assert sum(busy for _, busy in outcomes) > 0  # the queue bound turned some away
        health = httpx.get(base + "/api/health").json()
        assert health["served"] == 8 and health["in_flight"] == 0
        (upload_dir,) = temp.iterdir()
        assert upload_dir.name.startswith("s2vt-serve-") and list(upload_dir.iterdir()) == []
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    reader.join(timeout=5)
    output = "".join(lines)
    assert f"on http://127.0.0.1:{port}/" in output
    assert "listening on 127.0.0.1 only: this machine can connect, others cannot" in output
    assert list(temp.iterdir()) == []  # the upload folder goes with the server
