"""hscnet/prior.py: the dataset prior."""

from __future__ import annotations

import json

import numpy as np

from hscnet.annotations import Paragraph
from hscnet.prior import SpanPrior


def test_the_prior_is_the_mean_span_by_position_and_length():
    paragraphs = [
        Paragraph("a", 10.0, ["x", "y"], [(0.0, 4.0), (4.0, 10.0)]),
        Paragraph("b", 20.0, ["x", "y"], [(0.0, 4.0), (10.0, 20.0)]),
        Paragraph("c", 10.0, ["x"], [(2.0, 6.0)]),
    ]
    prior = SpanPrior.fit(paragraphs)
    np.testing.assert_allclose(prior.predict(2), [[0.0, 0.3], [0.45, 1.0]])
    np.testing.assert_allclose(prior.predict(1), [[0.2, 0.6]])
    assert prior.predict(5).shape == (5, 2)  # an unseen length falls back to relative positions
    assert SpanPrior.from_json(json.loads(json.dumps(prior.to_json()))).predict(2).tolist() == prior.predict(2).tolist()
