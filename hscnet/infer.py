"""Grounding one paragraph in one video's features: the whole hierarchy of §3.4.

The result is the JSON of DESIGN.md: the paragraph's span (the paragraph decoder's, or the hull
of the sentences' when the model has none), each sentence's final span T^, and each word's
span from the word-level decoder T~^W (the sentence's span when the model has no word decoder).
Times are in seconds, clipped to the video, start <= end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from common.devices import autocast_dtype
from extract.text import parse_paragraph
from hscnet.checkpoint import TrainedModel
from hscnet.data import collate
from hscnet.features import prepare_video


def _seconds(span, duration: float) -> tuple[float, float]:
    start, end = (float(np.clip(v, 0.0, 1.0)) * duration for v in span)
    return round(min(start, end), 3), round(max(start, end), 3)


@torch.no_grad()
def ground_paragraph(
    trained: TrainedModel,
    features: np.ndarray,
    duration: float,
    paragraph: str | Sequence[str],
    video: str = "",
    device: torch.device | str = "cpu",
) -> dict:
    """features [T, D] of one video (as extracted), a paragraph (text, or a list of sentences)."""
    parsed = parse_paragraph(paragraph)
    vocab = trained.vocab
    word_ids = [vocab.encode(words) for words in parsed.sentences]
    unknown = sorted({w for words in parsed.sentences for w in words if w not in vocab})
    item = {
        "video": torch.from_numpy(prepare_video(features, trained.config.data.num_clips)),
        "word_ids": word_ids,
        "spans": torch.zeros(len(word_ids), 2),
        "duration": duration,
        "meta": {},
    }
    device = torch.device(device)
    batch = collate([item]).to(device)
    dtype = autocast_dtype(trained.config.train.precision, device)
    with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        output = trained.model(batch)
    final = output.final[0].float().cpu().numpy()  # [Ns, 2]
    words = output.word[0].float().cpu().numpy() if output.word is not None else None  # [Ns, M, 2]
    sentences = []
    for i, (text, tokens) in enumerate(zip(parsed.texts, parsed.sentences, strict=True)):
        start, end = _seconds(final[i], duration)
        spans = [_seconds(words[i, j], duration) if words is not None else (start, end) for j in range(len(tokens))]
        word_entries = [{"word": word, "start": s, "end": e} for word, (s, e) in zip(tokens, spans, strict=True)]
        sentences.append({"text": text, "start": start, "end": end, "words": word_entries})
    if output.paragraph is not None:
        paragraph_start, paragraph_end = _seconds(output.paragraph[0].float().cpu().numpy(), duration)
    else:
        paragraph_start, paragraph_end = min(s["start"] for s in sentences), max(s["end"] for s in sentences)
    return {
        "video": video,
        "duration": round(float(duration), 3),
        "paragraph": {"start": paragraph_start, "end": paragraph_end},
        "sentences": sentences,
        "unknown_words": unknown,
    }
