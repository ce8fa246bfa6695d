"""Caption metrics exactly as the captioning papers report them (pycocoevalcap).

With Java (the official protocol, as coco-caption's ``COCOEvalCap``): both references and
predictions go through the Stanford PTB tokenizer (lowercased, punctuation tokens removed),
then BLEU-1..4 (closest reference length), METEOR 1.5 (``-l en -norm``), ROUGE-L and CIDEr
(pycocoevalcap's ``Cider``, i.e. CIDEr-D: n=4, sigma=6, document frequencies from the
references of the scored set). METEOR runs in one Java process for the whole set.

Without Java (``java=False``, used for fast per-epoch validation, or ``java=None`` when no
``java`` is on PATH): captions are tokenised with :func:`s2vt.text.tokenize`, BLEU, ROUGE-L
and CIDEr are computed and METEOR is left out; nothing else is ever reported as "METEOR".

Scores are fractions in [0, 1] (CIDEr can exceed 1), not percentages.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2vt.errors import S2VTError

logger = logging.getLogger(__name__)

# The one spelling of every metric name: the keys of scores.json, of the per-video scores,
# of the validation scores in metrics.jsonl and of every table. Spell them through these.
BLEU_KEYS: tuple[str, ...] = ("BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4")
BLEU_4 = "BLEU-4"
METEOR = "METEOR"
ROUGE_L = "ROUGE-L"
CIDER = "CIDEr"
METRIC_KEYS: tuple[str, ...] = (*BLEU_KEYS, METEOR, ROUGE_L, CIDER)
# What scoring without Java gives (no METEOR), e.g. the per-epoch validation.
NO_JAVA_KEYS: tuple[str, ...] = tuple(key for key in METRIC_KEYS if key != METEOR)
JAVA_INSTALL_HINT = (
    "install a Java runtime (e.g. `apt-get install default-jre-headless`, or "
    "`conda install openjdk`) and make sure `java` is on PATH"
)
_EXAMPLES = 5  # how many missing ids an error message names


@dataclass
class ScoreResult:
    """Corpus scores, per-video scores and the settings that produced them.

    Attributes:
        scores: metric name -> corpus-level value (keys from :data:`METRIC_KEYS`; METEOR is
            absent when it was not computed).
        per_video: video id -> metric name -> that video's own score (same scorers'
            per-item outputs: BLEU-n with the closest reference length, METEOR, ROUGE-L,
            CIDEr whose idf comes from the whole set).
        settings: how the scores were computed (tokenizer, METEOR, number of videos ...),
            to be stored next to them.
    """

    scores: dict[str, float]
    per_video: dict[str, dict[str, float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def java_available() -> bool:
    """Whether a ``java`` executable is on PATH."""
    return shutil.which("java") is not None


def check_ids(predictions: Mapping[str, str], references: Mapping[str, Sequence[str]]) -> None:
    """Raise S2VTError unless predictions and references cover exactly the same video ids.

    Also rejects videos without references and non-string captions, which pycocoevalcap
    would only catch with a bare assert.
    """
    predicted, referenced = set(predictions), set(references)
    if predicted != referenced:
        parts = []
        no_reference = sorted(predicted - referenced)
        no_prediction = sorted(referenced - predicted)
        if no_reference:
            parts.append(f"{len(no_reference)} predicted video(s) have no references "
                         f"(e.g. {', '.join(no_reference[:_EXAMPLES])})")
        if no_prediction:
            parts.append(f"{len(no_prediction)} referenced video(s) have no prediction "
                         f"(e.g. {', '.join(no_prediction[:_EXAMPLES])})")
        raise S2VTError("prediction and reference video ids do not match: " + "; ".join(parts))
    if not predictions:
        raise S2VTError("nothing to score: no predictions and no references")
    empty = sorted(vid for vid, refs in references.items() if len(refs) == 0)
    if empty:
        raise S2VTError(f"{len(empty)} video(s) have an empty reference list "
                        f"(e.g. {', '.join(empty[:_EXAMPLES])})")
    for vid, caption in predictions.items():
        if not isinstance(caption, str):
            raise S2VTError(f"prediction for video {vid!r} is not a string: {caption!r}")
    for vid, refs in references.items():
        if isinstance(refs, str) or not all(isinstance(ref, str) for ref in refs):
            raise S2VTError(f"references for video {vid!r} must be a list of strings")


def _one_line(text: str) -> str:
    """Collapse every kind of line break and whitespace run into one space.

    The PTB tokenizer and METEOR both read one sentence per line, so a newline (or \\r,
    \\u2028 ...) inside a caption would shift every following sentence.
    """
    return " ".join(text.split())


def _meteor_safe(text: str) -> str:
    """Remove METEOR's field separator ``|||`` (and line breaks) from a sentence."""
    return _one_line(text.replace("|||", " "))


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Tokenise sentences with the Stanford PTB tokenizer exactly as pycocoevalcap does.

    Same jar, same flags (``-preserveLines -lowerCase``) and the same punctuation tokens
    removed as ``pycocoevalcap.tokenizer.ptbtokenizer.PTBTokenizer``, but in one Java call,
    with the temp file in the system temp folder (site-packages may be read-only) and a
    check that one line came back per sentence.

    Args:
        sentences: raw captions.
    Returns:
        One tokenised, space-joined string per sentence (possibly empty).
    """
    from pycocoevalcap.tokenizer import ptbtokenizer

    jar = Path(ptbtokenizer.__file__).parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR
    punctuation = set(ptbtokenizer.PUNCTUATIONS)
    with tempfile.TemporaryDirectory(prefix="s2vt-ptb-") as tmp:
        source = Path(tmp) / "sentences.txt"
        source.write_text("\n".join(_one_line(s) for s in sentences), encoding="utf-8")
        command = ["java", "-Dfile.encoding=UTF-8", "-cp", str(jar),
                   "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase",
                   str(source)]
        try:
            done = subprocess.run(command, capture_output=True, check=False)
        except OSError as error:
            raise S2VTError(f"cannot run Java for the PTB tokenizer ({error}); "
                            f"{JAVA_INSTALL_HINT}") from None
    if done.returncode != 0:
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise S2VTError(f"the PTB tokenizer (Java) failed with exit code {done.returncode}: "
                        f"{' '.join(detail)}")
    lines = done.stdout.decode("utf-8").split("\n")
    if len(lines) < len(sentences):
        raise S2VTError(f"the PTB tokenizer returned {len(lines)} lines for "
                        f"{len(sentences)} sentences")
    return [" ".join(w for w in line.rstrip().split(" ") if w not in punctuation)
            for line in lines[: len(sentences)]]


def simple_tokenize(sentences: Sequence[str]) -> list[str]:
    """Tokenise with :func:`s2vt.text.tokenize` (lowercase, punctuation stripped), no Java."""
    from s2vt.text import tokenize

    return [" ".join(tokenize(sentence)) for sentence in sentences]


def _tokenize_all(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    tokenizer: Callable[[Sequence[str]], list[str]],
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Tokenise predictions and references in one pass -> (gts, res) in pycocoevalcap form."""
    ids = sorted(predictions)
    flat: list[str] = [predictions[vid] for vid in ids]
    for vid in ids:
        flat.extend(references[vid])
    tokens = tokenizer(flat)
    res = {vid: [tokens[i]] for i, vid in enumerate(ids)}
    gts: dict[str, list[str]] = {}
    position = len(ids)
    for vid in ids:
        count = len(references[vid])
        gts[vid] = tokens[position : position + count]
        position += count
    return gts, res


