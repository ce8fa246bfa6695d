"""Hub model dirs, offline: loading from a huggingface_hub-shaped cache, refusing code and
pickles in it, what ``s2vt push`` uploads, and the model card."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from hubcache import make_hub_cache, make_model_dir, model_files

from s2vt.captioner import Captioner
from s2vt.cli import main
from s2vt.errors import S2VTError
from s2vt.hub import (
    ALLOWED,
    files_to_push,
    parse_hub_ref,
    push_model_dir,
    resolve_model,
)
from s2vt.modelcard import record_scores, write_model_card

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = "someone/s2vt-tiny"


@pytest.fixture
def offline_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


class Payload:
    """Unpickling this creates ``marker``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_cache_layout_is_the_one_huggingface_hub_reads(tmp_path, offline_cache):
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    model = make_model_dir(tmp_path / "model")
    snapshot = make_hub_cache(offline_cache, REPO, model_files(model))
    info = scan_cache_dir(offline_cache)
    assert info.warnings == []
    (repo,) = info.repos
    assert repo.repo_id == REPO and repo.repo_type == "model"
    (revision,) = repo.revisions
    assert revision.refs == {"main"}
    assert sorted(f.file_name for f in revision.files) == ["config.json", "model.safetensors",
                                                         "vocab.json"]
    assert Path(try_to_load_from_cache(REPO, "config.json", cache_dir=offline_cache)) == \
        snapshot / "config.json"


def test_hf_model_loads_offline_from_the_cache(tmp_path, offline_cache, caplog):
    model = make_model_dir(tmp_path / "model")
    snapshot = make_hub_cache(offline_cache, REPO, model_files(model))
    assert resolve_model(f"hf:{REPO}") == snapshot
    assert resolve_model(f"hf:{REPO}@main") == snapshot
    # from_pretrained takes a plain org/name when no such folder exists ...
    captioner = Captioner.from_pretrained(REPO, beam_size=1)
    assert captioner.loaded.path == snapshot
    local = Captioner.from_pretrained(model, beam_size=1)
    features = [np.ones((3, 48), dtype="float32")]
    assert captioner.caption_features(features) == local.caption_features(features)
    # ... and the CLI asks for hf: (a mistyped folder is a missing folder, not a download).
    assert resolve_model(REPO) == Path(REPO)


def test_missing_offline_and_bad_refs_are_one_line_errors(offline_cache):
    with pytest.raises(S2VTError, match=r"hf:nobody/nothing is not in the local Hugging Face "
                                        r"cache \(.*hub\) and HF_HUB_OFFLINE=1 is set"):
        resolve_model("hf:nobody/nothing")
    for bad in ("hf:noslash", "hf:../x", "hf:a/b/c", "hf:"):
        with pytest.raises(S2VTError, match="is not a Hub model: write hf:ORG/NAME"):
            parse_hub_ref(bad)
    assert parse_hub_ref("hf:a/b@v1") == ("a/b", "v1") and parse_hub_ref("runs/x") is None


def test_cli_caption_and_evaluate_take_hf_models(tmp_path, offline_cache, capsys):
    assert main(["caption", str(tmp_path / "none.mp4"), "--model", "hf:nobody/nothing"]) == 2
    assert "not in the local Hugging Face cache" in capsys.readouterr().err
    assert main(["evaluate", "--model", "hf:nobody/nothing", "--features", str(tmp_path),
                 "--annotations", str(tmp_path), "--out", str(tmp_path / "e")]) == 2
    assert "not in the local Hugging Face cache" in capsys.readouterr().err


def test_code_files_in_a_snapshot_are_ignored_never_run(tmp_path, offline_cache, caplog):
    marker = tmp_path / "ran"
    files = model_files(make_model_dir(tmp_path / "model"))
    files["modeling_s2vt.py"] = f"open({str(marker)!r}, 'w')\n".encode()
    files["__init__.py"] = files["modeling_s2vt.py"]
    files["sub/evil.py"] = files["modeling_s2vt.py"]
    files["pytorch_model.bin"] = pickle.dumps(Payload(marker))
    snapshot = make_hub_cache(offline_cache, REPO, files)
    captioner = Captioner.from_pretrained(f"hf:{REPO}")
    assert captioner.loaded.path == snapshot
    assert "ignoring 4 file(s) that are not part of a model dir" in caplog.text
    assert "modeling_s2vt.py" in caplog.text
    assert not marker.exists()


