"""Evaluation as the VPG papers do it (bin/eval), beside the dataset-prior baseline.

Every sentence of the split's paragraphs is grounded; R@m and mIoU are pooled over all
sentences (`metrics.py`). The prior baseline predicts, for the i-th of n sentences, the mean
normalised span of the i-th sentences of n-sentence training paragraphs; it shows how much
of a score comes from the datasets' position bias alone.
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from extract import atomic
from extract.errors import InputError
from hscnet.checkpoint import autocast_dtype, load_model, resolve_device
from hscnet.data import GroundingDataset, Paragraph, collate, load_paragraphs, open_features
from hscnet.metrics import grounding_metrics

log = logging.getLogger(__name__)

_DECILES = 10


class SpanPrior:
    """Mean normalised span by (paragraph length n, sentence position i), from training paragraphs.

    A length never seen in training falls back to the mean span of sentences at the same
    relative position ((i + 0.5) / n, in tenths).
    """

    def __init__(self, by_position: dict[str, list[float]], by_decile: list[list[float]]):
        self.by_position = by_position
        self.by_decile = by_decile

    @classmethod
    def fit(cls, paragraphs: Sequence[Paragraph]) -> SpanPrior:
        sums: dict[str, list] = defaultdict(list)
        deciles: list[list] = [[] for _ in range(_DECILES)]
        for paragraph in paragraphs:
            n = len(paragraph.timestamps)
            for i, (start, end) in enumerate(paragraph.timestamps):
                span = [start / paragraph.duration, end / paragraph.duration]
                sums[f"{n},{i}"].append(span)
                deciles[min(int((i + 0.5) / n * _DECILES), _DECILES - 1)].append(span)
        overall = np.mean([s for spans in deciles for s in spans], axis=0).tolist() if paragraphs else [0.0, 1.0]
        return cls(
            {key: np.mean(spans, axis=0).tolist() for key, spans in sums.items()},
            [np.mean(spans, axis=0).tolist() if spans else overall for spans in deciles],
        )

    def predict(self, n: int) -> np.ndarray:
        """Normalised spans [n, 2] for an n-sentence paragraph."""
        spans = []
        for i in range(n):
            fallback = self.by_decile[min(int((i + 0.5) / n * _DECILES), _DECILES - 1)]
            spans.append(self.by_position.get(f"{n},{i}", fallback))
        return np.asarray(spans, dtype=np.float64)

    def to_json(self) -> dict:
        return {"by_position": self.by_position, "by_decile": self.by_decile}

    @classmethod
    def from_json(cls, obj: dict) -> SpanPrior:
        return cls(obj["by_position"], obj["by_decile"])


def loader_workers(num_workers: int, device: torch.device | None) -> int:
    """`data.num_workers`, with -1 (auto) as 0 on CPU and 2 on CUDA.

    On CPU the model's threads already use every core, and worker processes that preempt them
    cost more than loading in the main process (benchmarks/train_epoch.py on 2 cores: loader
    over in-memory step time 1.20 with 2 workers, 1.01 with none).
    """
    if num_workers < -1:
        raise InputError(f"data.num_workers is {num_workers}: use -1 (auto), 0 (load in this process) or more")
    if num_workers >= 0:
        return num_workers
    return 2 if device is not None and device.type == "cuda" else 0


def make_loader(dataset, batch_size: int, num_workers: int, sampler=None, device: torch.device | None = None):
    """A DataLoader with its own random generator, so that loading never draws from the global
    torch generator (dropout's), and with workers that leave Ctrl-C to the main process.
    `num_workers` -1 chooses by device (`loader_workers`)."""
    num_workers = loader_workers(num_workers, device)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        generator=torch.Generator(),
        worker_init_fn=_ignore_interrupts if num_workers else None,
        pin_memory=device is not None and device.type == "cuda",
    )


def _ignore_interrupts(_worker_id: int) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


@torch.no_grad()
def predict(
    model,
    dataset: GroundingDataset,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "evaluating",
) -> list[dict]:
    """Ground every paragraph of `dataset`: one dict per paragraph, times in seconds.

    `{"video", "duration", "sentences", "timestamps" (ground truth), "predicted"}`, sentences in
    annotation order. Predicted spans are clipped to the video.
    """
    was_training = model.training
    model.eval()
    results = []
    loader = make_loader(dataset, batch_size, num_workers, device=device)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            spans = model(batch.to(device)).final.float().clamp(0.0, 1.0).cpu().numpy()
        for b, meta in enumerate(batch.meta):
            count = len(meta["texts"])
            results.append(
                {
                    "video": meta["video"],
                    "duration": meta["duration"],
                    "sentences": meta["texts"],
                    "timestamps": meta["timestamps"],
                    "predicted": (spans[b, :count] * meta["duration"]).tolist(),
                }
            )
    model.train(was_training)
    return results


def prior_predictions(prior: SpanPrior, predictions: list[dict]) -> list[dict]:
    return [{**p, "predicted": (prior.predict(len(p["sentences"])) * p["duration"]).tolist()} for p in predictions]


def score(predictions: list[dict], thresholds: Sequence[float]) -> dict[str, float]:
    predicted = [span for p in predictions for span in p["predicted"]]
    truth = [span for p in predictions for span in p["timestamps"]]
    return grounding_metrics(np.asarray(predicted), np.asarray(truth), thresholds)


def results_table(rows: dict[str, dict[str, float]]) -> str:
    names = list(next(iter(rows.values())))
    width = max(len(name) for name in rows) + 2
    lines = [" " * width + "".join(f"{name:>9}" for name in names)]
    for label, metrics in rows.items():
        lines.append(f"{label:<{width}}" + "".join(f"{100 * metrics[name]:9.2f}" for name in names))
    return "\n".join(lines)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    split: str = "test",
    annotations: str | None = None,
    features: str | None = None,
    json_out: str | None = None,
    predictions_out: str | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """bin/eval: the paper's Table 1 row for a split, and the prior baseline's beside it."""
    torch_device = resolve_device(device)
    trained = load_model(checkpoint, torch_device)
    config = trained.config
    if split not in {"train", "val", "test"}:
        raise InputError(f"unknown split {split!r}: use train, val or test")
    annotation_path = annotations or getattr(config.data, split)
    if not annotation_path:
        raise InputError(f"{checkpoint}: its config names no data.{split}; give --annotations")
    paragraphs = load_paragraphs(annotation_path, config.data.format if not annotations else "auto")
    store = open_features(features or config.data.features)
    dataset = GroundingDataset(
        paragraphs,
        store,
        trained.vocab,
        config.data.num_clips,
        config.data.feature_dim,
        config.data.max_words,
        missing_features=config.data.missing_features,
        source=str(annotation_path),
    )
    predictions = predict(
        trained.model,
        dataset,
        config.eval.batch_size,
        torch_device,
        autocast_dtype(config.train.precision, torch_device),
        config.data.num_workers,
        progress,
    )
    prior = SpanPrior.from_json(trained.content["prior"])
    rows = {
        "HSCNet": score(predictions, config.eval.thresholds),
        "dataset prior": score(prior_predictions(prior, predictions), config.eval.thresholds),
    }
    sentences = sum(len(p["sentences"]) for p in predictions)
    print(f"{Path(annotation_path).name}: {len(predictions)} paragraphs, {sentences} sentences ({split} split)")
    print(results_table(rows))
    result = {
        "checkpoint": str(checkpoint),
        "split": split,
        "annotations": str(annotation_path),
        "paragraphs": len(predictions),
        "sentences": sentences,
        "metrics": rows["HSCNet"],
        "prior": rows["dataset prior"],
    }
    if json_out:
        atomic.write_json(json_out, result)
    if predictions_out:
        atomic.write_text(predictions_out, "".join(json.dumps(p) + "\n" for p in predictions))
    return result
