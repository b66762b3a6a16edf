"""Timeline pictures of a grounding result, in the manner of the paper's Figures 3 and 4.

The paragraph and each sentence are bars over the video's time axis (with the ground truth
beside them when it is known); below, the words of one chosen sentence, each with its own bar.
"""

from __future__ import annotations

import os
import textwrap

from hscnet.common.atomic import atomic_path

PREDICTED, TRUTH, WORD = "#2b6cb0", "#a0aec0", "#dd6b20"


def plot_grounding(
    result: dict, path: str | os.PathLike, word_sentence: int = 0, truth: list[tuple[float, float]] | None = None
) -> None:
    """Write the timeline of a `ground_paragraph` result as an image (PNG by the file's suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sentences = result["sentences"]
    if truth is not None and len(truth) != len(sentences):
        truth = None  # the paragraph was split into other sentences than the annotation's
    word_sentence = min(max(word_sentence, 0), len(sentences) - 1)
    words = sentences[word_sentence]["words"]
    rows = [("paragraph", result["paragraph"]["start"], result["paragraph"]["end"], None)]
    for i, sentence in enumerate(sentences):
        label = textwrap.shorten(f"{i + 1}. {sentence['text']}", 48, placeholder="...")
        rows.append((label, sentence["start"], sentence["end"], truth[i] if truth else None))
    height = 0.42 * (len(rows) + len(words)) + 1.6
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, height), sharex=True, gridspec_kw={"height_ratios": [len(rows), max(len(words), 1)]}
    )
    for y, (_label, start, end, true_span) in enumerate(reversed(rows)):
        if true_span is not None:
            top.barh(y + 0.22, true_span[1] - true_span[0], left=true_span[0], height=0.36, color=TRUTH)
        top.barh(
            y - (0.18 if true_span is not None else 0),
            end - start,
            left=start,
            height=0.36 if true_span else 0.6,
            color=PREDICTED,
        )
    top.set_yticks(range(len(rows)), [r[0] for r in reversed(rows)], fontsize=8)
    title = f"{result['video']}: predicted (blue)" + (", ground truth (grey)" if truth else "")
    top.set_title(title, fontsize=10)
    for y, word in enumerate(reversed(words)):
        bottom.barh(y, word["end"] - word["start"], left=word["start"], height=0.6, color=WORD)
    bottom.set_yticks(range(len(words)), [w["word"] for w in reversed(words)], fontsize=8)
    bottom.set_title(f"words of sentence {word_sentence + 1}", fontsize=9)
    bottom.set_xlim(0, result["duration"])
    bottom.set_xlabel("time (s)")
    figure.tight_layout()
    suffix = os.path.splitext(str(path))[1].lstrip(".") or "png"
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format=suffix, dpi=110)
    plt.close(figure)
