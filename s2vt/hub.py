"""Model dirs shared on the Hugging Face Hub: ``hf:org/name`` in, ``s2vt push`` out.

Only the files a model dir has travel (:data:`MODEL_FILES`: config, safetensors weights,
vocabulary, model card; for a fused model dir also its members' under ``members/*/``), in
both directions: downloads ask ``snapshot_download`` for those
names alone and uploads send only those names, so code (``*.py``) or pickles (``*.bin``,
``*.pt``) in a repo are never fetched, and never pushed by accident. A snapshot folder that
holds other files anyway (put into the cache by another tool) is checked like any model
dir: pickles are refused by :mod:`s2vt.checkpoint` before anything parses them, and other
files are ignored with a warning (nothing in s2vt imports or runs a file of a model dir).

Offline (``HF_HUB_OFFLINE=1``) the local cache is used, read at call time together with
``HF_HUB_CACHE``, so both work when set after ``huggingface_hub`` was imported.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from s2vt.errors import S2VTError, one_line

log = logging.getLogger(__name__)

HUB_PREFIX = "hf:"
MODEL_FILES: tuple[str, ...] = ("config.json", "model.safetensors", "vocab.json", "README.md")
# A fused model dir (``s2vt fuse``) holds its member model dirs under members/<name>/.
MEMBER_FILES: tuple[str, ...] = tuple(f"members/*/{name}" for name in MODEL_FILES)
ALLOWED: tuple[str, ...] = MODEL_FILES + MEMBER_FILES
MODEL_HELP = "model dir from `s2vt train`, or hf:ORG/NAME[@REVISION] from the Hugging Face Hub"
# org/name as the Hub spells repo ids: one slash, no "..", no leading punctuation.
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def offline() -> bool:
    """Whether Hub access is switched off (``HF_HUB_OFFLINE``, read now, not at import)."""
    if _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def cache_dir() -> str | None:
    """The Hub cache folder set in the environment now (None: huggingface_hub's default)."""
    return os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE") or None


def parse_hub_ref(ref: str) -> tuple[str, str | None] | None:
    """``"hf:org/name@rev"`` -> (``"org/name"``, ``"rev"``); None when ``ref`` is not ``hf:``.

    Raises:
        S2VTError: an ``hf:`` reference whose repo id is not ``org/name``.
    """
    if not ref.startswith(HUB_PREFIX):
        return None
    repo_id, _, revision = ref[len(HUB_PREFIX):].partition("@")
    if not is_repo_id(repo_id):
        raise S2VTError(f"'{ref}' is not a Hub model: write hf:ORG/NAME (e.g. "
                        "hf:someone/s2vt-msvd), optionally followed by @REVISION")
    return repo_id, revision or None


def is_repo_id(text: str) -> bool:
    """True for an ``org/name`` Hub repo id."""
    return bool(_REPO_ID.match(text)) and ".." not in text


def resolve_model(ref: str | Path, *, hub_fallback: bool = False) -> Path:
    """The local model dir of a model reference; what every ``--model`` goes through.

    Args:
        ref: a local folder, or ``hf:org/name[@revision]`` (downloaded into the Hub cache,
            or found there offline).
        hub_fallback: also treat a plain ``org/name`` that is no local folder as a Hub repo
            (``Captioner.from_pretrained("org/name")``); the CLI asks for ``hf:`` instead,
            so that a mistyped folder is reported as missing, not looked up online.

    Returns:
        The folder to load (for a Hub model, its snapshot in the cache, already checked).

    Raises:
        S2VTError: a bad ``hf:`` reference, a failed download or a refused snapshot.
    """
    text = str(ref)
    parsed = parse_hub_ref(text)
    if parsed is not None:
        return download_model(*parsed)
    path = Path(text).expanduser()
    if hub_fallback and isinstance(ref, str) and not path.exists() and is_repo_id(text):
        return download_model(text)
    return path


def download_model(repo_id: str, revision: str | None = None) -> Path:
    """Fetch a model dir's files from the Hub (or the cache when offline) and check them.

    Args:
        repo_id: ``org/name``.
        revision: a branch, tag or commit (default: ``main``).

    Returns:
        The snapshot folder in the Hub cache.

    Raises:
        S2VTError: not cached while offline, unknown repo or revision, network errors, or a
            snapshot that :func:`check_model_folder` refuses.
    """
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError:
        raise S2VTError("hf: models need huggingface_hub: pip install huggingface_hub") from None
    where = f"hf:{repo_id}" + (f"@{revision}" if revision else "")
    is_offline = offline()
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=list(ALLOWED),
                                   cache_dir=cache_dir(), local_files_only=is_offline,
                                   library_name="s2vt")
    except (RepositoryNotFoundError, GatedRepoError):
        raise S2VTError(f"{where}: no such model on the Hugging Face Hub, or it is private "
                        "(log in with `hf auth login`)") from None
    except RevisionNotFoundError:
        raise S2VTError(f"{where}: the Hub repo has no revision '{revision}'") from None
    except LocalEntryNotFoundError:
        reason = ("HF_HUB_OFFLINE=1 is set" if is_offline else "the Hub cannot be reached")
        raise S2VTError(f"{where} is not in the local Hugging Face cache "
                        f"({cache_dir() or 'the default cache'}) and {reason}; download it "
                        "once online, or pass a local model dir to --model") from None
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise S2VTError(f"{where}: download failed: {one_line(error)}") from None
    path = Path(folder)
    check_model_folder(path)
    log.info("%s: using %s", where, path)
    return path


