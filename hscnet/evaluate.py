"""Evaluation as the VPG papers do it (bin/eval), beside the dataset-prior baseline (`prior.py`).

Every sentence of the split's paragraphs is grounded; R@m and mIoU are pooled over all
sentences (`metrics.py`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common import atomic
from common.devices import autocast_dtype, resolve_device
from common.errors import InputError
from hscnet.annotations import load_paragraphs
from hscnet.checkpoint import load_model
from hscnet.data import GroundingDataset, make_loader
from hscnet.features import open_features
from hscnet.metrics import grounding_metrics
from hscnet.prior import prior_predictions

log = logging.getLogger(__name__)


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
    *,
    annotations: str | None = None,
    features_path: str | None = None,
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
    store = open_features(features_path or config.data.features)
    dataset = GroundingDataset(
        paragraphs,
        store,
        trained.vocab,
        config.data.num_clips,
        config.data.feature_dim,
        config.data.max_words,
        missing_features=config.data.missing_features,
        source=str(annotation_path),
        chunk_sentences=config.data.max_sentences,
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
    prior = trained.prior
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
