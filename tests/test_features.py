"""The feature store: round trips, meta checks, corrupt files, safe ids, failures, temp files."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from s2vt.errors import S2VTError
from s2vt.features import FeatureStore, VideoFeatures

META = {"encoder": {"name": "tiny", "pool": "avg"}, "feature_dim": 4, "image_size": 32,
        "sampling": {"mode": "uniform", "num_frames": 3}}


def _write(store: FeatureStore, video_id: str, value: float = 1.0, frames: int = 3) -> None:
    store.write(video_id, np.full((frames, store.feature_dim), value, np.float32),
                np.arange(frames), np.arange(frames) / 10.0, source=f"{video_id}.mp4", fps=10.0)


def test_round_trip_float16_with_frame_info(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path / "f", META)
    features = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    store.write("video1", features, [0, 5, 9], [0.0, 0.2, 0.36], source="a/video1.mp4", fps=25.0)

    again = FeatureStore.open(tmp_path / "f")
    got = again.read("video1")
    assert isinstance(got, VideoFeatures)
    assert got.features.dtype == np.float16 and got.features.shape == (3, 4)
    np.testing.assert_allclose(got.features, features, rtol=1e-3, atol=1e-3)
    assert got.indices.tolist() == [0, 5, 9]
    assert got.timestamps.tolist() == [0.0, 0.2, 0.36]
    assert got.fps == 25.0 and got.source == "a/video1.mp4"
    assert again.ids() == ["video1"] and again.has("video1") and not again.has("video2")
    assert again.feature_dim == 4
    meta = json.loads((tmp_path / "f" / "meta.json").read_text())
    assert meta["dtype"] == "float16" and meta["format_version"] == 1
    assert meta["encoder"] == {"name": "tiny", "pool": "avg"} and meta["image_size"] == 32
    info = json.loads((tmp_path / "f" / "video1.json").read_text())
    assert info["video_id"] == "video1" and info["indices"] == [0, 5, 9]


def test_create_reopens_matching_meta_and_names_the_differing_key(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path, META)
    _write(store, "a")
    assert FeatureStore.create(tmp_path, dict(META)).ids() == ["a"]

    with pytest.raises(S2VTError, match=r"different feature_dim: 4 there, 8 now"):
        FeatureStore.create(tmp_path, dict(META, feature_dim=8))
    other_encoder = dict(META, encoder={"name": "vgg16", "pool": "avg"})
    with pytest.raises(S2VTError, match=r"different encoder\.name: 'tiny' there, 'vgg16' now"):
        FeatureStore.create(tmp_path, other_encoder)
    with pytest.raises(S2VTError, match=r"different dtype"):
        FeatureStore.create(tmp_path, dict(META, dtype="float32"))


def test_open_missing_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(S2VTError, match=r"feature store not found: .*nowhere"):
        FeatureStore.open(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(S2VTError, match=r"not a feature store: meta\.json is missing"):
        FeatureStore.open(tmp_path / "empty")
    with pytest.raises(S2VTError, match="not in feature store"):
        FeatureStore.create(tmp_path / "s", META).read("nope")


def test_corrupt_files_name_the_file(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path, META)
    for name in ("cut", "shape", "dtype", "pickled"):
        _write(store, name)
    path = tmp_path / "cut.npy"
    path.write_bytes(path.read_bytes()[:-5])
    np.save(tmp_path / "shape.npy", np.zeros((3, 5), np.float16))
    np.save(tmp_path / "dtype.npy", np.zeros((3, 4), np.float64))
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)

    with pytest.raises(S2VTError, match=r"corrupt feature file .*cut\.npy"):
        store.read("cut")
    with pytest.raises(S2VTError, match=r"corrupt feature file .*shape\.npy: shape \(3, 5\)"):
        store.read("shape")
    with pytest.raises(S2VTError, match=r"corrupt feature file .*dtype\.npy: dtype float64"):
        store.read("dtype")
    with pytest.raises(S2VTError, match=r"corrupt feature file .*pickled\.npy"):
        store.read("pickled")
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(S2VTError, match=r"corrupt feature file .*empty\.npy"):
        store.read("empty")
    _write(store, "noinfo")
    (tmp_path / "noinfo.json").write_text("{not json")
    with pytest.raises(S2VTError, match=r"frame info file .*noinfo\.json"):
        store.read("noinfo")


def test_write_rejects_wrong_shapes(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path, META)
    with pytest.raises(S2VTError, match=r"expected \(T, 4\)"):
        store.write("a", np.zeros((3, 5)), [0, 1, 2], [0, 1, 2])
    with pytest.raises(S2VTError, match="3 frames but 2 indices"):
        store.write("a", np.zeros((3, 4)), [0, 1], [0, 1, 2])
    assert store.ids() == []


@pytest.mark.parametrize(
    "video_id",
    ["../../x", "/abs/path/v", "..", ".hidden", "a/b\\c", "meta", "META", "naïve clip 1",
     "%2E%2E", "failures"],
)
def test_hostile_ids_stay_inside_and_round_trip(tmp_path: Path, video_id: str) -> None:
    root = tmp_path / "deep" / "store"
    store = FeatureStore.create(root, META)
    _write(store, video_id, value=2.0)

    outside = {p for p in tmp_path.rglob("*") if root not in p.parents and p != root}
    assert outside == {tmp_path / "deep"}
    names = sorted(p.name for p in root.iterdir())
    assert "meta.json" in names and len(names) == 3
    assert all(not n.startswith(".") for n in names)
    assert json.loads((root / "meta.json").read_text())["feature_dim"] == 4
    assert store.ids() == [video_id]
    assert store.read(video_id).features[0, 0] == 2.0


def test_failures_merge_shards_and_later_success_supersedes(tmp_path: Path) -> None:
    FeatureStore.create(tmp_path, META).record_failure("a", "a.mp4", "first\nreason")
    shard1 = FeatureStore.create(tmp_path, META, shard=(1, 2))
    shard2 = FeatureStore.create(tmp_path, META, shard=(2, 2))
    shard1.record_failure("b", "b.mp4", "broken")
    shard2.record_failure("c", "c.mp4", "hung")
    shard2.record_failure("d", "d.mp4", "crashed")
    assert (tmp_path / "failures.1-of-2.jsonl").is_file()
    assert (tmp_path / "failures.2-of-2.jsonl").is_file()
    # A torn last line (writer killed mid-write) is skipped, and the next line is kept whole.
    with open(tmp_path / "failures.2-of-2.jsonl", "a") as handle:
        handle.write('{"video_id": "tor')
    shard2.record_failure("e", "e.mp4", "late")
    _write(shard2, "d")  # a rerun fixed d

    failures = FeatureStore.open(tmp_path).failures()
    assert [(f["video_id"], f["reason"]) for f in failures] == [
        ("a", "first reason"), ("b", "broken"), ("c", "hung"), ("e", "late")]
    assert failures[0]["path"] == "a.mp4"


def test_temp_files_are_ignored_and_only_dead_old_ones_removed(tmp_path: Path) -> None:
    store = FeatureStore.create(tmp_path, META)
    _write(store, "done")
    old = time.time() - 3600
    dead = tmp_path / ".x.npy.abc123.tmp"
    dead.write_bytes(b"partial")
    os.utime(dead, (old, old))
    young = tmp_path / ".y.npy.def456.tmp"
    young.write_bytes(b"partial")
    live = tmp_path / ".z.npy.ghi789.tmp"
    live.write_bytes(b"partial")
    os.utime(live, (old, old))
    assert store.ids() == ["done"]

    with open(live, "rb") as holder:  # a live writer holds the lock on its temp file
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        removed = store.clean_stale_temp_files()
    assert removed == 1
    assert not dead.exists() and young.exists() and live.exists()


def test_racing_creators_make_one_meta(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    errors: list[Exception] = []
    stores: list[FeatureStore] = []
    barrier = threading.Barrier(8)

    def create(meta: dict) -> None:
        barrier.wait()
        try:
            stores.append(FeatureStore.create(root, meta))
        except S2VTError as error:
            errors.append(error)

    threads = [threading.Thread(target=create, args=(META,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(stores) == 8
    assert sorted(p.name for p in root.iterdir()) == ["meta.json"]
    assert json.loads((root / "meta.json").read_text())["feature_dim"] == 4
