"""Reliability: messy video folders, contained decoder crashes, kill -9, hostile
files and ids, and wrong combinations of artifacts: each ends in a clear, safe outcome.

Every bad file is made on the fly. What other test files already show is not repeated
here (see docs/reliability.md for the table of guarantees and their tests). Decoder
faults are injected with ``videos.faulty_decode`` (tests/videos.py).
"""

from __future__ import annotations

import json
import pickle
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest
from videos import extract_job, moving_square_frames, write_video

from s2vt.cli import main
from s2vt.features import FeatureStore
from s2vt.video import SamplingConfig, read_clip

TINY_SPEC = {"name": "tiny", "weights": None, "pool": "avg", "image_size": 32,
             "precision": "fp32"}
TINY_DIM = 48
SAMPLING = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}

# The messy folder: file stem -> (kind, expected failure reason or None for a good clip).
# "cut faststart" (index up front, data cut off) yields the frames that are there, flagged
# partial in its record.
GOOD = ("good one", "café ünïcode", "one frame", "odd 17x13", "uhd 4k", "cut faststart")
BAD = {
    "empty": "empty file (0 bytes)",
    "notes": "not a readable video",
    "cut": "not a readable video",                       # mp4 index at the end: lost
    "audio": "no video stream",
}

# Peak RSS allowed for `s2vt extract` and its decode worker on the messy folder (4K clip
# included); measured about 0.65 GiB on the 2-core dev machine, most of it torch itself.
RSS_LIMIT_KIB = 2 * 1024 * 1024


class Payload:
    """Unpickling this creates ``marker``: the file exists only if the pickle ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


# --------------------------------------------------------------------------- makers
def _audio_only(path: Path) -> Path:
    """An mp4 holding one AAC audio stream and no video."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        for i in range(8):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_messy_folder(folder: Path) -> Path:
    """Good clips (odd sizes, 1 frame, 4K, spaces, non-ASCII) mixed with broken files."""
    folder.mkdir(parents=True)
    write_video(folder / "good one.mp4", num_frames=12, fps=10, width=64, height=48)
    write_video(folder / "café ünïcode.mp4", num_frames=10, fps=10, width=48, height=64)
    write_video(folder / "one frame.mp4", num_frames=1, width=64, height=48)
    # x264 needs 4:4:4 for odd sizes.
    write_video(folder / "odd 17x13.mp4", fps=10, frames=moving_square_frames(8, 17, 13),
                pix_fmt="yuv444p")
    write_video(folder / "uhd 4k.mp4", fps=10, frames=np.full((3, 2160, 3840, 3), 90, np.uint8))
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.mp4").write_text("these are my holiday notes, not a video\n")
    noise = np.random.default_rng(0).integers(0, 255, (20, 120, 160, 3), dtype=np.uint8)
    for name, faststart in (("cut", False), ("cut faststart", True)):
        full = write_video(folder / f"{name} full.mp4", fps=10, frames=noise,
                           faststart=faststart)
        (folder / f"{name}.mp4").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
        full.unlink()
    _audio_only(folder / "audio.mp4")
    return folder


def make_model_dir(root: Path, feature_dim: int = TINY_DIM, seed: int = 0) -> Path:
    """A small random S2VT model dir whose features come from the tiny encoder."""
    import torch

    from s2vt.checkpoint import save_model_dir
    from s2vt.models import build_model
    from s2vt.models.config import ModelConfig
    from s2vt.text import Vocabulary

    vocab = Vocabulary.build(["a square moves to the right", "a red circle spins"])
    config = ModelConfig(feature_dim=feature_dim, vocab_size=len(vocab), embed_size=8,
                         hidden_size=8, dropout=0.0, max_frames=8)
    torch.manual_seed(seed)
    save_model_dir(root, build_model(config), config, vocab, encoder_spec=TINY_SPEC,
                   sampling=SAMPLING)
    return root


