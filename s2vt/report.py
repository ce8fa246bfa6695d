"""The evaluation report: one self-contained HTML page (inline CSS, images as data URIs).

The page opens from disk with no server, no network and no JavaScript. Videos are ranked
by one per-video score and shown in three groups, like the S2VT paper's qualitative
figure: the best third (mostly correct descriptions), the middle third (relevant but partly
wrong) and the worst third (irrelevant). Each video shows a strip of frame thumbnails, the
generated caption, its references and its own scores; for a model with attention over
frames, a heat row per generated word shows the weight it gave each of the model's input
frames (darker = more). Every piece of text (captions, ids, paths, settings) is
HTML-escaped, since captions and ids are untrusted input.
"""

from __future__ import annotations

import base64
import html
import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from s2vt.errors import S2VTError
from s2vt.metrics import BLEU_4, CIDER, METEOR, ROUGE_L

logger = logging.getLogger(__name__)

# Per-video scores shown on each card, in this order (those present).
CARD_METRICS: tuple[str, ...] = (BLEU_4, METEOR, ROUGE_L, CIDER)
GROUPS: tuple[tuple[str, str], ...] = (
    ("best", "Best third: mostly correct descriptions"),
    ("middle", "Middle third: relevant but partly wrong descriptions"),
    ("worst", "Worst third: irrelevant descriptions"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;
background:#fafafa}
h1{font-size:1.5em;margin-bottom:4px}h2{margin-top:32px;border-bottom:2px solid #ddd}
table.kv{border-collapse:collapse;margin:8px 0}
table.kv td,table.kv th{border:1px solid #ddd;padding:3px 10px;text-align:left;font-size:.9em}
table.kv th{background:#eee}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:10px;margin:10px 0;
display:flex;gap:14px;align-items:flex-start}
.strip{display:flex;gap:2px;flex:none}.strip img{display:block;border-radius:2px}
.noframes{width:200px;height:60px;background:#eee;color:#777;font-size:.8em;display:flex;
align-items:center;justify-content:center;text-align:center;padding:4px}
.vid{font-family:monospace;color:#555;font-size:.85em}
.caption{font-size:1.1em;font-weight:600;margin:4px 0}
.refs{margin:4px 0 4px 18px;padding:0;color:#444;font-size:.9em}
.scores span{display:inline-block;background:#eef;border-radius:3px;padding:1px 6px;
margin:2px 4px 2px 0;font-size:.85em}
.scores span.rank{background:#ffd}
.attr span{display:inline-block;border-radius:3px;padding:1px 6px;margin:2px 4px 2px 0;
font-size:.8em}.attr .ok{background:#dfd}.attr .bad{background:#fdd}
.note{color:#666;font-size:.9em}
table.att{border-collapse:collapse;margin:4px 0;font-size:.8em}
table.att td{padding:0 4px 0 0;white-space:nowrap}table.att td.w{width:12px;height:12px;
padding:0;border:1px solid #fff}
"""


@dataclass
class ReportItem:
    """One video on the report page.

    Attributes:
        video_id: the video id.
        caption: the generated caption.
        references: its reference captions.
        scores: its own per-video scores (metric -> value).
        video_path: the clip file for thumbnails (None or a missing file: a placeholder).
        checks: extra right/wrong labels, e.g. ``{"motion": (False, "said up, is left")}``.
        attention: per word of ``caption``, its weights over the model's input frames
            (each row sums to 1); None for models without attention.
    """

    video_id: str
    caption: str
    references: list[str]
    scores: dict[str, float]
    video_path: Path | None = None
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    attention: list[list[float]] | None = None


def thumbnails(path: Path, num_frames: int = 4, size: int = 96, quality: int = 80) -> list[str]:
    """Decode a few evenly spaced frames of a video as JPEG data URIs.

    Args:
        path: the video file.
        num_frames: how many frames (evenly spaced over the whole clip).
        size: side of the square (centre-cropped) thumbnails in pixels.
        quality: JPEG quality.
    Returns:
        ``data:image/jpeg;base64,...`` strings, one per frame.
    Raises:
        VideoError: the video cannot be decoded.
    """
    from PIL import Image

    from s2vt.video import SamplingConfig, read_clip

    clip = read_clip(Path(path), SamplingConfig(mode="uniform", num_frames=num_frames), size)
    uris = []
    for frame in clip.frames:
        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=quality)
        uris.append("data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii"))
    return uris


def group_items(
    items: Sequence[ReportItem], rank_metric: str
) -> dict[str, list[ReportItem]]:
    """Rank by ``rank_metric`` (best first; ties by id) and cut into best/middle/worst thirds.

    With fewer than three videos the first groups get them (e.g. one video: best only).
    """
    ranked = sorted(items, key=lambda item: (-item.scores.get(rank_metric, 0.0), item.video_id))
    count = len(ranked)
    sizes = [count // 3 + (1 if i < count % 3 else 0) for i in range(3)]
    groups: dict[str, list[ReportItem]] = {}
    start = 0
    for (name, _), size in zip(GROUPS, sizes, strict=True):
        groups[name] = ranked[start : start + size]
        start += size
    return groups


def _shown(group: list[ReportItem], name: str, limit: int) -> list[ReportItem]:
    """Which videos of a group get a card: the top of best, the centre of middle, the bottom
    of worst (so the page shows the clearest examples of each kind)."""
    if len(group) <= limit:
        return group
    if name == "best":
        return group[:limit]
    if name == "worst":
        return group[-limit:]
    start = (len(group) - limit) // 2
    return group[start : start + limit]


def _kv_table(rows: Mapping[str, Any], header: tuple[str, str] | None = None) -> str:
    parts = ['<table class="kv">']
    if header:
        parts.append(f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>")
    for key, value in rows.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        parts.append(f"<tr><td>{html.escape(str(key))}</td><td>{html.escape(shown)}</td></tr>")
    parts.append("</table>")
    return "\n".join(parts)


def _card(item: ReportItem, rank_metric: str, num_frames: int, thumb_size: int) -> str:
    strip = _strip(item, num_frames, thumb_size)
    refs = "".join(f"<li>{html.escape(ref)}</li>" for ref in item.references)
    metrics = [m for m in CARD_METRICS if m in item.scores]
    if rank_metric not in metrics and rank_metric in item.scores:
        metrics.append(rank_metric)
    badges = "".join(
        ('<span class="rank">' if m == rank_metric else "<span>")
        + f"{html.escape(m)} {item.scores[m]:.3f}</span>"
        for m in metrics
    )
    checks = "".join(
        f'<span class="{"ok" if ok else "bad"}">{html.escape(kind)}: {html.escape(text)}</span>'
        for kind, (ok, text) in item.checks.items()
    )
    caption = html.escape(item.caption) if item.caption else "<em>(empty caption)</em>"
    return (
        '<div class="card">'
        f"{strip}"
        "<div>"
        f'<div class="vid">{html.escape(item.video_id)}</div>'
        f'<div class="caption">{caption}</div>'
        f'<div class="scores">{badges}</div>'
        + (f'<div class="attr">{checks}</div>' if checks else "")
        + _attention_rows(item)
        + f'<ul class="refs">{refs}</ul>'
        "</div></div>"
    )


def _attention_rows(item: ReportItem) -> str:
    """One row per caption word: the word, then one cell per model frame shaded by the
    weight the word gave it (relative to the row's largest weight; exact value on hover)."""
    words = item.caption.split()
    if not item.attention or len(item.attention) != len(words):
        return ""
    rows = []
    for word, weights in zip(words, item.attention, strict=True):
        top = max(weights) or 1.0
        cells = "".join(
            f'<td class="w" style="background:rgba(200,60,20,{w / top:.2f})" '
            f'title="frame {i + 1}: {w:.2f}"></td>'
            for i, w in enumerate(weights))
        rows.append(f"<tr><td>{html.escape(word)}</td>{cells}</tr>")
    return ('<table class="att" aria-label="attention over frames per word">'
            + "".join(rows) + "</table>")


def _strip(item: ReportItem, num_frames: int, thumb_size: int) -> str:
    """The thumbnails, or a placeholder saying why there are none."""
    if item.video_path is None:
        reason = "no video file known"
    elif not Path(item.video_path).is_file():
        reason = f"video not found: {item.video_path}"
    else:
        try:
            uris = thumbnails(Path(item.video_path), num_frames, thumb_size)
        except S2VTError as error:
            logger.warning("report: no thumbnails for %s: %s", item.video_id, error)
            reason = "video cannot be decoded"
        else:
            images = "".join(
                f'<img src="{uri}" width="{thumb_size}" height="{thumb_size}" '
                f'alt="frame {i + 1} of {html.escape(item.video_id)}">'
                for i, uri in enumerate(uris)
            )
            return f'<div class="strip">{images}</div>'
    return f'<div class="noframes">{html.escape(reason)}</div>'


def render_report(
    items: Sequence[ReportItem],
    scores: Mapping[str, float],
    settings: Mapping[str, Any],
    *,
    rank_metric: str,
    per_group: int = 30,
    num_frames: int = 4,
    thumb_size: int = 96,
    title: str = "s2vt evaluation",
) -> str:
    """Build the report page.

    Args:
        items: one entry per scored video.
        scores: corpus-level scores (the summary table).
        settings: model, split, beam size, scorer settings... (shown as a table).
        rank_metric: the per-video score that ranks the videos into groups.
        per_group: at most this many cards per group (thumbnails are decoded only for
            these), so the page stays small on large test sets.
        num_frames: thumbnails per video.
        thumb_size: thumbnail side in pixels.
        title: page title.
    Returns:
        The HTML text.
    """
    from tqdm import tqdm

    groups = group_items(items, rank_metric)
    shown = {name: _shown(group, name, per_group) for name, group in groups.items()}
    total_cards = sum(len(group) for group in shown.values())
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">{len(items)} videos scored. Videos are ranked by their own '
        f"<b>{html.escape(rank_metric)}</b> and split into thirds, as the S2VT paper shows "
        "correct, relevant-but-wrong and irrelevant descriptions.</p>",
        "<h2>Scores</h2>",
        _kv_table(scores, header=("metric", "value")),
        "<h2>Settings</h2>",
        _kv_table({k: _flat(v) for k, v in settings.items()}, header=("setting", "value")),
    ]
    progress = tqdm(total=total_cards, desc="report", unit="video", leave=False)
    for name, heading in GROUPS:
        group = groups[name]
        parts.append(f'<h2 id="{name}">{html.escape(heading)}</h2>')
        if not group:
            parts.append('<p class="note">no videos in this group</p>')
            continue
        low = min(item.scores.get(rank_metric, 0.0) for item in group)
        high = max(item.scores.get(rank_metric, 0.0) for item in group)
        note = f"{len(group)} videos, {rank_metric} {low:.3f} to {high:.3f}"
        if len(shown[name]) < len(group):
            note += f"; showing {len(shown[name])}"
        parts.append(f'<p class="note">{html.escape(note)}</p>')
        for item in shown[name]:
            parts.append(_card(item, rank_metric, num_frames, thumb_size))
            progress.update(1)
    progress.close()
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _flat(value: Any) -> str:
    """A setting value as one line of text."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_flat(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(_flat(v) for v in value)
    return str(value)


def write_report(path: Path, items: Sequence[ReportItem], scores: Mapping[str, float],
                 settings: Mapping[str, Any], **options: Any) -> None:
    """Render the report (see :func:`render_report` for ``options``) and write it atomically."""
    from s2vt.fileio import atomic_write_text

    atomic_write_text(Path(path), render_report(items, scores, settings, **options))
