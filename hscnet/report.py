"""Grounding report pages: the video and its timeline in one self-contained HTML file.

A page shows the video player, the paragraph's span, one bar per sentence and beneath each
sentence one bar per word, the ground truth beside the prediction when it is known, and a cursor
at the video's current time. Hovering a bar shows its text and times; clicking it plays the video
from the bar's start to its end. The page needs no network: its styles and script are inline,
and the video is embedded (base64) when it is at most `EMBED_VIDEO_MAX_BYTES`, else referenced by
a path relative to the page, so the page keeps working when the folder that holds both moves.

Decisions: the bars are laid out here, in percentages of the video's duration, so the page is
complete without running its script (which only adds the player, the tooltip and the cursor);
bars are buttons, so they take the keyboard focus too. `bin/eval --html` writes one page per
video and an index of them sorted by mIoU, the worst first, which is where a researcher looks.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import numpy as np

from hscnet.common import atomic
from hscnet.common.wording import count
from hscnet.extract.store import video_id_for
from hscnet.metrics import temporal_iou

EMBED_VIDEO_MAX_BYTES = 8 * 1024**2
VIDEO_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".mov": "video/mp4", ".webm": "video/webm",
               ".mkv": "video/x-matroska", ".ogv": "video/ogg"}  # fmt: skip
# The colours of `hscnet.plot`'s timeline pictures, so the PNG and the page read alike.
PREDICTED, TRUTH, WORD, PARAGRAPH = "#2b6cb0", "#a0aec0", "#dd6b20", "#2c7a7b"


def video_source(
    video: str | os.PathLike, page: str | os.PathLike, embed_max_bytes: int = EMBED_VIDEO_MAX_BYTES
) -> str:
    """The `src` of the page's player: a data URI when the video is small, else its path relative to the page."""
    video, page = Path(video).resolve(), Path(page).resolve()
    kind = VIDEO_TYPES.get(video.suffix.lower(), "video/mp4")
    if video.stat().st_size <= embed_max_bytes:
        return f"data:{kind};base64," + base64.b64encode(video.read_bytes()).decode("ascii")
    return quote(Path(os.path.relpath(video, page.parent)).as_posix())


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{seconds % 60:04.1f}" if seconds >= 60 else f"{seconds:.1f} s"


def _tick_label(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}" if seconds >= 60 else f"{seconds:g} s"


def _tick_step(duration: float) -> float:
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600):
        if duration / step <= 10:
            return step
    return math.ceil(duration / 10 / 3600) * 3600


def _percent(seconds: float, duration: float) -> float:
    return round(100.0 * min(max(seconds / duration, 0.0), 1.0), 3) if duration > 0 else 0.0


def _bar(kind: str, start: float, end: float, duration: float, text: str, extra: str = "") -> str:
    """One span as a button on its track: `kind` is paragraph, predicted, truth or word."""
    left = _percent(start, duration)
    width = max(_percent(end, duration) - left, 0.0)
    times = f"{_clock(start)} – {_clock(end)}"
    tip = f"{text}\n{times}" + (f"\n{extra}" if extra else "")
    return (
        f'<button type="button" class="bar {kind}" style="left:{left}%;width:{width}%" '
        f'data-start="{start:.3f}" data-end="{end:.3f}" data-tip="{html.escape(tip)}" '
        f'aria-label="{html.escape(f"{kind} {text}: {times}")}"></button>'
    )


def _row(kind: str, label: str, bars: str) -> str:
    return (
        f'<div class="row {kind}"><div class="label" title="{html.escape(label)}">{html.escape(label)}</div>'
        f'<div class="track">{bars}</div></div>'
    )