def _meteor(gts: dict[str, list[str]], res: dict[str, list[str]]) -> tuple[float, list[float]]:
    """METEOR 1.5 over the whole set in one Java process, closed before returning."""
    from pycocoevalcap.meteor.meteor import Meteor

    safe_gts = {vid: [_meteor_safe(ref) for ref in refs] for vid, refs in gts.items()}
    safe_res = {vid: [_meteor_safe(hyp[0])] for vid, hyp in res.items()}
    try:
        scorer = Meteor()
    except OSError as error:
        raise S2VTError(f"cannot start Java for METEOR ({error}); {JAVA_INSTALL_HINT}") from None
    try:
        corpus, items = scorer.compute_score(safe_gts, safe_res)
    except (ValueError, OSError) as error:
        scorer.meteor_p.kill()
        message = scorer.meteor_p.stderr.read().decode("utf-8", "replace").strip()
        raise S2VTError(f"METEOR 1.5 (Java) failed: {error} "
                        f"{message.splitlines()[-1] if message else ''}".strip()) from None
    finally:
        _close_meteor(scorer)
    return float(corpus), [float(x) for x in items]


def _close_meteor(scorer: Any) -> None:
    """End the METEOR subprocess now (EOF, then kill if it lingers) instead of at GC time."""
    process = scorer.meteor_p
    # pycocoevalcap's compute_score keeps its lock when it raises, and its __del__ takes the
    # lock: release it so that garbage collection cannot hang.
    if scorer.lock.locked():
        scorer.lock.release()
    if process.stdin and not process.stdin.closed:
        process.stdin.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for stream in (process.stdout, process.stderr):
        if stream and not stream.closed:
            stream.close()


