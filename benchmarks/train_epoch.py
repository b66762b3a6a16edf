"""Training steps fed by the data loader beside the same steps on batches already in memory.

Run: .venv/bin/python benchmarks/train_epoch.py [--store DIR] [--steps N] [key=value ...]

On the proxy ActivityNet store of benchmarks/proxy.py (its real annotations, features read
from disk, memory-mapped, normalised and resampled by the data loader), it times N steps
of an epoch as bin/train runs them, then the same N steps again with every batch collated
beforehand, from the same initial weights. It also prints how long it takes from the
annotation file to the first batch (features are memory-mapped batch by batch, never all read
at the start). The last line is loader time / in-memory time (target: at most 1.1, so that
loading never holds training up). Overrides change configs/activitynet.yaml as for bin/train
(the default is the proxy run's size).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from hscnet.annotations import load_paragraphs
from hscnet.common.memory import keep_freed_memory
from hscnet.config import load_config
from hscnet.data import EpochSampler, loader_workers, make_loader, tokenize_paragraphs
from hscnet.features import open_features
from hscnet.losses import total_loss
from hscnet.model import build_model
from hscnet.text import Vocabulary, load_word_vectors
from hscnet.train import training_set

REPO = Path(__file__).resolve().parents[1]
PROXY_SIZE = ["model.hidden_dim=128", "model.heads=4", "data.num_clips=128"]


def run_steps(model, optimizer, batches, config) -> float:
    started = time.perf_counter()
    for batch in batches:
        loss, _ = total_loss(model(batch), batch, config.loss)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="/tmp/hscnet-proxy-activitynet", help="proxy store of benchmarks/proxy.py")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args()
    keep_freed_memory()  # as bin/train runs its steps on a CPU (this benchmark's device)
    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    config = load_config(
        REPO / "configs" / "activitynet.yaml",
        [
            f"data.features={args.store}",
            f"data.train={shared / 'activitynet' / 'train.json'}",
            "text.glove=",
            *PROXY_SIZE,
            *args.overrides,
        ],
    )
    started = time.perf_counter()
    paragraphs = load_paragraphs(config.data.train)
    words = tokenize_paragraphs(paragraphs)
    vocab = Vocabulary.build(s for p in words for s in p)
    vectors = torch.from_numpy(load_word_vectors(vocab).matrix)
    data = config.data
    dataset = training_set(config, paragraphs, open_features(data.features), vocab, words)
    sampler = EpochSampler(len(dataset), config.train.seed, epoch=0)
    loader = make_loader(dataset, config.train.batch_size, data.num_workers, sampler)
    next(iter(loader))
    first_batch = time.perf_counter() - started

    torch.manual_seed(0)
    model = build_model(config, vectors)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.train.lr)

    def limited(iterable):
        for step, batch in enumerate(iterable):
            if step == args.steps:
                break
            yield batch

    run_steps(model, optimizer, limited(make_loader(dataset, config.train.batch_size, 0, sampler)), config)  # warm-up
    model.load_state_dict(initial)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.train.lr)
    with_loader = run_steps(model, optimizer, limited(loader), config)
    in_memory = list(limited(make_loader(dataset, config.train.batch_size, 0, sampler)))
    model.load_state_dict(initial)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.train.lr)
    from_memory = run_steps(model, optimizer, in_memory, config)
    print(
        f"{args.steps} steps of batch {config.train.batch_size}, D {config.model.hidden_dim}, Nv {data.num_clips}, "
        f"{loader_workers(data.num_workers, None)} loader workers (data.num_workers={data.num_workers}), "
        f"{torch.get_num_threads()} torch threads"
    )
    print(
        f"annotations, tokens, vocabulary ({len(vocab)} words), word vectors, dataset of {len(dataset)} paragraphs "
        f"over {len(dataset.store.ids())} feature files, first batch: {first_batch:.1f} s"
    )
    print(f"with the data loader: {with_loader:.1f} s ({with_loader / args.steps:.3f} s a step)")
    print(f"batches in memory:    {from_memory:.1f} s ({from_memory / args.steps:.3f} s a step)")
    print(f"loader / in-memory step time, ratio: {with_loader / from_memory:.2f}")


if __name__ == "__main__":
    main()