def render_report(
    result: dict,
    *,
    video_src: str | None,
    truth: Sequence[Sequence[float]] | None = None,
    note: str = "",
) -> str:
    """The page of one `ground_paragraph` result (the JSON of `bin/ground --json`).

    `truth`: one [start, end] in seconds per sentence of the result, or None. `video_src`: from
    `video_source`, or None when the video is not at hand (the timeline alone is shown)."""
    duration = float(result["duration"])
    sentences = result["sentences"]
    if truth is not None and len(truth) != len(sentences):
        raise ValueError(f"{len(truth)} true spans for {len(sentences)} sentences")
    ious = temporal_iou([[s["start"], s["end"]] for s in sentences], truth) if truth is not None and sentences else None
    step = _tick_step(duration)
    ticks = "".join(
        # a label near the end is drawn left of its line, so that it stays inside the page
        f'<span class="tick{" end" if _percent(t, duration) > 90 else ""}" style="left:{_percent(t, duration)}%">'
        f"{html.escape(_tick_label(t))}</span>"
        for t in np.arange(0.0, duration + 1e-9, step)
    )
    rows = [f'<div class="row axis"><div class="label"></div><div class="track">{ticks}</div></div>']
    span = result["paragraph"]
    rows.append(
        _row("paragraph", "paragraph", _bar("paragraph", span["start"], span["end"], duration, "the whole paragraph"))
    )
    for i, sentence in enumerate(sentences):
        label = f"{i + 1}. {sentence['text']}"
        bars = ""
        extra = ""
        if truth is not None:
            true_start, true_end = (float(v) for v in truth[i])
            extra = f"IoU with the truth {ious[i]:.2f}"
            bars += _bar("truth", true_start, true_end, duration, f"{label} (ground truth)")
            label += f"  · IoU {ious[i]:.2f}"
        bars += _bar("predicted", sentence["start"], sentence["end"], duration, f"{i + 1}. {sentence['text']}", extra)
        words = "".join(
            _row("word", w["word"], _bar("word", w["start"], w["end"], duration, f"{w['word']} (sentence {i + 1})"))
            for w in sentence["words"]
        )
        rows.append(
            f'<div class="sentence{" with-truth" if truth is not None else ""}">{_row("sentence", label, bars)}'
            f'<details class="words" open><summary>words of sentence {i + 1}</summary>{words}</details></div>'
        )
    facts = [f"{_clock(duration)}", count(len(sentences), "sentence")]
    if ious is not None:
        facts.append(f"mIoU {100 * float(np.mean(ious)):.1f} · R@0.5 {100 * float(np.mean(ious > 0.5)):.1f}")
    if result.get("unknown_words"):
        facts.append(f"unknown words: {', '.join(result['unknown_words'])}")
    if video_src is not None:
        player = (
            f'<video id="player" controls preload="auto" src="{html.escape(video_src)}"></video>'
            '<p class="novideo cannot-play" hidden>This browser cannot play this video file (its container or '
            "codec); the timeline still works. An MP4 (H.264) or WebM copy of the video plays here.</p>"
        )
    else:
        player = '<p class="novideo">The video is not at hand: the timeline alone is shown.</p>'
    keys = [("paragraph", "paragraph"), ("predicted", "predicted"), ("word", "words")]
    keys += [("truth", "ground truth")] if truth is not None else []
    legend = " ".join(f'<span class="item"><span class="key {key}"></span>{name}</span>' for key, name in keys)
    title = html.escape(result.get("video") or "grounding")
    return PAGE.format(
        title=title,
        facts=html.escape(" · ".join(facts)),
        note=f'<p class="note">{html.escape(note)}</p>' if note else "",
        player=player,
        legend=legend,
        duration=f"{duration:.3f}",
        offset=f"{float(result.get('video_start', 0.0)):.3f}",
        rows="\n".join(rows),
        style=STYLE,
        script=SCRIPT,
    )


def write_report(
    result: dict,
    page: str | os.PathLike,
    *,
    video: str | os.PathLike | None = None,
    truth: Sequence[Sequence[float]] | None = None,
    note: str = "",
    embed_max_bytes: int = EMBED_VIDEO_MAX_BYTES,
) -> Path:
    """Write the page of `result` to `page` (atomically); `video` is the grounded file, if at hand."""
    src = video_source(video, page, embed_max_bytes) if video is not None and Path(video).is_file() else None
    atomic.write_text(page, render_report(result, video_src=src, truth=truth, note=note))
    return Path(page)


def render_index(entries: Sequence[dict], heading: str, facts: str = "") -> str:
    """The index of `bin/eval --html`: one row per video ({"video", "page", "sentences", "miou", "r05"}),
    the worst mIoU first."""
    rows = "".join(
        f'<tr><td><a href="{quote(entry["page"])}">{html.escape(entry["video"])}</a></td>'
        f'<td class="num">{entry["sentences"]}</td><td class="num">{100 * entry["miou"]:.1f}</td>'
        f'<td class="num">{100 * entry["r05"]:.1f}</td>'
        f'<td><div class="meter"><div style="width:{100 * entry["miou"]:.1f}%"></div></div></td></tr>'
        for entry in sorted(entries, key=lambda entry: (entry["miou"], entry["video"]))
    )
    return INDEX.format(
        heading=html.escape(heading), facts=html.escape(facts), rows=rows, count=len(entries), style=STYLE
    )


def _iou_summary(result: dict, truth: Sequence[Sequence[float]]) -> tuple[float, float]:
    ious = temporal_iou([[s["start"], s["end"]] for s in result["sentences"]], truth)
    return float(np.mean(ious)), float(np.mean(ious > 0.5))