def make_store(root: Path, ids: list[str], dim: int = TINY_DIM,
               encoder: dict | None = None) -> Path:
    store = FeatureStore.create(root, {"feature_dim": dim, "encoder": encoder or TINY_SPEC,
                                       "image_size": 32, "sampling": SAMPLING})
    rng = np.random.default_rng(0)
    for video_id in ids:
        store.write(video_id, rng.standard_normal((4, dim)), np.arange(4), np.arange(4) / 10)
    return root


def make_annotations(path: Path, splits: dict[str, list[str]],
                     files: dict[str, str] | None = None) -> Path:
    """MSR-VTT layout: ``splits`` = split -> ids; ``files`` = id -> clip path field."""
    videos, sentences = [], []
    for split, ids in splits.items():
        for i, video_id in enumerate(ids):
            entry = {"video_id": video_id, "split": split}
            if files and video_id in files:
                entry["file"] = files[video_id]
            videos.append(entry)
            color = ("red", "blue", "green")[i % 3]
            sentences += [{"video_id": video_id, "caption": f"a {color} square moves"},
                          {"video_id": video_id, "caption": f"the square is {color}"}]
    path.write_text(json.dumps({"videos": videos, "sentences": sentences}, ensure_ascii=False))
    return path


def error_line(capsys: pytest.CaptureFixture, code: int) -> str:
    """Assert a user error: exit 2, no traceback, last stderr line ``error: ...`` (only one)."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: "), err
    assert sum(line.startswith("error: ") for line in lines) == 1, err
    return lines[-1]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def messy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_messy_folder(tmp_path_factory.mktemp("messy") / "my videos")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_model_dir(tmp_path_factory.mktemp("model") / "model")


# --------------------------------------------------------------------------- bad videos
def test_extract_messy_folder_does_every_good_clip_with_bounded_memory(
    messy: Path, tmp_path: Path
) -> None:
    """The real `s2vt extract` process: good clips done, each bad one a one-line reason."""
    out = tmp_path / "features"
    rss_file = tmp_path / "rss"
    # Peak RSS of extract and its decode worker, measured from outside by a parent that
    # waits for them (RUSAGE_CHILDREN covers every waited-for descendant).
    wrapper = ("import resource, subprocess, sys\n"
               "code = subprocess.call(sys.argv[2:])\n"
               "open(sys.argv[1], 'w').write(str(resource.getrusage("
               "resource.RUSAGE_CHILDREN).ru_maxrss))\n"
               "sys.exit(code)\n")
    command = [sys.executable, "-m", "s2vt", "extract", str(messy), "--out", str(out),
               "--encoder", "tiny", "--num-frames", "4", "--workers", "1", "--no-progress"]
    done = subprocess.run([sys.executable, "-c", wrapper, str(rss_file), *command],
                          capture_output=True, text=True, timeout=300)

    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    failures_file = out / "failures.jsonl"
    assert (f"extract: {len(GOOD)} done, 0 skipped, {len(BAD)} failed -> {out} "
            f"(reasons in {failures_file})") in done.stderr
    store = FeatureStore.open(out)
    assert store.ids() == sorted(GOOD)
    for video_id in GOOD:
        got = store.read(video_id)
        assert got.features.shape == (4, TINY_DIM) and np.isfinite(got.features).all()
        assert Path(got.source).name == f"{video_id}.mp4"
    assert store.read("one frame").indices.tolist() == [0, 0, 0, 0]
    assert store.read("uhd 4k").indices.tolist() == [0, 1, 1, 2]
    decoding = json.loads(store.info_path("cut faststart").read_text())["decoding"]
    assert decoding["partial"] and decoding["total_frames"] < 20
    assert "the header lists 20 frames" in decoding["warning"]
    # the files stay inside the store, named by reversible safe names
    assert {p.parent for p in tmp_path.rglob("*.npy")} == {out}

    lines = failures_file.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(BAD)
    failures = {record["video_id"]: record for record in map(json.loads, lines)}
    assert sorted(failures) == sorted(BAD)
    for video_id, reason in BAD.items():
        path = messy / f"{video_id}.mp4"
        assert failures[video_id]["path"] == str(path)
        assert failures[video_id]["reason"].startswith(f"cannot decode video {path}: {reason}")
        # the same one line on screen
        assert f"failed: {video_id}: {failures[video_id]['reason']}\n" in done.stderr

    peak_kib = int(rss_file.read_text())
    assert 0 < peak_kib < RSS_LIMIT_KIB, f"peak RSS {peak_kib / 1024:.0f} MiB"


def test_caption_messy_folder_captions_good_clips_and_names_each_bad_one(
    messy: Path, model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    code = main(["caption", str(messy), "--model", str(model_dir), "--beam-size", "1",
                 "--json"])
    captured = capsys.readouterr()
    assert code == 1
    results = {Path(r["path"]).stem: r for r in json.loads(captured.out)}
    assert sorted(results) == sorted([*GOOD, *BAD])
    for video_id in GOOD:
        caption = results[video_id]["caption"]
        # (an untrained model may well say nothing: a string is all that is asked here)
        assert isinstance(caption, str) and "error" not in results[video_id]
    err_lines = captured.err.splitlines()
    for video_id, reason in BAD.items():
        path = messy / f"{video_id}.mp4"
        assert results[video_id]["caption"] is None
        assert results[video_id]["error"].startswith(f"cannot decode video {path}: {reason}")
        assert f"error: {results[video_id]['error']}" in err_lines
    assert f"{len(BAD)} of {len(GOOD) + len(BAD)} videos failed" in err_lines
    assert "Traceback" not in captured.err


def test_caption_contains_crashing_and_hanging_decoders(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`s2vt caption` on several files decodes in a worker: a segfault costs one video."""
    from s2vt.captioner import Captioner

    good = write_video(tmp_path / "good.mp4", num_frames=12, fps=10, width=64, height=48)
    other = write_video(tmp_path / "other.mp4", num_frames=15, fps=10, width=48, height=48)
    crash, hang = tmp_path / "crash.mp4", tmp_path / "hang.mp4"
    shutil.copy(good, crash)
    shutil.copy(good, hang)
    captioner = Captioner.from_pretrained(model_dir, beam_size=1)
    encoder = captioner._get_encoder()
    seen: list[np.ndarray] = []
    original = encoder.encode

    def recording_encode(frames):
        seen.append(np.array(frames))
        return original(frames)

    monkeypatch.setattr(encoder, "encode", recording_encode)

    results = list(captioner.caption_videos(
        [good, crash, hang, other], decode_timeout=3.0, decode_fn="videos:faulty_decode"))

    # (failures are reported at once, good clips when their caption batch is done)
    by_path = {r.path: r for r in results}
    assert len(results) == 4 and set(by_path) == {good, crash, hang, other}
    assert by_path[crash].error == (f"cannot decode video {crash}: decoder crashed "
                                    "(killed by signal SIGSEGV)")
    assert by_path[hang].error == f"cannot decode video {hang}: decoding timed out after 3 s"
    assert by_path[crash].caption is None and by_path[hang].caption is None
    # The good clips were decoded exactly as in-process decoding does, and captioned alike.
    sampling = SamplingConfig(**SAMPLING)
    assert len(seen) == 2
    for frames, path in zip(seen, (good, other), strict=True):
        np.testing.assert_array_equal(frames, read_clip(path, sampling, 32).frames)
    inline = list(captioner.caption_videos([good, other], contained=False))
    assert [r.caption for r in inline] == [by_path[good].caption, by_path[other].caption]
    assert all(r.error is None for r in inline)


