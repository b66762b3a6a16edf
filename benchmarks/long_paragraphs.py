"""Long paragraphs read as one story: each way of reading them beside the even split, on real paragraphs.

Run: .venv/bin/python benchmarks/long_paragraphs.py [--checkpoint CKPT] [--train-paragraphs 1500] [--epochs 8]
     [--max-sentences 8] [--chunk-length N] [--stories N] [--seed 0] [key=value ...]

HSCNet reads at most 8 sentences at a time. The 93 ActivityNet Captions val_1 paragraphs of 9 to 25
sentences are read whole (not cut into the test set's chunks), on proxy features of the real
videos (`proxy_store.py`), with a model trained on real training paragraphs by the small-data
recipe (`configs/own-small.yaml`; without `--checkpoint` one is trained here, about ten minutes
on 2 cores). Each reading is scored over all of their sentences:

- even split: the video cut into as many equal parts as sentences, one each, in order (no model);
- chunks: each chunk of at most 8 sentences grounded over the whole video (the paper's protocol);
- proportional windows: each chunk within its share of the video by sentence count, with a margin;
- chunks in order: each chunk within the video after the previous chunk's last sentence starts;
- story (placed by the model): the chunks grounded first as the pseudo-sentences of one short
  paragraph, then each within its placed span, with margins of 0, 0.1 and 0.2 of the video;
- the story with its chunks cut half a chunk later (the first holds half a chunk);
- chunks placed by the paragraph read whole: each within the hull of its sentences' spans there;
- sliding windows: each sentence read among the chunk of sentences centred on it, placed as above;
- the paragraph read whole: all its sentences at once, beyond the length the model was trained on;
- the ordered partition: the video cut into consecutive parts, one per sentence in order, where the
  whole reading's sentence-to-clip similarities A^VS are highest;
- the library's story reading (`hscnet.infer`): the story with margin 0.1, the whole reading and
  the ordered partition averaged (its shares chosen on held-out training paragraphs).

Beside them, the model and the dataset prior on the ordinary val_1 paragraphs (at most 8
sentences), to compare how much of the distance to a perfect score each closes: the model from
the prior on ordinary paragraphs, the reading from the even split on long ones. The last line is
the library's reading (`hscnet.infer`, "story") over the even split.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from proxy import FILES, write_subset
from proxy_store import write_proxy_store

from hscnet import infer
from hscnet.annotations import load_paragraphs
from hscnet.checkpoint import load_model
from hscnet.common.errors import InputError
from hscnet.config import DataConfig, load_config
from hscnet.data import chunks
from hscnet.features import open_features
from hscnet.metrics import grounding_metrics
from hscnet.prior import prior_predictions
from hscnet.text import parse_paragraph, tokenize
from hscnet.train import train

REPO = Path(__file__).resolve().parents[1]
THRESHOLDS = (0.3, 0.5, 0.7)


def even_split(count: int) -> np.ndarray:
    bounds = np.linspace(0.0, 1.0, count + 1)
    return np.stack([bounds[:-1], bounds[1:]], axis=1)  # [count, 2], fractions of the video


def proportional_windows(reader, parsed, parts, margin: float = 0.1):
    bounds = np.cumsum([0] + [len(part) for part in parts]) / sum(len(part) for part in parts)
    return [(max(0.0, a - margin), min(1.0, b + margin)) for a, b in itertools.pairwise(bounds)]


def in_order(trained, features, sentences: list[str], margin: float = 0.05) -> np.ndarray:
    """Chunk k within the video from where chunk k-1's last sentence starts (less a margin) to its end."""
    parsed = parse_paragraph(sentences)
    reader = infer._Reader(trained, features, torch.device("cpu"))
    spans, window_start = [], 0.0
    for part in chunks(len(parsed.sentences), trained.config.data.max_sentences):
        final = reader.spans([trained.vocab.encode(parsed.sentences[i]) for i in part], (window_start, 1.0)).final
        spans.append(np.sort(final, axis=1))
        window_start = max(0.0, min(float(spans[-1][-1, 0]) - margin, 0.95))
    return np.concatenate(spans)


def whole_reading_windows(reader, parsed, parts, margin: float = 0.1):
    """Each chunk within the hull of its sentences' spans in the paragraph read whole, with a margin."""
    final = reader.spans([reader.trained.vocab.encode(words) for words in parsed.sentences]).final
    spans = np.sort(np.clip(final, 0.0, 1.0), axis=1)
    return [(max(0.0, spans[list(part), 0].min() - margin), min(1.0, spans[list(part), 1].max() + margin))
            for part in parts]  # fmt: skip