def write_eval_pages(
    videos: Sequence[tuple[dict, list[list[float]]]],
    folder: str | os.PathLike,
    video_files: dict[str, Path],
    heading: str,
    facts: str = "",
    embed_max_bytes: int = EMBED_VIDEO_MAX_BYTES,
) -> Path:
    """One page per (result, truth) of an evaluated split, and `index.html` over them; returns the index."""
    folder = Path(folder)
    entries = []
    for result, truth in videos:
        page = folder / f"{video_id_for(result['video'])}.html"  # ids come from annotation files: kept inside
        write_report(result, page, video=video_files.get(result["video"]), truth=truth, embed_max_bytes=embed_max_bytes)
        miou, r05 = _iou_summary(result, truth)
        entries.append({"video": result["video"], "page": page.name, "sentences": len(truth), "miou": miou, "r05": r05})
    index = folder / "index.html"
    atomic.write_text(index, render_index(entries, heading, facts))
    return index


STYLE = (
    f":root {{ --predicted: {PREDICTED}; --truth: {TRUTH}; --word: {WORD}; --paragraph: {PARAGRAPH}; }}"
    + """
:root { --label: 18rem; font-family: system-ui, sans-serif; color: #1a202c; }
* { box-sizing: border-box; }
body { margin: 0 auto; padding: 1rem; max-width: 1400px; }
h1 { font-size: 1.25rem; margin: 0 0 .25rem; overflow-wrap: anywhere; }
.facts, .note, .legend { color: #4a5568; font-size: .9rem; margin: .25rem 0; }
video { display: block; width: 100%; max-height: 45vh; background: #000; margin: .5rem 0; }
.novideo { padding: 1rem; background: #edf2f7; }
.clock { font-variant-numeric: tabular-nums; font-size: .9rem; }
.timeline { position: relative; margin-top: .5rem; }
.row { display: grid; grid-template-columns: var(--label) 1fr; align-items: center; gap: .5rem; }
.label { font-size: .85rem; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
.track { position: relative; height: 1.4rem; background: #f7fafc; border-left: 1px solid #cbd5e0; }
.row.axis .track { height: 1.2rem; background: none; border-bottom: 1px solid #cbd5e0; }
.tick { position: absolute; bottom: 0; font-size: .7rem; color: #718096; border-left: 1px solid #a0aec0;
        padding-left: 2px; height: 100%; white-space: nowrap; }
.row.word .track { height: .8rem; }
.row.word .label { font-size: .75rem; color: #4a5568; padding-left: 1rem; }
.bar { position: absolute; top: 15%; height: 70%; min-width: 3px; border: 0; padding: 0; margin: 0;
       border-radius: 3px; cursor: pointer; }
.bar:hover, .bar:focus-visible { outline: 2px solid #1a202c; z-index: 2; }
.bar.predicted { background: var(--predicted); }
.bar.truth { background: var(--truth); }
.bar.word { background: var(--word); }
.bar.paragraph { background: var(--paragraph); }
.with-truth .row.sentence .bar.truth { top: 5%; height: 40%; }
.with-truth .row.sentence .bar.predicted { top: 55%; height: 40%; }
details.words summary { font-size: .75rem; color: #718096; cursor: pointer; margin-left: var(--label);
                        padding-left: .5rem; }
.cursor { position: absolute; top: 0; bottom: 0; width: 2px; background: #e53e3e; pointer-events: none; left: 0; }
.key { display: inline-block; width: .9rem; height: .6rem; border-radius: 2px; margin: 0 .25rem 0 .75rem; }
.key.predicted { background: var(--predicted); } .key.truth { background: var(--truth); }
.key.word { background: var(--word); } .key.paragraph { background: var(--paragraph); }
.legend .item { white-space: nowrap; }
.tick.end { transform: translateX(-100%); border-left: 0; border-right: 1px solid #a0aec0; padding: 0 2px 0 0; }
#tip { position: fixed; z-index: 10; max-width: 22rem; padding: .4rem .6rem; background: #1a202c; color: #fff;
       font-size: .8rem; border-radius: 4px; white-space: pre-line; pointer-events: none; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #e2e8f0; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.meter { background: #edf2f7; height: .6rem; min-width: 4rem; }
.meter div { background: var(--predicted); height: 100%; }
@media (max-width: 700px) {
  :root { --label: 0px; }
  body { padding: .5rem; }
  .row { grid-template-columns: 1fr; gap: 0; }
  .row.word { position: relative; }
  .row.word .label { position: absolute; left: 2px; z-index: 1; pointer-events: none; padding: 0 2px;
                     font-size: .65rem; line-height: .8rem; background: rgba(255, 255, 255, .75); }
  .tick:nth-child(even) { color: transparent; }
  .row.axis .label, .row.sentence .label { white-space: normal; }
  .row.sentence .label { margin-top: .5rem; }
  details.words summary { margin-left: 0; padding-left: 0; }
}
"""
)