def _relative_files(folder: Path) -> list[str]:
    files = []
    for root, _, names in os.walk(folder):
        for name in names:
            files.append(Path(root, name).relative_to(folder).as_posix())
    return sorted(files)


def check_model_folder(folder: Path, *, others: str = "ignoring") -> None:
    """Check a model dir before it is loaded or pushed, with :mod:`s2vt.checkpoint`'s rules.

    Files other than :data:`MODEL_FILES` are ignored (and named in a warning that starts
    with ``others``); a pickled ``config.json`` or weights file, or pickled weights in place
    of the safetensors file, is refused before anything parses it.

    Raises:
        S2VTError: the folder is no model dir, or holds pickles where the model's files go.
    """
    from huggingface_hub.utils import filter_repo_objects

    from s2vt.checkpoint import (
        CONFIG_FILE,
        check_weights_file,
        read_model_dir_config,
        read_model_json,
    )

    folder = Path(folder)
    names = _relative_files(folder)
    allowed = set(filter_repo_objects(names, allow_patterns=list(ALLOWED)))
    extra = [name for name in names if name not in allowed]
    if extra:
        shown = ", ".join(extra[:8]) + (" ..." if len(extra) > 8 else "")
        log.warning("%s: %s %d file(s) that are not part of a model dir: %s (s2vt never "
                    "imports or unpickles files from a model dir)", folder, others, len(extra),
                    shown)
    if not (folder / CONFIG_FILE).is_file():
        read_model_dir_config(folder)  # says what is missing
    config = read_model_json(folder / CONFIG_FILE, "the model config")  # refuses a pickle
    if isinstance(config, dict) and config.get("kind") == "fused":
        members = sorted(p for p in (folder / "members").glob("*") if p.is_dir())
        if not members:
            raise S2VTError(f"fused model dir {folder} has no members/ folders")
    else:
        members = [folder]
    for member in members:
        read_model_dir_config(member)
        check_weights_file(member)


def files_to_push(model_dir: Path) -> list[str]:
    """The files of ``model_dir`` that ``s2vt push`` uploads (:data:`ALLOWED` only)."""
    from huggingface_hub.utils import filter_repo_objects

    return list(filter_repo_objects(_relative_files(Path(model_dir)),
                                    allow_patterns=list(ALLOWED)))


def push_model_dir(model_dir: Path, repo_id: str, *, private: bool = False,
                   revision: str | None = None, message: str | None = None,
                   api: Any = None) -> str:
    """Upload a model dir to the Hub (creating the repo if needed).

    Args:
        model_dir: a model dir (checked first; a model card is written if it has none).
        repo_id: ``org/name``.
        private: create the repo as private (an existing repo keeps its visibility).
        revision: the branch to push to (default: ``main``).
        message: the commit message.
        api: an ``HfApi`` (tests pass a stand-in); default: a new one.

    Returns:
        The URL of the commit.

    Raises:
        S2VTError: a bad model dir or repo id, offline mode, or an upload error.
    """
    from s2vt.modelcard import CARD_FILE, write_model_card

    model_dir = Path(model_dir)
    if not is_repo_id(repo_id):
        raise S2VTError(f"--repo must be ORG/NAME on the Hugging Face Hub, got '{repo_id}'")
    check_model_folder(model_dir, others="not pushing")
    if not (model_dir / CARD_FILE).is_file():
        write_model_card(model_dir)
        log.info("%s had no model card; wrote %s", model_dir, model_dir / CARD_FILE)
    if offline():
        raise S2VTError("HF_HUB_OFFLINE=1 is set: pushing to the Hub needs the network")
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(library_name="s2vt")
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(model_dir), repo_id=repo_id, repo_type="model",
            allow_patterns=list(ALLOWED), revision=revision,
            commit_message=message or f"Upload s2vt model dir {model_dir.name}")
    except (HfHubHTTPError, OSError, ValueError) as error:
        raise S2VTError(f"push to {repo_id} failed: {one_line(error)}") from None
    return str(getattr(info, "commit_url", info))