def test_caption_keeps_two_encodings_of_one_stem_apart_on_device_auto(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """a.mp4 and a.webm in one folder: one caption each, under its own path, each the
    caption that file gets alone (the two hold different motion)."""
    from s2vt.captioner import Captioner

    mp4 = write_video(tmp_path / "v" / "a.mp4", num_frames=12, fps=10, width=64, height=48)
    webm = write_video(tmp_path / "v" / "a.webm", fps=10,
                       frames=moving_square_frames(12, 64, 48)[::-1])
    code = main(["caption", str(tmp_path / "v"), "--model", str(model_dir), "--beam-size",
                 "1", "--json", "--device", "auto"])
    assert code == 0, capsys.readouterr().err
    results = json.loads(capsys.readouterr().out)
    assert [r["path"] for r in results] == [str(mp4), str(webm)]
    captioner = Captioner.from_pretrained(model_dir, device="auto", beam_size=1)
    assert captioner.device.type in ("cpu", "cuda")
    for result, path in zip(results, (mp4, webm), strict=True):
        assert result["caption"] == captioner(path)


def test_evaluate_takes_device_auto(combos: dict[str, Path], tmp_path: Path) -> None:
    command = ["evaluate", "--model", str(combos["model"]), "--features", str(combos["store"]),
               "--annotations", str(combos["annotations"]), "--out", str(tmp_path / "eval"),
               "--no-java", "--device", "auto"]
    assert main(command) == 0
    predictions = json.loads((tmp_path / "eval" / "predictions.json").read_text())
    assert sorted(p["video_id"] for p in predictions) == ["v0", "v1", "v2"]


# --------------------------------------------------------------------------- killed runs
def _kill_when(process: subprocess.Popen, ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 120
    while not ready():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "the moment to kill never came"
        time.sleep(0.002)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL


def test_extract_killed_right_after_creating_the_store_and_mid_rerun(tmp_path: Path) -> None:
    """kill -9 at two more moments than tests/test_extract.py: as soon as the store exists
    (nothing written yet), then in the middle of the rerun; a third run finishes the job."""
    out, command = extract_job(tmp_path, clips=8)

    def npys() -> set[str]:
        return {p.name for p in out.glob("*.npy")}

    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(first, lambda: (out / "meta.json").exists())
    FeatureStore.open(out)  # the meta is complete and readable
    before = npys()

    second = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _kill_when(second, lambda: len(npys() - before) >= 2)
    store = FeatureStore.open(out)
    finished = store.ids()
    assert 2 <= len(finished) < 8
    for video_id in finished:  # every file the killed runs left is complete
        assert store.read(video_id).features.shape == (60, TINY_DIM)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.suffix == ".npy"}

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{8 - len(finished)} done, {len(finished)} skipped, 0 failed" in done.stdout
    store = FeatureStore.open(out)
    assert store.ids() == [f"clip{i}" for i in range(8)]
    for video_id in store.ids():
        assert store.read(video_id).features.shape == (60, TINY_DIM)
    # finished work was not redone, and nothing is duplicated or half-written
    assert {name: (out / name).stat().st_mtime_ns for name in stamps} == stamps
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert visible == sorted({f"clip{i}{s}" for i in range(8) for s in (".npy", ".json")}
                             | {"meta.json", "extract_config.yaml"})


# --------------------------------------------------------------------------- untrusted files
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished 1-epoch training run on a tiny store (dim 8) via `s2vt train`."""
    root = tmp_path_factory.mktemp("trained")
    ids = [f"video{i}" for i in range(8)]
    features = make_store(root / "features", ids, dim=8)
    annotations = make_annotations(root / "annotations.json",
                                   {"train": ids[:6], "validate": ids[6:]})
    out = root / "run"
    args = ["train", "--features", str(features), "--annotations", str(annotations),
            "--out", str(out), "--no-progress", "--epochs", "1", "--threads", "1",
            "--set", "model.embed_size=8", "--set", "model.hidden_size=8",
            "--set", "batch_size=4", "--set", "device=cpu"]
    assert main(args) == 0
    return {"features": features, "annotations": annotations, "out": out}


def _plant_states(good: dict, marker: Path) -> dict[str, Callable[[Path], None]]:
    """train_state.pt contents that must all be refused: name -> writer."""
    import torch

    def torch_save(obj):
        return lambda path: torch.save(obj, path)

    def raw(data: bytes):
        return lambda path: path.write_bytes(data)

    return {
        "torch.save with a pickle payload": torch_save({"format_version": 1,
                                                        "x": Payload(marker)}),
        "payload inside the model weights": torch_save({**good, "model": Payload(marker)}),
        "raw pickle protocol 0": raw(pickle.dumps(Payload(marker), protocol=0)),
        "raw pickle protocol 5": raw(pickle.dumps(Payload(marker), protocol=5)),
        "no keys but the version": torch_save({"format_version": 1}),
        "empty rng list": torch_save({**good, "rng": []}),
        "foreign model weights": torch_save({**good, "model": {"w": torch.zeros(2)}}),
        "zero bytes": raw(b""),
    }


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 5")
def test_train_resume_refuses_planted_or_damaged_state_and_loses_nothing(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    import torch

    out = tmp_path / "run"
    shutil.copytree(trained["out"], out)
    state_path = out / "train_state.pt"
    good_bytes = state_path.read_bytes()
    good = torch.load(state_path, weights_only=True)
    weights_before = (out / "model.safetensors").read_bytes()
    marker = tmp_path / "pwned"
    resume = ["train", "--features", str(trained["features"]), "--annotations",
              str(trained["annotations"]), "--out", str(out), "--resume", "--epochs", "2",
              "--no-progress", "--threads", "1"]
    cut = good_bytes[: len(good_bytes) // 2]
    plants = {**_plant_states(good, marker), "cut in half": lambda p: p.write_bytes(cut)}
    for name, plant in plants.items():
        plant(state_path)
        line = error_line(capsys, main(resume))
        assert "training state" in line and str(state_path) in line, (name, line)
        assert not marker.exists(), name
        assert (out / "model.safetensors").read_bytes() == weights_before, name

    state_path.write_bytes(good_bytes)  # the genuine state still resumes
    assert main(resume) == 0
    assert "2 epochs" in capsys.readouterr().out


def test_planted_pickles_are_refused_by_every_command_that_loads_a_model_or_features(
    trained: dict[str, Path], messy: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The marker pattern through the CLI: caption, evaluate and train --init-from."""
    import torch

    marker = tmp_path / "pwned"
    clip = messy / "good one.mp4"
    features, annotations = trained["features"], trained["annotations"]
    commands = {
        "caption": lambda model: ["caption", str(clip), "--model", str(model)],
        "evaluate": lambda model: ["evaluate", "--model", str(model), "--features",
                                   str(features), "--annotations", str(annotations),
                                   "--split", "val", "--out", str(tmp_path / "eval"),
                                   "--no-java"],
        "train --init-from": lambda model: [
            "train", "--features", str(features), "--annotations", str(annotations),
            "--out", str(tmp_path / "ft"), "--init-from", str(model), "--no-progress"],
    }
    for target in ("model.safetensors", "config.json", "vocab.json"):
        model = tmp_path / f"planted-{target}"
        shutil.copytree(trained["out"], model, ignore=shutil.ignore_patterns("last"))
        if target == "model.safetensors":
            torch.save({"x": Payload(marker)}, model / target)
        else:
            (model / target).write_bytes(pickle.dumps(Payload(marker), protocol=2))
        for name, argv in commands.items():
            line = error_line(capsys, main(argv(model)))
            assert str(model / target) in line and "pickle" in line, (target, name, line)
    assert not marker.exists()
    assert not (tmp_path / "eval").exists() and not (tmp_path / "ft").exists()

    # A feature file carrying a pickled object array is refused the same way.
    store = tmp_path / "features"
    shutil.copytree(features, store)
    bomb = np.empty((4, 8), dtype=object)
    bomb[0, 0] = Payload(marker)
    with (store / "video0.npy").open("wb") as handle:
        np.save(handle, bomb, allow_pickle=True)
    line = error_line(capsys, main(["train", "--features", str(store), "--annotations",
                                    str(annotations), "--out", str(tmp_path / "t"),
                                    "--no-progress"]))
    assert f"corrupt feature file {store / 'video0.npy'}" in line
    assert not marker.exists()


@pytest.mark.parametrize(("hidden_size", "expected"), [
    (10**8, "tensor lstm1.bias_hh_l0 has shape (32,), the config needs (400000000,)"),
    (10**12, "the model config cannot be built"),
])  # fmt: skip
def test_model_config_asking_for_a_huge_model_allocates_nothing(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, hidden_size: int,
    expected: str
) -> None:
    """Shapes are checked on the meta device against the weights header before building."""
    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["model"]["hidden_size"] = hidden_size
    (model / "config.json").write_text(json.dumps(config))
    video = write_video(tmp_path / "clip.mp4", num_frames=8, width=64, height=48)
    line = error_line(capsys, main(["caption", str(video), "--model", str(model)]))
    assert expected in line, line


def test_hostile_ids_in_annotations_never_write_outside_the_output_folders(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """Ids like ../../x or an absolute path: extract, evaluate (report) and score stay inside."""
    root = tmp_path / "a" / "b" / "c"
    write_video(root / "clips" / "clip.mp4", num_frames=12, fps=10, width=64, height=48)
    absolute = str(tmp_path / "abs_escape")
    hostile = ["../../escape", "../../../../../../../../tmp/s2vt_escape", absolute, "..",
               ".hidden", "sub/dir", "plain"]
    annotations = make_annotations(root / "annotations.json", {"test": hostile},
                                   files={v: "clips/clip.mp4" for v in hostile})
    store, evaluation = root / "store", root / "eval"
    before = _files(tmp_path)

    assert main(["extract", str(annotations), "--out", str(store), "--encoder", "tiny",
                 "--num-frames", "4", "--no-progress"]) == 0
    assert sorted(FeatureStore.open(store).ids()) == sorted(hostile)
    assert main(["evaluate", "--model", str(model_dir), "--features", str(store),
                 "--annotations", str(annotations), "--out", str(evaluation), "--no-java",
                 "--beam-size", "1"]) == 0
    predictions = evaluation / "predictions.json"
    assert sorted(p["video_id"] for p in json.loads(predictions.read_text())) == sorted(hostile)
    assert main(["score", "--predictions", str(predictions), "--references", str(annotations),
                 "--no-java", "--out", str(evaluation / "rescored.json")]) == 0
    capsys.readouterr()

    new = _files(tmp_path) - before
    assert new and all(p.parent in (store, evaluation) for p in new), sorted(map(str, new))
    assert (evaluation / "report.html").is_file()
    assert not Path(absolute).exists() and not Path(absolute + ".npy").exists()
    assert not Path("/tmp/s2vt_escape.npy").exists()


# --------------------------------------------------------------------------- wrong combinations
@pytest.fixture(scope="module")
def combos(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict[str, Path]:
    """Artifacts that do not go together, each for one case below."""
    root = tmp_path_factory.mktemp("combos")
    ids = ["v0", "v1", "v2"]
    write_video(root / "videos" / "v0.mp4", num_frames=8, width=64, height=48)
    (root / "bad_train.yaml").write_text("epochs: 2\nlearning_rate: 0.1\n")
    (root / "bad_extract.yaml").write_text("encoder:\n  name: tiny\nbatchsize: 8\n")
    return {
        "root": root,
        "videos": root / "videos",
        "model": model_dir,
        "model64": make_model_dir(root / "model64", feature_dim=64),
        "store": make_store(root / "store", ids),
        "resnet_store": make_store(root / "resnet_store", ids,
                                   encoder=dict(TINY_SPEC, name="resnet50")),
        "annotations": make_annotations(root / "annotations.json", {"test": ids}),
        "missing": root / "no_such_annotations.json",
    }


def _train(c: dict[str, Path], *extra: str, annotations: str = "annotations") -> list[str]:
    return ["train", "--features", str(c["store"]), "--annotations", str(c[annotations]),
            "--out", str(c["root"] / "run"), "--no-progress", *extra]


def _evaluate(c: dict[str, Path], store: str = "store", annotations: str = "annotations",
              *extra: str) -> list[str]:
    return ["evaluate", "--model", str(c["model"]), "--features", str(c[store]),
            "--annotations", str(c[annotations]), "--out", str(c["root"] / "eval"),
            "--no-java", *extra]


WRONG = {
    "evaluate: features of another encoder": (
        lambda c: _evaluate(c, "resnet_store"),
        "encoder name is 'resnet50' in the store but 'tiny' for the model"),
    "caption: model dir whose encoder gives another dimension": (
        lambda c: ["caption", str(c["videos"] / "v0.mp4"), str(c["videos"] / "v0.mp4"),
                   "--model", str(c["model64"])],
        "expects 64-dim features but its encoder 'tiny' gives 48-dim features"),
    "caption: unknown device": (
        lambda c: ["caption", str(c["videos"] / "v0.mp4"), "--model", str(c["model"]),
                   "--device", "gpu"],
        "unknown device 'gpu'; use auto (CUDA when available, else CPU), cpu, cuda or cuda:N"),
    "evaluate: unknown device": (
        lambda c: _evaluate(c, "store", "annotations", "--device", "gpu"),
        "unknown device 'gpu'; use auto (CUDA when available, else CPU), cpu, cuda or cuda:N"),
    "train: config file with an unknown key": (
        lambda c: _train(c, "--config", str(c["root"] / "bad_train.yaml")),
        "unknown config key 'learning_rate'"),
    "train: wrong type": (
        lambda c: _train(c, "--set", "optimizer.lr=fast"),
        "config key 'optimizer.lr' must be of type float, got 'fast'"),
    "extract: config file with an unknown key": (
        lambda c: ["extract", str(c["videos"]), "--out", str(c["root"] / "f"),
                   "--config", str(c["root"] / "bad_extract.yaml")],
        "unknown config key 'batchsize'"),
    "extract: wrong type": (
        lambda c: ["extract", str(c["videos"]), "--out", str(c["root"] / "f"),
                   "--set", "sampling.num_frames=1.5"],
        "config key 'sampling.num_frames' must be of type int, got 1.5"),
    "train: missing annotation file": (
        lambda c: _train(c, annotations="missing"),
        "annotation file or folder not found: "),
    "evaluate: missing annotation file": (
        lambda c: _evaluate(c, "store", "missing"),
        "annotation file or folder not found: "),
    "extract: missing annotation file": (
        lambda c: ["extract", str(c["missing"]), "--out", str(c["root"] / "f")],
        "input not found: "),
    "train: empty split": (
        lambda c: _train(c),
        "split 'train' has no videos in"),
    "evaluate: empty split": (
        lambda c: _evaluate(c, "store", "annotations", "--split", "val"),
        "split 'val' has no videos in"),
}


@pytest.mark.parametrize("case", list(WRONG), ids=list(WRONG))
def test_wrong_combination_is_one_error_line(
    case: str, combos: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    build, expected = WRONG[case]
    line = error_line(capsys, main(build(combos)))
    assert expected in line, line
    assert not (combos["root"] / "run").exists() and not (combos["root"] / "eval").exists()
    assert not (combos["root"] / "f").exists()


def test_caption_features_of_another_dimension_are_refused(model_dir: Path) -> None:
    from s2vt.captioner import Captioner
    from s2vt.errors import S2VTError

    captioner = Captioner.from_pretrained(model_dir, beam_size=1)
    assert len(captioner.caption_features([np.zeros((4, TINY_DIM), np.float16)])) == 1
    with pytest.raises(S2VTError, match=r"shape \(4, 1280\) do not fit this model "
                                        r"\(expects \(T, 48\)\)"):
        captioner.caption_features([np.zeros((4, 1280), np.float16)])
