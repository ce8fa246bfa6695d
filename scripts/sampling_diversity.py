"""How diverse and how right sampled captions are, on a demo run's held-out split.

Usage::

    python scripts/sampling_diversity.py RUN [--model s2vt] [--split test] [--num-captions 5]
        [--temperature 1.0] [--top-k 0] [--top-p 1.0] [--seed 0] [--out JSON]

``RUN`` is an ``s2vt demo`` run folder (``RUN/data/annotations.json``, ``RUN/features`` or
``RUN/features_flow``, ``RUN/<model>/model``). Every video of the split is captioned
``--num-captions`` times by sampling (``Captioner`` with ``DecodingOptions(sample=True)``,
the seed fixed, so a rerun gives the same captions), and the script prints (and writes to
``--out``, default ``RUN/<model>/<split>/sampling.json``) a JSON object with:

- ``frac_videos_3plus_distinct``: the fraction of videos whose samples hold at least 3
  distinct captions (``distinct_histogram``: videos per number of distinct captions);
- ``attr_color`` / ``attr_shape`` / ``attr_motion``: attribute accuracy of the sampled
  captions, every sample counted (the synthetic attribute scorer that evaluation uses,
  ``Annotations.scorer``), and ``greedy`` the same accuracies of the greedy captions, for
  comparison;
- ``settings``, a few ``examples`` and every video's ``captions`` (sample order: most
  probable first).

An experiment, not a stage: it lives apart from the package and reads only what the demo
wrote. Exits 2 with ``error: ...`` for a bad run folder or option.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

THRESHOLD = 3        # "at least 3 distinct captions of 5"
EXAMPLES = 3


def measure(model_dir: Path, features: Path, annotations: Path, *, split: str = "test",
            num_captions: int = 5, temperature: float = 1.0, top_k: int = 0,
            top_p: float = 1.0, seed: int = 0, max_len: int = 20) -> dict[str, Any]:
    """Sample ``num_captions`` captions for every video of ``split`` and measure them.

    Args:
        model_dir: a single-stream model dir (not a fused one).
        features: the feature store it was trained on.
        annotations: the synthetic annotation file (its loader attaches the attribute
            scorer).
        split / num_captions / temperature / top_k / top_p / seed / max_len: what to sample.
    Returns:
        The JSON object described in the module docstring.
    Raises:
        S2VTError: a fused model dir, a split without videos or without attribute truth.
    """
    from s2vt.captioner import Captioner
    from s2vt.datasets import load_annotations
    from s2vt.errors import S2VTError
    from s2vt.features import FeatureStore
    from s2vt.fusion import is_fused_dir
    from s2vt.models.decoding import DecodingOptions

    if is_fused_dir(Path(model_dir)):
        raise S2VTError(f"{model_dir} is a fused model dir; give one of its members")
    subset = load_annotations(Path(annotations)).split(split)
    if subset.scorer is None:
        raise S2VTError(f"split '{split}' of {annotations} has no synthetic attribute truth")
    store = FeatureStore.open(Path(features))
    ids = sorted(v.video_id for v in subset.videos if store.has(v.video_id))
    if not ids:
        raise S2VTError(f"no video of split '{split}' has features in {features}")
    arrays = [store.read(vid).features for vid in ids]
    options = DecodingOptions(sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                              num_captions=num_captions, seed=seed, max_len=max_len)
    sampler = Captioner.from_pretrained(Path(model_dir), decoding=options)
    samples = [[c.caption for c in found]
               for found in sampler.caption_features_scored(arrays)]
    greedy = sampler.caption_features(arrays, beam_size=1)

    distinct = [len(set(captions)) for captions in samples]
    # Accuracy over every sample: the k-th samples of all videos, scored as one prediction
    # set each, then averaged (every set covers the same videos, so this is the pooled mean).
    per_sample = [subset.scorer.scores({vid: captions[k] for vid, captions in
                                        zip(ids, samples, strict=True)})
                  for k in range(num_captions)]
    accuracy = {key: sum(s[key] for s in per_sample) / num_captions for key in per_sample[0]}
    return {
        "model": str(model_dir),
        "split": split,
        "num_videos": len(ids),
        "settings": {"num_captions": num_captions, "temperature": temperature,
                     "top_k": top_k, "top_p": top_p, "seed": seed, "max_len": max_len},
        "frac_videos_3plus_distinct": sum(d >= THRESHOLD for d in distinct) / len(ids),
        "mean_distinct": sum(distinct) / len(ids),
        "distinct_histogram": {str(n): c for n, c in sorted(Counter(distinct).items())},
        **accuracy,
        "greedy": subset.scorer.scores(dict(zip(ids, greedy, strict=True))),
        "mean_words": sum(len(c.split()) for s in samples for c in s) / (len(ids) * num_captions),
        "examples": [{"video_id": vid, "captions": captions}
                     for vid, captions in list(zip(ids, samples, strict=True))[:EXAMPLES]],
        "captions": dict(zip(ids, samples, strict=True)),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="an s2vt demo run folder")
    parser.add_argument("--model", default="s2vt", help="model name in the run (default s2vt)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--num-captions", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="JSON file (default "
                        "RUN/MODEL/SPLIT/sampling.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from s2vt.checkpoint import read_model_dir_config
    from s2vt.errors import S2VTError
    from s2vt.fileio import atomic_write_json
    from s2vt.fusion import is_fused_dir

    args = _parser().parse_args(argv)
    run, model_dir = args.run, args.run / args.model / "model"
    try:
        if is_fused_dir(model_dir):
            raise S2VTError(f"{model_dir} is a fused model dir; give one of its members")
        stream = read_model_dir_config(model_dir).get("stream", {}).get("name", "rgb")
        features = run / ("features_flow" if stream == "flow" else "features")
        result = measure(model_dir, features, run / "data" / "annotations.json",
                         split=args.split, num_captions=args.num_captions,
                         temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                         seed=args.seed)
    except S2VTError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or run / args.model / args.split / "sampling.json"
    atomic_write_json(out, result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("examples", "captions")},
                     indent=2))
    print(f"written to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
