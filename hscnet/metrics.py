"""Evaluation metrics of the VPG papers (DepNet, PRVG, HSCNet Table 1).

R@m: the share of sentences whose temporal IoU with their ground truth is strictly greater
than m, pooled over all sentences of the split. mIoU: the mean IoU over all sentences. Both
are fractions in [0, 1] here and printed as percentages.
"""

from __future__ import annotations

import numpy as np


def temporal_iou(pred, gt) -> np.ndarray:
    """IoU of spans [N, 2] and [N, 2] -> [N].

    The union is the hull of the two spans, as in PRVG's evaluation; it equals the true union
    whenever the spans overlap, and the IoU is 0 when they do not. Two identical zero-length
    spans have IoU 1, different ones 0.
    """
    pred = np.asarray(pred, dtype=np.float64).reshape(-1, 2)
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 2)
    intersection = np.maximum(0.0, np.minimum(pred[:, 1], gt[:, 1]) - np.maximum(pred[:, 0], gt[:, 0]))
    union = np.maximum(pred[:, 1], gt[:, 1]) - np.minimum(pred[:, 0], gt[:, 0])
    identical = np.all(pred == gt, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / np.where(union > 0, union, 1.0), identical.astype(np.float64))
    return iou


def grounding_metrics(pred, gt, thresholds=(0.3, 0.5, 0.7)) -> dict[str, float]:
    """{"R@0.3": ..., "R@0.5": ..., "R@0.7": ..., "mIoU": ...} over all sentences, as fractions."""
    iou = temporal_iou(pred, gt)
    if len(iou) == 0:
        raise ValueError("no sentences to evaluate")
    metrics = {f"R@{m:g}": float(np.mean(iou > m)) for m in thresholds}
    metrics["mIoU"] = float(np.mean(iou))
    return metrics


def format_metrics(metrics: dict[str, float]) -> str:
    return "  ".join(f"{name} {100 * value:.2f}" for name, value in metrics.items())
