"""bin/ground: one raw video and one paragraph to timestamps, in one process (no Ray start-up).

Argument parsing is bin/ground's; the work is `hscnet.Grounder` (the checkpoint's model and
extractor); this module reads the paragraph file and writes the outputs: a table on the
terminal, and on request the JSON of `bin/ground --json` and a timeline picture.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from common import atomic
from common.errors import InputError
from hscnet.grounder import Grounder
from hscnet.plot import plot_grounding

log = logging.getLogger(__name__)

DEMO_CHECKPOINT = Path(__file__).resolve().parents[1] / "demo" / "run" / "best.pt"


def default_checkpoint(runs: Path = Path("runs")) -> Path:
    """The newest run under ./runs (its best.pt, else its last.pt), then the demo's."""
    found = [run / "best.pt" if (run / "best.pt").is_file() else run / "last.pt" for run in runs.glob("*/")]
    found = [path for path in found if path.is_file()]
    if found:
        return max(found, key=lambda path: path.stat().st_mtime)
    if DEMO_CHECKPOINT.is_file():
        return DEMO_CHECKPOINT
    raise InputError(
        f"no --checkpoint given, no run under {runs.resolve()} and no demo checkpoint at {DEMO_CHECKPOINT}: "
        "train one with bin/train, or run `make demo`"
    )


def read_paragraph(path: str | os.PathLike, sentences_per_line: bool) -> str | list[str]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: paragraph file not found")
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise InputError(f"{path}: empty paragraph: the file has no text")
    if sentences_per_line:
        return [line.strip() for line in text.splitlines() if line.strip()]
    return text


def format_table(result: dict) -> str:
    lines = [
        f"{result['video']} ({result['duration']:.1f} s): paragraph {result['paragraph']['start']:.1f}-"
        f"{result['paragraph']['end']:.1f} s",
        f"{'#':>3} {'start':>7} {'end':>7}  sentence",
    ]
    for i, sentence in enumerate(result["sentences"], start=1):
        lines.append(f"{i:>3} {sentence['start']:>7.1f} {sentence['end']:>7.1f}  {sentence['text']}")
        words = ", ".join(f"{w['word']} {w['start']:.1f}-{w['end']:.1f}" for w in sentence["words"])
        lines.append(f"{'':>19}  words: {words}")
    if "chunks" in result:
        sizes = ", ".join(str(len(chunk)) for chunk in result["chunks"])
        lines.append(
            f"{len(result['sentences'])} sentences, grounded in chunks of at most the trained length ({sizes})"
        )
    if result["unknown_words"]:
        unknown = result["unknown_words"]
        lines.append(f"{len(unknown)} words neither training nor GloVe knows (read as unknown): {', '.join(unknown)}")
    return "\n".join(lines)


def ground_command(
    video: str | os.PathLike,
    paragraph_file: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    weights: str | None = None,
    pca: str | None = None,
    device: str = "auto",
    sentences_per_line: bool = False,
    json_out: str | None = None,
    plot_out: str | None = None,
    plot_sentence: int = 1,
) -> dict:
    """bin/ground: prints the table, writes what was asked for, returns the result dict."""
    if checkpoint is None:
        checkpoint = default_checkpoint()
        log.info(f"no --checkpoint given: using {checkpoint}")
    paragraph = read_paragraph(paragraph_file, sentences_per_line)
    result = Grounder.from_checkpoint(checkpoint, weights=weights, pca=pca, device=device).ground(video, paragraph)
    print(format_table(result))
    if json_out:
        atomic.write_json(json_out, result)
    if plot_out:
        plot_grounding(result, plot_out, word_sentence=plot_sentence - 1)
    return result