def _compute(
    gts: dict[str, list[str]], res: dict[str, list[str]], with_meteor: bool
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Run the pycocoevalcap scorers on tokenised captions -> (corpus, per video)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids = list(gts)
    scores: dict[str, float] = {}
    per_video: dict[str, dict[str, float]] = {vid: {} for vid in ids}

    bleu, bleu_items = Bleu(len(BLEU_KEYS)).compute_score(gts, res, verbose=0)
    for key, corpus, items in zip(BLEU_KEYS, bleu, bleu_items, strict=True):
        scores[key] = float(corpus)
        for vid, value in zip(ids, items, strict=True):
            per_video[vid][key] = float(value)
    if with_meteor:
        meteor, meteor_items = _meteor(gts, res)
        scores[METEOR] = meteor
        for vid, value in zip(ids, meteor_items, strict=True):
            per_video[vid][METEOR] = value
    rouge, rouge_items = Rouge().compute_score(gts, res)
    scores[ROUGE_L] = float(rouge)
    cider, cider_items = Cider().compute_score(gts, res)
    scores[CIDER] = float(cider)
    for vid, r, c in zip(ids, rouge_items, cider_items, strict=True):
        per_video[vid][ROUGE_L] = float(r)
        per_video[vid][CIDER] = float(c)
    return scores, per_video


def score_captions(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    *,
    java: bool | None = None,
) -> ScoreResult:
    """Score predictions against references, with per-video scores and the settings.

    Args:
        predictions: video id -> generated caption (raw text).
        references: video id -> reference captions (raw text); same ids as ``predictions``.
        java: True: the official protocol (PTB tokenizer + METEOR 1.5), an error without
            Java. False: no Java, simple tokenisation, no METEOR (fast; for validation).
            None: True when ``java`` is on PATH, else False with a warning.
    Returns:
        A :class:`ScoreResult`.
    Raises:
        S2VTError: ids differ (the message counts and names some on each side), Java is
            required but missing, or a Java tool failed.
    """
    check_ids(predictions, references)
    have_java = java_available()
    if java is None:
        java = have_java
        if not have_java:
            logger.warning(
                "Java not found on PATH: METEOR 1.5 and the PTB tokenizer need it, so METEOR "
                "is omitted and captions are tokenised with s2vt.text.tokenize (BLEU, ROUGE-L "
                "and CIDEr may differ slightly from the official numbers); to get them, %s. "
                "(nltk's METEOR is not used: it needs WordNet data, which is not available "
                "offline, and its numbers are not comparable with METEOR 1.5.)",
                JAVA_INSTALL_HINT,
            )
    elif java and not have_java:
        raise S2VTError(f"Java is needed for METEOR 1.5 and the PTB tokenizer; {JAVA_INSTALL_HINT}")

    tokenizer = ptb_tokenize if java else simple_tokenize
    gts, res = _tokenize_all(predictions, references, tokenizer)
    scores, per_video = _compute(gts, res, with_meteor=bool(java))
    settings = _settings(bool(java), len(gts), sum(len(r) for r in gts.values()))
    return ScoreResult(scores=scores, per_video=per_video, settings=settings)


def score(
    predictions: Mapping[str, str],
    references: Mapping[str, Sequence[str]],
    *,
    java: bool | None = None,
) -> dict[str, float]:
    """Corpus-level scores: ``BLEU-1``..``BLEU-4``, ``METEOR``, ``ROUGE-L``, ``CIDEr``.

    See :func:`score_captions` for the arguments; ``METEOR`` is absent when Java is not
    used.
    """
    return score_captions(predictions, references, java=java).scores


def _settings(java: bool, num_videos: int, num_references: int) -> dict[str, Any]:
    """Describe how the scores were computed, for scores.json."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        coco_version = version("pycocoevalcap")
    except PackageNotFoundError:  # pragma: no cover - vendored copies have no metadata
        coco_version = "unknown"
    return {
        "scorer": f"pycocoevalcap {coco_version}",
        "tokenizer": ("PTB (Stanford CoreNLP 3.4.1, lowercased, punctuation removed)" if java
                      else "s2vt.text.tokenize (lowercased, punctuation removed; no Java)"),
        "bleu": "BLEU-1..4, corpus level, closest reference length",
        "meteor": ("METEOR 1.5 (-l en -norm), one Java process" if java
                   else "omitted (needs Java; nltk's METEOR is not comparable and not used)"),
        "rouge": "ROUGE-L (beta 1.2)",
        "cider": "CIDEr-D (pycocoevalcap Cider: n=4, sigma=6, idf from the scored references)",
        "official": java,
        "num_videos": num_videos,
        "num_references": num_references,
    }


def write_scores(path: Path, scores: Mapping[str, float], settings: Mapping[str, Any]) -> None:
    """Write ``scores.json``: metric name -> number, plus ``"settings": {...}``.

    Args:
        path: the JSON file to write (atomically).
        scores: metric name -> value (extra keys such as ``attr_motion`` are kept).
        settings: how they were computed (e.g. :attr:`ScoreResult.settings` plus model,
            split, beam size).
    """
    from s2vt.fileio import atomic_write_json

    data: dict[str, Any] = {key: float(value) for key, value in scores.items()}
    data["settings"] = dict(settings)
    atomic_write_json(Path(path), data)


def format_table(scores: Mapping[str, float], title: str | None = None) -> str:
    """Render scores as a small two-column text table (metric keys first, in paper order)."""
    keys = [k for k in METRIC_KEYS if k in scores] + sorted(k for k in scores
                                                             if k not in METRIC_KEYS)
    width = max([len(k) for k in keys] + [6])
    lines = [title] if title else []
    lines.append(f"{'metric':<{width}}  value")
    lines.append(f"{'-' * width}  ------")
    lines.extend(f"{key:<{width}}  {scores[key]:.4f}" for key in keys)
    return "\n".join(lines)
