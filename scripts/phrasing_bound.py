"""How much test CIDEr phrasing alone could buy a demo model: bounds for SCST.

Usage::

    python scripts/phrasing_bound.py RUN [--model s2vt] [--split test] [--out JSON]

Self-critical training optimises CIDEr-D against the training references. On the synthetic
benchmark a caption's content is the primary object's colour, shape and motion (size and
background words are optional extras the references mention now and then), so what SCST
can change, besides recognising attributes better, is how a model phrases the attributes
it recognises. This script replaces each of the model's captions (``RUN/MODEL/SPLIT/
predictions.json``) by the *consensus phrasing* of the attributes it names: among the
training references of the training videos with that colour, shape and motion, the one
with the highest mean CIDEr-D against those videos' references (document frequencies from
the training split, as the SCST reward). Nothing of the held-out split is looked at to
choose it. The held-out split is then scored as evaluation scores it (official protocol).

- ``predicted``: consensus phrasing of the attributes the model's captions name;
- ``truth``: the same with the true attributes (the headroom of perfect recognition);
- ``model``: the model's own captions scored the same way (equal to its scores.json);
- ``oracle``: upper bounds that *do* look at the held-out references (never a method):
  each video takes whichever scores best of its model caption and every training caption
  of the attributes named (``predicted``) or true (``truth``); s2vt's tokeniser rather
  than PTB's, so ``model_no_java`` is the model's own CIDEr-D computed the same way.

The consensus phrasing keys on the primary object only, so on two-object clips it also
names a second object that need not be there: it is a plain phrasing policy to compare
with, not a bound; the oracle is the ceiling.

A caption naming no colour, shape or motion, or a combination no training video has, keeps
the model's caption. Exits 2 with ``error: ...`` for a bad run folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

KINDS = ("color", "shape", "motion")


def consensus_phrasings(annotations: Any, split: str = "train") -> dict[tuple, str]:
    """(colour, shape, motion) -> the training caption with the highest mean CIDEr-D
    against the references of the training videos showing that combination."""
    from s2vt.cider import CiderD
    from s2vt.synth_attributes import primary_objects
    from s2vt.text import tokenize

    train = annotations.split(split)
    refs = {vid: r for vid, r in train.references().items() if r}
    truth = primary_objects(train.videos)
    ids = [vid for vid in refs if vid in truth]
    scorer = CiderD.from_words([[tokenize(c) for c in refs[vid]] for vid in ids])
    groups: dict[tuple, list[int]] = defaultdict(list)
    for position, vid in enumerate(ids):
        groups[tuple(truth[vid][k] for k in KINDS)].append(position)
    best: dict[tuple, str] = {}
    for key, positions in groups.items():
        candidates = sorted({c for p in positions for c in refs[ids[p]]})
        words = [tokenize(c) for c in candidates]
        # Every candidate against every video of the group: (candidates, videos) scores.
        scores = scorer.score_words([p for p in positions for _ in words],
                                    [w for _ in positions for w in words])
        mean = scores.reshape(len(positions), len(words)).mean(axis=0)
        best[key] = candidates[int(mean.argmax())]
    return best


def phrasings_by_attributes(annotations: Any, split: str = "train") -> dict[tuple, list[str]]:
    """(colour, shape, motion) -> every training caption of the videos showing it."""
    from s2vt.synth_attributes import primary_objects

    train = annotations.split(split)
    truth = primary_objects(train.videos)
    found: dict[tuple, set[str]] = defaultdict(set)
    for vid, refs in train.references().items():
        if vid in truth:
            found[tuple(truth[vid][k] for k in KINDS)].update(refs)
    return {key: sorted(values) for key, values in found.items()}


def oracle_cider(references: dict[str, list[str]], candidates: dict[str, list[str]]) -> float:
    """Corpus CIDEr-D (df from ``references``, as pycocoevalcap computes it on a split) when
    every video takes its best candidate: per-video CIDEr-D depends only on the video's own
    references and the df, so the corpus maximum is the mean of the per-video maxima."""
    from s2vt.cider import CiderD
    from s2vt.text import tokenize

    ids = sorted(references)
    scorer = CiderD.from_words([[tokenize(c) for c in references[vid]] for vid in ids])
    best = []
    for position, vid in enumerate(ids):
        words = [tokenize(c) for c in candidates[vid]]
        best.append(float(scorer.score_words([position] * len(words), words).max()))
    return sum(best) / len(best)


def measure(run: Path, model: str = "s2vt", split: str = "test") -> dict[str, Any]:
    """The bound of the module docstring for ``RUN/MODEL/SPLIT/predictions.json``."""
    from s2vt.datasets import load_annotations
    from s2vt.errors import S2VTError
    from s2vt.evaluation import load_predictions, score_split
    from s2vt.synth_attributes import first_mention, primary_objects

    path = run / model / split / "predictions.json"
    if not path.is_file():
        raise S2VTError(f"{path} not found: evaluate {model} on {split} first (s2vt demo)")
    annotations = load_annotations(run / "data" / "annotations.json")
    predictions = load_predictions(path)
    phrasing = consensus_phrasings(annotations)
    truth = primary_objects(annotations.split(split).videos)

    def rephrase(attributes: dict[str, tuple]) -> tuple[dict[str, str], int]:
        out, kept = {}, 0
        for vid, caption in predictions.items():
            found = phrasing.get(attributes[vid])
            out[vid] = found if found is not None else caption
            kept += found is None
        return out, kept

    guessed = {vid: tuple(first_mention(c, k) for k in KINDS) for vid, c in predictions.items()}
    true = {vid: tuple(truth[vid][k] for k in KINDS) for vid in predictions}
    result: dict[str, Any] = {"run": str(run), "model": model, "split": split,
                              "combinations": len(phrasing)}
    for name, captions, kept in (("model", predictions, 0), (*("predicted",),
                                 *rephrase(guessed)), ("truth", *rephrase(true))):
        scores = score_split(captions, annotations, split=split, java=True).scores
        result[name] = {"kept_model_caption": kept, **scores}
    # The oracles look at the held-out references (an upper bound, never a method): each
    # video takes whichever caption scores best among its model caption and every training
    # caption of the attributes named (predicted) or true; s2vt's tokeniser, not PTB's, so
    # 'model' is computed the same way for the ratio.
    references = {vid: r for vid, r in annotations.split(split).references().items() if r}
    by_attributes = phrasings_by_attributes(annotations)
    own = oracle_cider(references, {vid: [predictions[vid]] for vid in references})
    result["oracle"] = {"model_no_java": own}
    for name, attributes in (("predicted", guessed), ("truth", true)):
        pool = {vid: [predictions[vid], *by_attributes.get(attributes[vid], [])]
                for vid in references}
        value = oracle_cider(references, pool)
        result["oracle"][name] = value
        result["oracle"][f"{name}_gain"] = value / own - 1.0
    base = result["model"]["CIDEr"]
    for name in ("predicted", "truth"):
        result[name]["CIDEr_gain"] = result[name]["CIDEr"] / base - 1.0
    return result


def main(argv: list[str] | None = None) -> int:
    from s2vt.errors import S2VTError
    from s2vt.fileio import atomic_write_json

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an s2vt demo run folder")
    parser.add_argument("--model", default="s2vt")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, help="JSON file (default "
                        "RUN/MODEL/SPLIT/phrasing_bound.json)")
    args = parser.parse_args(argv)
    try:
        result = measure(args.run, args.model, args.split)
    except S2VTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or args.run / args.model / args.split / "phrasing_bound.json"
    atomic_write_json(out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
