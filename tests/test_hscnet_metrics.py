"""hscnet/metrics.py: the evaluation metrics of the VPG papers on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from hscnet.metrics import grounding_metrics, temporal_iou


def test_metrics_pool_all_sentences_and_count_strictly_greater():
    pred = np.array([[0, 1], [0, 0.5], [0.6, 1], [0, 1]])
    gt = np.array([[0, 1], [0.25, 0.75], [0, 0.5], [0, 0.5]])
    np.testing.assert_allclose(temporal_iou(pred, gt), [1, 1 / 3, 0, 0.5])
    metrics = grounding_metrics(pred, gt, thresholds=(0.3, 0.5, 0.7))
    assert metrics == pytest.approx({"R@0.3": 3 / 4, "R@0.5": 1 / 4, "R@0.7": 1 / 4, "mIoU": (1 + 1 / 3 + 0.5) / 4})
    assert set(grounding_metrics(pred, gt, (0.1, 0.3, 0.5))) == {"R@0.1", "R@0.3", "R@0.5", "mIoU"}


def test_zero_length_spans_in_metrics():
    np.testing.assert_allclose(
        temporal_iou([[0.5, 0.5], [0.5, 0.5], [0.4, 0.6]], [[0.5, 0.5], [0.6, 0.6], [0.5, 0.5]]), [1, 0, 0]
    )
