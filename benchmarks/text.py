"""Sentences per second of parse_paragraph beside spaCy's bare tokenizer, on real sentences.

Run: .venv/bin/python benchmarks/text.py

Both read every sentence of ActivityNet Captions train.json (37421, from ../shared/data or
$HSCNET_SHARED_DATA); parse_paragraph gets each video's sentences as one paragraph (the
annotation's own split, as training does). The best of three rounds each, alternating. The
last line is parse_paragraph's rate over the bare tokenizer's (target: at least 0.5).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from hscnet.text import english, parse_paragraph

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    path = shared / "activitynet" / "train.json"
    if not path.is_file():
        sys.exit(f"{path} not found: set HSCNET_SHARED_DATA")
    paragraphs = [entry["sentences"] for entry in json.loads(path.read_text()).values()]
    sentences = [s for p in paragraphs for s in p]
    tokenizer = english().tokenizer

    def bare():
        for sentence in sentences:
            tokenizer(sentence)

    def ours():
        for paragraph in paragraphs:
            parse_paragraph(paragraph)

    best = {"bare": float("inf"), "ours": float("inf")}
    for _ in range(3):
        for name, work in (("bare", bare), ("ours", ours)):
            started = time.perf_counter()
            work()
            best[name] = min(best[name], time.perf_counter() - started)
    rate = {name: len(sentences) / seconds for name, seconds in best.items()}
    print(f"{len(sentences)} ActivityNet training sentences in {len(paragraphs)} paragraphs")
    print(f"spaCy blank('en') tokenizer alone: {rate['bare']:,.0f} sentences/s")
    print(f"parse_paragraph (tokens, lower-case, punctuation dropped): {rate['ours']:,.0f} sentences/s")
    print(f"parse_paragraph / bare tokenizer, ratio: {rate['ours'] / rate['bare']:.2f}")


if __name__ == "__main__":
    main()
