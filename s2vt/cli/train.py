"""``s2vt train``: train a caption model on a feature store (also under ``torchrun``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

# flag dest -> dotted TrainConfig key
_FLAG_KEYS = {
    "epochs": "epochs",
    "batch_size": "batch_size",
    "lr": "optimizer.lr",
    "model": "model.name",
    "device": "device",
    "precision": "precision",
    "seed": "seed",
    "init_from": "init_from",
    "objective": "objective",
    "vocab_from": "vocab_from",
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``train``."""
    parser = subparsers.add_parser(
        "train",
        help="train an S2VT (or mean-pool) caption model on extracted features",
        description=(
            "Train on a feature store + annotations. --out becomes the best model dir "
            "(for `s2vt caption --model`), with last/, train_state.pt, metrics.jsonl and "
            "train_config.yaml beside it. Kill it any time and rerun with --resume. "
            "Data-parallel: torchrun --nproc-per-node N -m s2vt train ..."
        ),
    )
    parser.add_argument("--features", type=Path, required=True, help="feature store folder")
    parser.add_argument("--annotations", type=Path, required=True,
                        help="annotation file or dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="output (best model) dir")
    parser.add_argument("--config", type=Path,
                        help="YAML with TrainConfig keys (e.g. configs/s2vt_small.yaml); with "
                             "--resume the default is OUT/train_config.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config key, e.g. --set model.hidden_size=512")
    parser.add_argument("--epochs", type=int, help="total epochs")
    parser.add_argument("--resume", action="store_true", help="continue OUT/train_state.pt")
    parser.add_argument("--batch-size", type=int, help="caption pairs per step (per process)")
    parser.add_argument("--lr", type=float, help="learning rate")
    from s2vt.models import model_names  # the registry's names; no torch import

    parser.add_argument("--model", help=f"caption model: {', '.join(model_names())} "
                                         "(default: s2vt, or the config's)")
    parser.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--seed", type=int)
    parser.add_argument("--init-from", type=str, metavar="MODEL_DIR",
                        help="start from this model dir (fine-tuning, or self-critical training)")
    parser.add_argument("--objective", choices=["xe", "scst"],
                        help="xe: cross-entropy (default); scst: self-critical training with a "
                             "CIDEr-D reward, from --init-from (a cross-entropy model dir)")
    parser.add_argument("--vocab-from", type=str, metavar="MODEL_DIR",
                        help="use this model dir's vocabulary (e.g. train a flow stream with "
                             "the RGB model's words, so that `s2vt fuse` can fuse them)")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """Nested config dict of the flags the user gave (unset flags keep YAML/defaults)."""
    from s2vt.config import nest

    return nest({key: getattr(args, dest, None) for dest, key in _FLAG_KEYS.items()})


def run(args: argparse.Namespace) -> int:
    """Run the train stage; prints a one-line summary (rank 0)."""
    import logging
    import os

    from tqdm.contrib.logging import logging_redirect_tqdm

    from s2vt.config import load_config
    from s2vt.training import CONFIG_FILE, TrainConfig, train

    if os.environ.get("RANK", "0") != "0":
        # Under torchrun only rank 0 logs; the other ranks still report errors.
        logging.getLogger().setLevel(logging.ERROR)
    config_path = args.config
    if config_path is None and args.resume and (args.out / CONFIG_FILE).is_file():
        config_path = args.out / CONFIG_FILE
    config = load_config(TrainConfig, config_path, args.overrides, _flag_values(args))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    with logging_redirect_tqdm():
        result = train(config, args.features, args.annotations, args.out, resume=args.resume,
                       progress=not args.no_progress)
    if os.environ.get("RANK", "0") == "0":
        if result.best_score is not None:
            best = f"best {config.val_metric} {result.best_score:.4f} at epoch {result.best_epoch}"
        else:
            best = "no validation split"
        stop = ", stopped early" if result.stopped_early else ""
        print(f"train: {result.epochs_completed} epochs, {result.steps} steps, {best}{stop} "
              f"-> {args.out}", file=sys.stdout)
    return 0