# Plays a clicked bar's span (the player stops at its end), moves the cursor with the video's time,
# shows a bar's tooltip on hover and focus. Without a player, a click moves the cursor to the bar.
SCRIPT = """
(() => {
  const duration = parseFloat(document.querySelector('.timeline').dataset.duration);
  // The timeline starts at the first frame; a player's clock there reads the stream's start time.
  const offset = parseFloat(document.querySelector('.timeline').dataset.offset) || 0;
  const player = document.getElementById('player');
  const cursor = document.querySelector('.cursor');
  const clock = document.querySelector('.clock');
  const tip = document.getElementById('tip');
  const firstTrack = document.querySelector('.row.paragraph .track');
  let stopAt = null;
  let shown = 0;
  function place(t) {
    shown = t;
    const timeline = cursor.parentElement.getBoundingClientRect();
    const track = firstTrack.getBoundingClientRect();
    const fraction = duration > 0 ? Math.min(Math.max(t / duration, 0), 1) : 0;
    cursor.style.left = (track.left - timeline.left + fraction * track.width) + 'px';
    clock.textContent = t.toFixed(1) + ' s / ' + duration.toFixed(1) + ' s';
  }
  function follow() {
    if (player) {
      // A busy machine draws frames late, so the player may pass the end before a frame sees it: stop,
      // then show the span's last moment.
      if (stopAt !== null && player.currentTime >= stopAt + offset) {
        player.pause();
        player.currentTime = stopAt + offset;
        stopAt = null;
      }
      if (player.currentTime - offset !== shown) place(player.currentTime - offset);
    }
    requestAnimationFrame(follow);
  }
  document.querySelectorAll('.bar').forEach(bar => {
    const start = parseFloat(bar.dataset.start), end = parseFloat(bar.dataset.end);
    bar.addEventListener('click', () => {
      if (!player) { place(start); return; }
      player.currentTime = start + offset;
      stopAt = end > start ? end : null;
      const playing = player.play();
      if (playing) playing.catch(() => {});
      place(start);
    });
    const show = (x, y) => {
      tip.textContent = bar.dataset.tip;
      tip.hidden = false;
      const width = tip.offsetWidth, height = tip.offsetHeight;
      tip.style.left = Math.max(4, Math.min(x + 12, window.innerWidth - width - 4)) + 'px';
      tip.style.top = (y + 16 + height > window.innerHeight ? y - height - 8 : y + 16) + 'px';
    };
    bar.addEventListener('mousemove', event => show(event.clientX, event.clientY));
    bar.addEventListener('focus', () => { const r = bar.getBoundingClientRect(); show(r.left, r.bottom); });
    bar.addEventListener('mouseleave', () => { tip.hidden = true; });
    bar.addEventListener('blur', () => { tip.hidden = true; });
  });
  if (player) {
    player.addEventListener('seeked', () => place(player.currentTime - offset));
    const cannot = document.querySelector('.cannot-play');
    const refuse = () => { cannot.hidden = false; player.hidden = true; };
    player.addEventListener('error', refuse);
    if (player.error) refuse();
  }
  window.addEventListener('resize', () => place(shown));
  place(0);
  requestAnimationFrame(follow);
})();
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}: grounding report</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1><p class="facts">{facts}</p>{note}</header>
{player}
<div class="clock" aria-live="off"></div>
<p class="legend">{legend}</p>
<section class="timeline" data-duration="{duration}" data-offset="{offset}" aria-label="timeline">
{rows}
<div class="cursor" aria-hidden="true"></div>
</section>
<div id="tip" role="tooltip" hidden></div>
<script>{script}</script>
</body>
</html>
"""

INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{heading}</title>
<style>{style}</style>
</head>
<body>
<h1>{heading}</h1>
<p class="facts">{facts}</p>
<p class="facts">{count} videos, the worst mIoU first: open one to see its timeline.</p>
<table>
<thead><tr><th>video</th><th class="num">sentences</th><th class="num">mIoU</th><th class="num">R@0.5</th>
<th></th></tr></thead>
<tbody>{rows}</tbody>
</table>
</body>
</html>
"""
