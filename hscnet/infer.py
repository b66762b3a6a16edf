"""Grounding one paragraph in one video's features: the whole hierarchy of §3.4.

The result is the JSON of `bin/ground --json` (ARCHITECTURE.md): the paragraph's span (the
paragraph decoder's, or the hull of the sentences' when the model has none), each sentence's
final span T^, and each word's span from the word-level decoder T~^W (the sentence's span when
the model has no word decoder).
Times are in seconds, clipped to the video, start <= end. The spans nest: each word's span is
clipped to its sentence's (L_subset trains words to stay inside; what still sticks out is cut), and
the paragraph's span is widened to hold every sentence.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from common.devices import autocast_dtype
from hscnet.checkpoint import TrainedModel
from hscnet.data import chunks, collate
from hscnet.features import prepare_video
from hscnet.text import parse_paragraph


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
    """features [T, D] of one video (as extracted), a paragraph (text, or a list of sentences).

    The model was trained on at most `data.max_sentences` sentences at a time (8), and the test
    sets are read in chunks of that many; a longer paragraph is grounded the same way, chunk by
    chunk, and the chunks joined: the paragraph's span is then the hull of the chunks' spans, and
    the result says how it was cut ("chunks": the sentences of each chunk)."""
    parsed = parse_paragraph(paragraph)
    vocab = trained.vocab
    unknown = sorted({w for words in parsed.sentences for w in words if w not in vocab})
    video_features = torch.from_numpy(prepare_video(features, trained.config.data.num_clips))
    device = torch.device(device)
    dtype = autocast_dtype(trained.config.train.precision, device)
    parts = chunks(len(parsed.sentences), trained.config.data.max_sentences)
    sentences, paragraph_spans = [], []
    for part in parts:
        item = {
            "video": video_features,
            "word_ids": [vocab.encode(parsed.sentences[i]) for i in part],
            "spans": torch.zeros(len(part), 2),
            "duration": duration,
            "meta": {},
        }
        batch = collate([item]).to(device)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            output = trained.model(batch)
        final = output.final[0].float().cpu().numpy()  # [Ns, 2]
        words = output.word[0].float().cpu().numpy() if output.word is not None else None  # [Ns, M, 2]
        found = []
        for k, i in enumerate(part):
            start, end = _seconds(final[k], duration)
            tokens = parsed.sentences[i]
            spans = [_seconds(words[k, j], duration) if words is not None else (start, end) for j in range(len(tokens))]
            spans = [(min(max(s, start), end), max(min(e, end), start)) for s, e in spans]  # inside the sentence
            word_entries = [{"word": word, "start": s, "end": e} for word, (s, e) in zip(tokens, spans, strict=True)]
            found.append({"text": parsed.texts[i], "start": start, "end": end, "words": word_entries})
        sentences += found
        if output.paragraph is not None:
            paragraph_spans.append(_seconds(output.paragraph[0].float().cpu().numpy(), duration))
        else:
            paragraph_spans.append((min(s["start"] for s in found), max(s["end"] for s in found)))
    # The paragraph holds its sentences: the paragraph decoder's span, widened where a sentence sticks out.
    paragraph_spans.append((min(s["start"] for s in sentences), max(s["end"] for s in sentences)))
    result = {
        "video": video,
        "duration": round(float(duration), 3),
        "paragraph": {"start": min(s for s, _ in paragraph_spans), "end": max(e for _, e in paragraph_spans)},
        "sentences": sentences,
        "unknown_words": unknown,
    }
    if len(parts) > 1:
        result["chunks"] = [[i + 1 for i in part] for part in parts]
    return result
