"""Items/s of `bin/ground --batch` beside `bin/ground` called once per item, on the same items.

Run: .venv/bin/python benchmarks/ground_batch.py [--annotations demo/annotations/test.jsonl]

The items are the paragraphs of an annotation split of the demo world (default: its test split,
after `make demo`), each with its video. Both ways run as a user runs them, as new processes:
one `bin/ground VIDEO PARAGRAPH` per item (start-up, imports, model loading, extraction,
grounding, every time), then one `bin/ground --batch` over all items (the model loaded once;
Ray from `RAY_FROM_VIDEOS` videos on). Both write the same results; the script checks that
they agree. The last line is the batch's items/s over the per-item calls' items/s.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hscnet.annotations import load_paragraphs
from hscnet.pipeline.extraction import RAY_FROM_VIDEOS
from hscnet.pipeline.ground import DEMO_CHECKPOINT

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--annotations", default=str(REPO / "demo" / "annotations" / "test.jsonl"))
    parser.add_argument("--videos", default=str(REPO / "demo" / "videos"), help="where the split's videos are")
    parser.add_argument("--checkpoint", default=str(DEMO_CHECKPOINT))
    parser.add_argument("--limit", type=int, default=0, help="only the first N items (default: all)")
    args = parser.parse_args()
    for needed in (args.annotations, args.checkpoint):
        if not Path(needed).is_file():
            sys.exit(f"{needed} not found: run `make demo` first, or give --annotations and --checkpoint")
    paragraphs = load_paragraphs(args.annotations)
    paragraphs = paragraphs[: args.limit] if args.limit else paragraphs
    with tempfile.TemporaryDirectory(prefix="hscnet-batch-bench-") as folder:
        work = Path(folder)
        items = [{"video": str(Path(args.videos) / f"{p.video}.mp4"), "paragraph": p.sentences} for p in paragraphs]
        (work / "items.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
        ground = [str(REPO / "bin" / "ground"), "--checkpoint", args.checkpoint]

        single_results = []
        started = time.perf_counter()
        for i, item in enumerate(items):
            paragraph = work / f"{i}.txt"
            paragraph.write_text("\n".join(item["paragraph"]) + "\n")
            out = work / f"{i}.json"
            command = [*ground, item["video"], str(paragraph), "--sentences-per-line", "--json", str(out)]
            subprocess.run(command, check=True, capture_output=True, text=True)
            single_results.append(json.loads(out.read_text()))
        single_seconds = time.perf_counter() - started

        started = time.perf_counter()
        batch = [*ground, "--batch", str(work / "items.jsonl"), "--out", str(work / "batch.jsonl"), "--no-progress"]
        subprocess.run(batch, check=True, capture_output=True, text=True)
        batch_seconds = time.perf_counter() - started
        batch_results = [json.loads(line) for line in (work / "batch.jsonl").read_text().splitlines()]
        # A batch line names its video as the items file does; bin/ground's JSON by its file name.
        agree = all(
            {k: v for k, v in b.items() if k not in ("line", "video")} == {k: v for k, v in s.items() if k != "video"}
            and b["video"] == item["video"]
            for b, s, item in zip(batch_results, single_results, items, strict=True)
        )

        count = len(items)
        videos = len({item["video"] for item in items})
        mode = "Ray" if videos >= RAY_FROM_VIDEOS else "in-process"
        print(f"{count} items ({videos} videos) of {args.annotations}; checkpoint {args.checkpoint}")
        print(f"bin/ground once per item: {single_seconds:7.1f} s  {count / single_seconds:.3f} items/s")
        print(f"bin/ground --batch ({mode} extraction): {batch_seconds:7.1f} s  {count / batch_seconds:.3f} items/s")
        print(f"results identical: {'yes' if agree else 'NO'}")
        print(f"batch items/s over per-item calls' items/s, ratio: {single_seconds / batch_seconds:.2f}")


if __name__ == "__main__":
    main()
