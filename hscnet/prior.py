"""The dataset prior: the baseline every grounding score is read against.

For the i-th of n sentences it predicts the mean normalised span of the i-th sentences of
n-sentence training paragraphs; a length never seen in training falls back to the mean span of
sentences at the same relative position ((i + 0.5) / n, in tenths). It shows how much of a score
comes from the datasets' position bias alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from hscnet.annotations import Paragraph

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


def prior_predictions(prior: SpanPrior, predictions: list[dict]) -> list[dict]:
    return [{**p, "predicted": (prior.predict(len(p["sentences"])) * p["duration"]).tolist()} for p in predictions]
