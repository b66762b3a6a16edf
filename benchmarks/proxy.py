"""Real-scale proof without the real features: train and test HSCNet on proxy features.

Run: .venv/bin/python benchmarks/proxy.py --dataset activitynet [--store DIR] [--run DIR] [key=value ...]

It writes a feature store for every video of the dataset's real annotation files (from
../shared/data or $HSCNET_SHARED_DATA) with `pipeline.proxy` (each clip carries a noisy trace
of the words of the sentences covering it), trains HSCNet with `configs/<dataset>.yaml` plus
the given overrides on the real training paragraphs, validates every epoch on the real
validation paragraphs, and tests the best checkpoint on the held-out test paragraphs
(ActivityNet val_2 in 8-sentence chunks, TACoS test paragraphs) beside the dataset prior.
The last line is HSCNet's test mIoU over the prior's.

Ablations are overrides, e.g. Table 2's rows:
  model.word_level=false model.paragraph_level=false   (SL)
  model.word_level=false                               (SL + PL)
  model.paragraph_level=false                          (SL + WL)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from hscnet.annotations import load_paragraphs
from hscnet.config import load_config
from hscnet.evaluate import evaluate_checkpoint
from hscnet.train import train
from pipeline.proxy import write_proxy_store

REPO = Path(__file__).resolve().parents[1]
FILES = {
    "activitynet": ("activitynet/train.json", "activitynet/val_1.json", "activitynet/val_2_paragraphs.npy", 500),
    "tacos": ("tacos/train_paragraphs.npy", "tacos/val_paragraphs.npy", "tacos/test_paragraphs.npy", 4096),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=list(FILES), default="activitynet")
    parser.add_argument("--store", help="proxy feature store folder (default /tmp/hscnet-proxy-<dataset>)")
    parser.add_argument("--run", help="run folder (default runs/proxy-<dataset>)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    *names, dim = FILES[args.dataset]
    train_file, val_file, test_file = (shared / name for name in names)
    if not train_file.is_file():
        sys.exit(f"real annotations not found under {shared}: set HSCNET_SHARED_DATA")
    store = Path(args.store or f"/tmp/hscnet-proxy-{args.dataset}")
    run_dir = Path(args.run or REPO / "runs" / f"proxy-{args.dataset}")

    started = time.time()
    sets = [load_paragraphs(path) for path in (train_file, val_file, test_file)]
    written = write_proxy_store(sets, store, dim=dim)
    sizes = [os.path.getsize(written.where(video)) for video in written.ids()]
    print(f"proxy store {store}: {len(sizes)} videos, {sum(sizes) / 1e9:.2f} GB, {time.time() - started:.0f} s")

    data = [f"data.features={store}", f"data.train={train_file}", f"data.val={val_file}", f"data.test={test_file}"]
    config = load_config(
        REPO / "configs" / f"{args.dataset}.yaml", [*data, "text.glove=", f"run_dir={run_dir}", *args.overrides]
    )
    state = train(config)
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        seconds = line["seconds"]
        print(
            f"epoch {line['epoch']}: train {seconds['train']:.0f} s, with validation {seconds['total']:.0f} s, "
            f"val mIoU {100 * line['val']['mIoU']:.2f}"
        )
    result = evaluate_checkpoint(run_dir / "best.pt", "test", json_out=str(run_dir / "test.json"))
    gain = 100 * (result["metrics"]["mIoU"] - result["prior"]["mIoU"])
    model, prior = result["metrics"]["mIoU"], result["prior"]["mIoU"]
    print(
        f"best epoch {state.best_epoch + 1}: test mIoU {100 * model:.2f}, prior {100 * prior:.2f} ({gain:+.2f} points)"
    )
    print(f"HSCNet / dataset-prior test mIoU on held-out proxy paragraphs, ratio: {model / prior:.2f}")


if __name__ == "__main__":
    main()