@pytest.mark.parametrize("target", ["model.safetensors", "config.json", "vocab.json"])
def test_pickles_in_a_snapshot_are_refused_never_unpickled(tmp_path, offline_cache, target):
    marker = tmp_path / "ran"
    files = model_files(make_model_dir(tmp_path / "model"))
    files[target] = pickle.dumps(Payload(marker))
    make_hub_cache(offline_cache, REPO, files)
    with pytest.raises(S2VTError, match=r"a Python pickle, not (safetensors|JSON); refusing"):
        Captioner.from_pretrained(f"hf:{REPO}")
    assert not marker.exists()


def test_pickle_weights_without_safetensors_are_refused(tmp_path, offline_cache):
    marker = tmp_path / "ran"
    files = model_files(make_model_dir(tmp_path / "model"))
    del files["model.safetensors"]
    files["pytorch_model.bin"] = pickle.dumps(Payload(marker))
    make_hub_cache(offline_cache, REPO, files)
    with pytest.raises(S2VTError, match="has pytorch_model.bin but no model.safetensors"):
        resolve_model(f"hf:{REPO}")
    assert not marker.exists()


class FakeApi:
    """Records what would be sent to the Hub; pushes nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        from huggingface_hub.utils import filter_repo_objects

        folder = Path(kwargs["folder_path"])
        names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        sent = list(filter_repo_objects(names, allow_patterns=kwargs["allow_patterns"]))
        self.calls.append(("upload_folder", {**kwargs, "sent": sent}))
        return type("CommitInfo", (), {"commit_url": "https://hub.invalid/commit/1"})()


def test_push_uploads_only_model_files_and_writes_a_card(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    model = make_model_dir(tmp_path / "model")
    (model / "train_state.pt").write_bytes(b"PK\x03\x04 state")
    (model / "helper.py").write_text("print('hi')\n")
    (model / "last").mkdir()
    (model / "last" / "config.json").write_text("{}")
    api = FakeApi()
    url = push_model_dir(model, REPO, private=True, api=api)
    assert url == "https://hub.invalid/commit/1"
    assert (model / "README.md").is_file()  # the card is written when missing
    create, upload = api.calls
    assert create == ("create_repo", {"repo_id": REPO, "repo_type": "model", "private": True,
                                      "exist_ok": True})
    assert upload[1]["allow_patterns"] == list(ALLOWED)
    assert upload[1]["sent"] == ["README.md", "config.json", "model.safetensors", "vocab.json"]
    assert files_to_push(model) == upload[1]["sent"]


def test_push_refuses_bad_dirs_repo_ids_and_offline(tmp_path, monkeypatch, capsys):
    model = make_model_dir(tmp_path / "model")
    with pytest.raises(S2VTError, match="--repo must be ORG/NAME"):
        push_model_dir(model, "no-slash", api=FakeApi())
    (tmp_path / "empty").mkdir()
    with pytest.raises(S2VTError, match="has no config.json"):
        push_model_dir(tmp_path / "empty", REPO, api=FakeApi())
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["push", "--model", str(model), "--repo", REPO]) == 2
    assert "HF_HUB_OFFLINE=1 is set: pushing to the Hub needs the network" in \
        capsys.readouterr().err


def test_model_card_has_architecture_data_scores_and_usage(tmp_path):
    model = make_model_dir(tmp_path / "tiny-s2vt")
    data = {"annotations": "captions.csv", "format": "captions",
            "splits": {"train": {"videos": 8, "captions": 24}, "val": {"videos": 1,
                                                                      "captions": 3}}}
    card = write_model_card(model, data=data, repo_id=REPO).read_text(encoding="utf-8")
    assert card.startswith("---\nlibrary_name: s2vt\n")
    for expected in ("# tiny-s2vt", "| model | s2vt |", "| hidden size | 8 |",
                     "| encoder | tiny |", "| frames | 4 |", "Annotations: `captions.csv` "
                     "(captions format).", "| train | 8 | 24 |", "| val | 1 | 3 |",
                     "| CIDEr | 0.2500 |", "| BLEU-4 | 0.1250 |", "best validation CIDEr",
                     "Test scores: not measured yet", f"--model hf:{REPO}",
                     f'Captioner.from_pretrained("{REPO}")'):
        assert expected in card, expected
    config = json.loads((model / "config.json").read_text())
    vocab = config["model"]["vocab_size"]
    # Learnt weights from the safetensors header: all but the standardisation buffers.
    from s2vt.models import ModelConfig, build_model

    net = build_model(ModelConfig(**config["model"]))
    learnt = sum(t.numel() for n, t in net.state_dict().items() if not n.startswith("feature_"))
    assert f"| learnt weights | {learnt:,} |" in card and vocab > 4


def test_evaluate_scores_go_into_the_card_once_per_split(tmp_path):
    model = make_model_dir(tmp_path / "m")
    write_model_card(model)
    record_scores(model, "test", {"BLEU-4": 0.5, "CIDEr": 1.25}, {"videos": 10})
    record_scores(model, "test_novel", {"CIDEr": 0.75})
    record_scores(model, "test", {"BLEU-4": 0.625, "CIDEr": 1.5})
    card = (model / "README.md").read_text(encoding="utf-8")
    assert "Test scores: not measured yet" not in card
    assert card.count("### Scores on split `test`") == 1
    assert "| CIDEr | 1.5000 |" in card and "| CIDEr | 1.2500 |" not in card
    assert card.index("split `test`") < card.index("split `test_novel`") < card.index(
        "## How to use")
    # A model in the Hub cache is never written to.
    cached = make_hub_cache(tmp_path / "hub", REPO, model_files(make_model_dir(tmp_path / "x")))
    assert record_scores(cached, "test", {"CIDEr": 1.0}) is None
    assert not (cached / "README.md").exists()


def test_fused_dir_members_travel_and_are_checked(tmp_path, offline_cache, caplog):
    """A fused model dir (members/<name>/ model dirs): members come along, are checked like
    any model dir (a pickled member is refused), and their other files are ignored."""
    marker = tmp_path / "ran"
    member = model_files(make_model_dir(tmp_path / "member"))
    files = {"config.json": json.dumps({"kind": "fused", "members": [
        {"path": "members/rgb", "weight": 0.5}, {"path": "members/flow", "weight": 0.5}]}
    ).encode()}
    for name in ("rgb", "flow"):
        files.update({f"members/{name}/{file}": data for file, data in member.items()})
    files["members/rgb/train_state.pt"] = pickle.dumps(Payload(marker))
    snapshot = make_hub_cache(offline_cache, REPO, files)
    assert resolve_model(f"hf:{REPO}") == snapshot
    assert "members/rgb/train_state.pt" in caplog.text
    files["members/flow/model.safetensors"] = pickle.dumps(Payload(marker))
    make_hub_cache(offline_cache, "someone/fused-bad", files)
    with pytest.raises(S2VTError, match=r"members/flow/model.safetensors is a Python pickle"):
        resolve_model("hf:someone/fused-bad")
    assert not marker.exists()
    fused = tmp_path / "fused"
    for name, data in files.items():
        (fused / name).parent.mkdir(parents=True, exist_ok=True)
        (fused / name).write_bytes(data)
    assert "members/rgb/config.json" in files_to_push(fused)
    assert "members/rgb/train_state.pt" not in files_to_push(fused)


def test_fused_dir_from_the_hub_captions_like_the_local_one(tmp_path, offline_cache):
    """End to end: ``s2vt fuse`` output laid into the Hub cache loads through ``hf:`` and
    ``Captioner.from_pretrained`` as a fused captioner with the same captions."""
    import torch
    from safetensors.torch import load_file, save_file

    from s2vt.captioner import FusedCaptioner
    from s2vt.fusing import fuse

    first = make_model_dir(tmp_path / "rgb")
    second = make_model_dir(tmp_path / "flow")
    # A second member that differs from the first, so the mix is not one model twice.
    weights = load_file(second / "model.safetensors")
    save_file({k: v + 0.5 * torch.randn_like(v) for k, v in weights.items()},
              second / "model.safetensors")
    local = tmp_path / "fused"
    fuse([first, second], local, alpha=0.3)
    files = {str(p.relative_to(local)): p.read_bytes() for p in sorted(local.rglob("*"))
             if p.is_file()}
    assert any(name.startswith("members/") for name in files)
    snapshot = make_hub_cache(offline_cache, "someone/s2vt-fused", files)
    hub = Captioner.from_pretrained("hf:someone/s2vt-fused", beam_size=3)
    assert isinstance(hub, FusedCaptioner) and hub.loaded.path == snapshot
    mine = Captioner.from_pretrained(local, beam_size=3)
    rng = np.random.default_rng(0)
    videos = [[rng.standard_normal((3, 48)).astype("float32") for _ in range(2)]
              for _ in range(4)]
    assert hub.caption_features(videos) == mine.caption_features(videos)