def shifted_story(trained, features, sentences: list[str]) -> np.ndarray:
    """The story reading (margin 0.1) of chunks cut half a chunk later: the first holds half a chunk."""
    parsed = parse_paragraph(sentences)
    reader = infer._Reader(trained, features, torch.device("cpu"))
    count, length = len(parsed.sentences), trained.config.data.max_sentences
    parts = [range(0, length // 2)] + [range(a, min(a + length, count)) for a in range(length // 2, count, length)]
    spans = np.zeros((count, 2))
    for part, window in zip(parts, infer.story_windows(reader, parsed, parts), strict=True):
        final = reader.spans([trained.vocab.encode(parsed.sentences[i]) for i in part], window).final
        spans[list(part)] = np.sort(final, axis=1)
    return spans


def sliding_windows(trained, features, sentences: list[str], margin: float = 0.1) -> np.ndarray:
    """Each sentence read among the chunk of sentences centred on it, within that chunk's hull in the
    paragraph read whole (with a margin): one reading per sentence."""
    parsed = parse_paragraph(sentences)
    reader = infer._Reader(trained, features, torch.device("cpu"))
    count, length = len(parsed.sentences), trained.config.data.max_sentences
    encoded = [trained.vocab.encode(words) for words in parsed.sentences]
    final = reader.spans(encoded).final
    whole_spans = np.sort(np.clip(final, 0.0, 1.0), axis=1)
    spans = np.zeros((count, 2))
    for i in range(count):
        first = min(max(0, i - length // 2 + 1), count - length)
        part = list(range(first, first + length))
        window = (max(0.0, whole_spans[part, 0].min() - margin), min(1.0, whole_spans[part, 1].max() + margin))
        final = reader.spans([encoded[j] for j in part], window).final
        spans[i] = np.sort(final[i - first])
    return spans


def story(trained, features, sentences, margin: float, windows=None) -> np.ndarray:
    """Fractions of the video of the chunks read in their windows alone (the library's story reading
    without the whole reading and the partition), with another margin or window rule."""
    saved = infer.STORY_MARGIN, infer.story_windows, infer.blend_shares
    infer.STORY_MARGIN = margin
    infer.blend_shares = lambda config: infer.BlendShares(story=1.0, partition=0.0)
    if windows is not None:
        infer.story_windows = windows
    try:
        return spans_of(infer.ground_paragraph(trained, features, 1.0, sentences, reading="story"))
    finally:
        infer.STORY_MARGIN, infer.story_windows, infer.blend_shares = saved


def whole(trained, features, sentences) -> np.ndarray:
    """The paragraph read whole: all its sentences at once, however many the model was trained on."""
    reader = infer._Reader(trained, features, torch.device("cpu"))
    final = reader.spans([trained.vocab.encode(words) for words in parse_paragraph(sentences).sentences]).final
    return np.sort(np.clip(final, 0.0, 1.0), axis=1)  # [Ns, 2]


def partition(trained, features, sentences) -> np.ndarray:
    """The ordered partition of the video by the whole reading's sentence-to-clip similarities A^VS."""
    reader = infer._Reader(trained, features, torch.device("cpu"))
    reading = reader.spans([trained.vocab.encode(words) for words in parse_paragraph(sentences).sentences])
    return infer.ordered_partition(reading.alignment)  # [Ns, 2]


def held_out_shares(trained, store, paragraphs, length: int) -> None:
    """The grid that chose `infer.blend_shares`: long training paragraphs the model
    was not trained on, read in chunks (story, the library's margin), whole and as the ordered partition,
    blended as the library does."""
    used = {p.video for p in load_paragraphs(trained.config.data.train)}
    kept = [[(t, span) for t, span in zip(p.sentences, p.timestamps, strict=True) if tokenize(t)] for p in paragraphs]
    held = [(p, k) for p, k in zip(paragraphs, kept, strict=True) if p.video not in used and len(k) > length]
    if not held:
        print("no held-out long training paragraphs with features: the shares are not tuned here")
        return
    truth = np.concatenate([np.array([span for _, span in k]) / p.duration for p, k in held])
    even = np.concatenate([even_split(len(k)) for _, k in held])
    readings = {
        name: np.concatenate([read(store.read(p.video), [t for t, _ in k]) for p, k in held])
        for name, read in (
            ("story", lambda f, s: story(trained, f, s, infer.STORY_MARGIN)),
            ("whole", lambda f, s: whole(trained, f, s)),
            ("partition", lambda f, s: partition(trained, f, s)),
        )
    }
    scores = {
        (story_share, partition_share): grounding_metrics(
            partition_share * readings["partition"]
            + (1 - partition_share) * (story_share * readings["story"] + (1 - story_share) * readings["whole"]),
            truth, THRESHOLDS,
        )["mIoU"]
        for story_share in (0.0, 0.25, 0.5, 0.75, 1.0)
        for partition_share in (0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
    }  # fmt: skip
    (story_share, partition_share), best = max(scores.items(), key=lambda item: item[1])
    shares = infer.blend_shares(trained.config)
    floor = grounding_metrics(even, truth, THRESHOLDS)["mIoU"]
    print(f"held out: {len(held)} long training paragraphs ({len(truth)} sentences) the model never saw; "
          f"even split {100 * floor:.2f}, story and whole (0.5 each) {100 * scores[(0.5, 0.0)]:.2f}, "
          f"best blend story share {story_share:g}, partition share {partition_share:g}: mIoU {100 * best:.2f}; "
          f"the library's {shares.story:g} and {shares.partition:g}: "
          f"{100 * scores.get((shares.story, shares.partition), float('nan')):.2f}")  # fmt: skip


def spans_of(result: dict) -> np.ndarray:
    return np.array([[s["start"], s["end"]] for s in result["sentences"]])  # [Ns, 2]


def table(rows: dict[str, dict[str, float]]) -> str:
    names = list(next(iter(rows.values())))
    width = max(len(label) for label in rows) + 2
    lines = [" " * width + "".join(f"{name:>9}" for name in names)]
    lines += [f"{label:<{width}}" + "".join(f"{100 * m[name]:9.2f}" for name in names) for label, m in rows.items()]
    return "\n".join(lines)


def train_proxy_model(args, shared: Path) -> Path:
    train_file, val_file, _, dim = FILES["activitynet"]
    store, run_dir = Path(args.store), Path(args.run)
    captions = {"train": run_dir / "captions" / "train.jsonl", "val": run_dir / "captions" / "val.jsonl"}
    overrides = [f"data.features={store}", f"data.train={captions['train']}", f"data.val={captions['val']}",
                 "data.test=", f"data.feature_dim={dim}", "data.num_clips=128", f"train.epochs={args.epochs}",
                 "text.glove=", f"run_dir={run_dir}", f"data.max_sentences={args.max_sentences}",
                 f"data.stories={args.stories}", f"data.story_paragraphs={args.story_paragraphs}",
                 f"data.story_sentences={args.story_sentences}", f"train.seed={args.seed}",
                 *args.overrides]  # fmt: skip
    try:  # a wrong key fails here, before the slow work
        config = load_config(REPO / "configs" / "own-small.yaml", overrides)
    except InputError as error:
        sys.exit(f"error: {error}")
    sets = [load_paragraphs(shared / name) for name in (train_file, val_file, "activitynet/val_2_paragraphs.npy")]
    write_proxy_store(sets, store, dim=dim, progress=False)
    write_subset(sets[0], args.train_paragraphs, captions["train"])
    write_subset(sets[1], 500, captions["val"])
    if not (run_dir / "best.pt").is_file():
        train(config, progress=sys.stderr.isatty())
    elif (saved := load_config(run_dir / "config.yaml")) != config:  # a model trained by other flags
        differ = [f"{section}.{key}" for section, values in config.to_dict().items() if isinstance(values, dict)
                  for key, value in values.items() if saved.to_dict()[section][key] != value]  # fmt: skip
        sys.exit(f"{run_dir} holds a model trained otherwise ({', '.join(differ)}): name another --run")
    return run_dir / "best.pt"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a model trained on the proxy features (default: train one here)")
    parser.add_argument("--store", default="/tmp/hscnet-proxy-activitynet", help="the proxy feature store")
    parser.add_argument("--run", default="/tmp/hscnet-long-paragraphs", help="where the model is trained")
    parser.add_argument("--train-paragraphs", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="the training run's seed (train.seed)")
    parser.add_argument(
        "--stories",
        type=int,
        default=0,
        help="train also on this many stories an epoch (data.stories), each --story-paragraphs training "
        "paragraphs told one after another, 1 to --story-sentences of their sentences a sample",
    )
    parser.add_argument(
        "--story-paragraphs", type=int, default=DataConfig.story_paragraphs, help="data.story_paragraphs"
    )
    parser.add_argument("--story-sentences", type=int, default=DataConfig.story_sentences, help="data.story_sentences")
    parser.add_argument(
        "--max-sentences",
        type=int,
        default=8,
        help="train on 1 to this many sentences of a paragraph (data.max_sentences; the paper's 8)",
    )
    parser.add_argument(
        "--chunk-length",
        type=int,
        default=0,
        help="read paragraphs longer than this in chunks (default: the length the model trained on)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="more config overrides for the model trained here, e.g. loss.align_sentence=2",
    )
    args = parser.parse_args()
    if args.checkpoint and args.overrides:
        parser.error("key=value overrides shape the model trained here: leave them out with --checkpoint")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    if not (shared / "activitynet" / "val_1.json").is_file():
        sys.exit(f"real annotations not found under {shared}: set HSCNET_SHARED_DATA")

    started = time.time()
    checkpoint = Path(args.checkpoint) if args.checkpoint else train_proxy_model(args, shared)
    trained = load_model(checkpoint, torch.device("cpu"))
    if args.chunk_length:  # a model trained on longer paragraphs, read as one trained on this many sentences
        trained.config.data.max_sentences = args.chunk_length
    store = open_features(args.store)
    length = trained.config.data.max_sentences
    val_1 = [p for p in load_paragraphs(shared / "activitynet" / "val_1.json") if p.video in store]
    kept = [[(t, span) for t, span in zip(p.sentences, p.timestamps, strict=True) if tokenize(t)] for p in val_1]
    long = [(p, k) for p, k in zip(val_1, kept, strict=True) if len(k) > length]
    ordinary = [(p, k) for p, k in zip(val_1, kept, strict=True) if 0 < len(k) <= length]
    print(f"{checkpoint}: {len(long)} val_1 paragraphs longer than {length} sentences "
          f"({sum(len(k) for _, k in long)} sentences), {len(ordinary)} ordinary ones")  # fmt: skip

    held_out_shares(trained, store, load_paragraphs(shared / "activitynet" / "train.json"), length)

    readings = {
        "even split": lambda f, s: even_split(len(s)),
        "chunks (each over the whole video)": lambda f, s: spans_of(
            infer.ground_paragraph(trained, f, 1.0, s, reading="chunks")
        ),
        "proportional windows, margin 0.1": lambda f, s: story(trained, f, s, 0.1, proportional_windows),
        "chunks in order": lambda f, s: in_order(trained, f, s),
        "story, placed by the model, margin 0": lambda f, s: story(trained, f, s, 0.0),
        "story, placed by the model, margin 0.1": lambda f, s: story(trained, f, s, 0.1),
        "story, placed by the model, margin 0.2": lambda f, s: story(trained, f, s, 0.2),
        "story, chunks cut half a chunk later": lambda f, s: shifted_story(trained, f, s),
        "chunks placed by the paragraph read whole": lambda f, s: story(trained, f, s, 0.1, whole_reading_windows),
        "sliding windows of a chunk, one per sentence": lambda f, s: sliding_windows(trained, f, s),
        "paragraph read whole": lambda f, s: whole(trained, f, s),
        "ordered partition by A^VS (whole reading)": lambda f, s: partition(trained, f, s),
        "library (story)": lambda f, s: spans_of(infer.ground_paragraph(trained, f, 1.0, s, reading="story")),
    }
    truth = np.concatenate([np.array([span for _, span in k]) / p.duration for p, k in long])
    rows = {}
    for name, read in readings.items():
        predicted = np.concatenate([read(store.read(p.video), [t for t, _ in k]) for p, k in long])
        rows[name] = grounding_metrics(predicted, truth, THRESHOLDS)
    print(f"\nlong paragraphs ({len(truth)} sentences):")
    print(table(rows))

    predictions = []
    for p, k in ordinary:
        result = infer.ground_paragraph(trained, store.read(p.video), p.duration, [t for t, _ in k])
        predictions.append({"sentences": [t for t, _ in k], "duration": p.duration,
                            "timestamps": [list(span) for _, span in k],
                            "predicted": [[s["start"], s["end"]] for s in result["sentences"]]})  # fmt: skip
    all_truth = np.array([span for entry in predictions for span in entry["timestamps"]])
    model = grounding_metrics(np.array([s for e in predictions for s in e["predicted"]]), all_truth, THRESHOLDS)
    prior_spans = np.array([s for e in prior_predictions(trained.prior, predictions) for s in e["predicted"]])
    prior = grounding_metrics(prior_spans, all_truth, THRESHOLDS)
    print(f"\nordinary paragraphs ({len(all_truth)} sentences):")
    print(table({"HSCNet": model, "dataset prior": prior}))

    closed_ordinary = (model["mIoU"] - prior["mIoU"]) / (1 - prior["mIoU"])
    even = rows["even split"]["mIoU"]
    print("\nshare of the distance to a perfect mIoU closed:")
    print(f"  ordinary paragraphs, HSCNet from the prior: {closed_ordinary:.3f}")
    for name, metrics in rows.items():
        if name != "even split":
            print(f"  long paragraphs, {name} from the even split: {(metrics['mIoU'] - even) / (1 - even):.3f}")
    print(f"({time.time() - started:.0f} s)")
    chosen = rows["library (story)"]["mIoU"]
    print(f"story reading / even split mIoU on long val_1 paragraphs, ratio: {chosen / even:.2f}")


if __name__ == "__main__":
    main()
