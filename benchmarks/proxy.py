"""Real-scale proof without the real features: train and test HSCNet on proxy features.

Run: .venv/bin/python benchmarks/proxy.py --dataset activitynet [--store DIR] [--run DIR] [key=value ...]
     [--config FILE] [--train-paragraphs N] [--val-paragraphs N] [--seed S] [--dim N] [--threads T]

It writes a feature store for every video of the dataset's real annotation files (from
../shared/data or $HSCNET_SHARED_DATA) with `proxy_store.py` (each clip carries a noisy trace
of the words of the sentences covering it), trains HSCNet with `configs/<dataset>.yaml` plus
the given overrides on the real training paragraphs, validates every epoch on the real
validation paragraphs, and tests the best checkpoint on the held-out test paragraphs
(ActivityNet val_2 in 8-sentence chunks, TACoS test paragraphs) beside the dataset prior.
The last line is HSCNet's test mIoU over the prior's.

`--train-paragraphs N` trains on N training paragraphs drawn at random (seed 0, the same N
paragraphs for every run), the size of a researcher's own captioned set; `--val-paragraphs N`
validates on N drawn the same way (validation on all of val_1 costs a minute an epoch). The
subsets are written as JSONL into the run folder. `--config` trains with another recipe, e.g.
configs/own-small.yaml, bin/train's default below 2000 paragraphs; the data paths, the feature
size and the run folder are filled in as for the dataset's config. `--seed` sets train.seed.
`--dim` writes (once) and uses a store of proxy features of that size instead of the
dataset's own (500 ActivityNet, 4096 TACoS): preparing a long TACoS video's 4096-d clips
costs more than a small model's step.

Ablations are overrides (benchmarks/ablation.py runs whole tables over several seeds), e.g.
Table 2's rows:
  model.word_level=false model.paragraph_level=false   (SL)
  model.word_level=false                               (SL + PL)
  model.paragraph_level=false                          (SL + WL)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from pathlib import Path

import torch
from proxy_store import write_proxy_store

from hscnet.annotations import Paragraph, load_paragraphs, write_jsonl
from hscnet.config import load_config
from hscnet.evaluate import EvalOutputs, evaluate_checkpoint
from hscnet.train import train

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
    parser.add_argument("--config", help="recipe to train with (default configs/<dataset>.yaml)")
    parser.add_argument("--train-paragraphs", type=int, default=0, help="train on this many paragraphs (0: all)")
    parser.add_argument("--val-paragraphs", type=int, default=0, help="validate on this many paragraphs (0: all)")
    parser.add_argument("--seed", type=int, help="train.seed (default: the config's)")
    parser.add_argument("--dim", type=int, default=0, help="proxy feature size (default: the dataset's features')")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    *names, dataset_dim = FILES[args.dataset]
    dim = args.dim or dataset_dim
    train_file, val_file, test_file = (shared / name for name in names)
    if not train_file.is_file():
        sys.exit(f"real annotations not found under {shared}: set HSCNET_SHARED_DATA")
    store = Path(args.store or f"/tmp/hscnet-proxy-{args.dataset}" + (f"-{dim}" if dim != dataset_dim else ""))
    run_dir = Path(args.run or REPO / "runs" / f"proxy-{args.dataset}")

    if args.threads:
        torch.set_num_threads(args.threads)

    started = time.time()
    sets = [load_paragraphs(path) for path in (train_file, val_file, test_file)]
    written = write_proxy_store(sets, store, dim=dim, progress=False)
    sizes = [os.path.getsize(written.where(video)) for video in written.ids()]
    print(f"proxy store {store}: {len(sizes)} videos, {sum(sizes) / 1e9:.2f} GB, {time.time() - started:.0f} s")

    if args.train_paragraphs:
        train_file = write_subset(sets[0], args.train_paragraphs, run_dir / "captions" / "train.jsonl")
    if args.val_paragraphs:
        val_file = write_subset(sets[1], args.val_paragraphs, run_dir / "captions" / "val.jsonl")
    data = [
        f"data.features={store}",
        f"data.train={train_file}",
        f"data.val={val_file}",
        f"data.test={test_file}",
        f"data.feature_dim={dim}",
    ]
    seed = [f"train.seed={args.seed}"] if args.seed is not None else []
    recipe = Path(args.config) if args.config else REPO / "configs" / f"{args.dataset}.yaml"
    config = load_config(recipe, [*data, "text.glove=", f"run_dir={run_dir}", *seed, *args.overrides])
    print(
        f"recipe {recipe.name}: {args.train_paragraphs or len(sets[0])} training paragraphs, "
        f"{args.val_paragraphs or len(sets[1])} validation, "
        f"D {config.model.hidden_dim}, {config.data.num_clips} clips, batch {config.train.batch_size}, "
        f"lr {config.train.lr} ({config.train.lr_schedule}, warm-up {config.train.warmup_steps}), "
        f"{config.train.epochs} epochs, seed {config.train.seed}"
    )
    state = train(config, progress=sys.stderr.isatty())
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    for line in lines:
        seconds = line["seconds"]
        print(
            f"epoch {line['epoch']}: train {seconds['train']:.0f} s, with validation {seconds['total']:.0f} s, "
            f"val mIoU {100 * line['val']['mIoU']:.2f}"
        )
    result = evaluate_checkpoint(
        run_dir / "best.pt", "test", outputs=EvalOutputs(json=str(run_dir / "test.json")), progress=sys.stderr.isatty()
    )
    gain = 100 * (result["metrics"]["mIoU"] - result["prior"]["mIoU"])
    model, prior = result["metrics"]["mIoU"], result["prior"]["mIoU"]
    print(
        f"best epoch {state.best_epoch + 1}: test mIoU {100 * model:.2f}, prior {100 * prior:.2f} ({gain:+.2f} points)"
    )
    print(f"HSCNet / dataset-prior test mIoU on held-out proxy paragraphs, ratio: {model / prior:.2f}")


def write_subset(paragraphs: list[Paragraph], size: int, path: Path) -> Path:
    """`size` paragraphs drawn at random (seed 0) and kept in file order, written as JSONL."""
    if size > len(paragraphs):
        sys.exit(f"asked for {size} paragraphs; the file has {len(paragraphs)}")
    chosen = sorted(random.Random(0).sample(range(len(paragraphs)), size))
    return write_jsonl(path, [paragraphs[i] for i in chosen])


if __name__ == "__main__":
    main()
