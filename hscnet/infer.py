"""Grounding one paragraph in one video's features: the whole hierarchy of §3.4.

The result is the JSON of `bin/ground --json` (ARCHITECTURE.md): the paragraph's span (the
paragraph decoder's, or the hull of the sentences' when the model has none), each sentence's
final span T^, and each word's span from the word-level decoder T~^W (the sentence's span when
the model has no word decoder).
Times are in seconds, clipped to the video, start <= end. The spans nest: each word's span is
clipped to its sentence's (L_subset trains words to stay inside; what still sticks out is cut), and
the paragraph's span is widened to hold every sentence.

A paragraph longer than the model was trained on (`data.max_sentences`, 8) is read in chunks of at
most that many sentences. The benchmarks' test files are cut that way and each chunk is grounded
over the whole video (the paper's protocol, `reading="chunks"`). A user's paragraph is one story
whose chunks describe consecutive parts of the video, so by default (`reading="story"`) three
readings are averaged:
- the story: the chunks are grounded as the sentences of one short paragraph (each chunk's words
  as one pseudo-sentence), which places them along the video in order; then each chunk is grounded
  in its place, widened by a margin for events that overlap, and its spans are mapped back
  (`"chunk_windows"` in the result says where each chunk was read);
- the paragraph read whole, all its sentences at once (the model has no limit on their number,
  only its training had);
- the ordered partition: the video cut into consecutive parts, one per sentence in the paragraph's
  order, each cut at its expected place given the whole reading's sentence-to-clip similarities
  A^VS (Eq. 5).
docs/results.md has the measurements that chose this rule and its shares (`blend_shares`), on held-out
training paragraphs.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from hscnet.checkpoint import TrainedModel
from hscnet.common.devices import autocast_dtype
from hscnet.common.errors import InputError
from hscnet.config import Config
from hscnet.data import chunks, collate
from hscnet.features import prepare_video
from hscnet.text import ParsedParagraph, parse_paragraph

READINGS = ("story", "chunks")  # how a paragraph longer than the trained length is read
STORY_MARGIN = 0.1  # a chunk's window reaches this share of the video beyond its placed span, on each side


class BlendShares(NamedTuple):
    """A long paragraph's sentence spans: `partition` of them the ordered partition's, the rest the model's
    spans, `story` of which the chunks read in their windows and the rest the paragraph read whole."""

    story: float
    partition: float


# The best of a grid on 229 held-out long training paragraphs (docs/results.md): for the default proxy
# model, and, averaged over the story-trained models measured, for models trained on stories
# (data.stories), whose A^VS over a whole long paragraph is good enough to lean on the partition; the
# grids of models trained with a heavier sentence alignment (loss.align_sentence=2) pick the same. Their
# chunks' own readings still place each sentence's words.
SHARES = BlendShares(story=0.5, partition=0.4)
SHARES_AFTER_STORIES = BlendShares(story=0.0, partition=0.9)


def blend_shares(config: Config) -> BlendShares:
    """The shares a model made with `config` reads long paragraphs with."""
    return SHARES_AFTER_STORIES if config.data.stories else SHARES


class WindowOutput(NamedTuple):
    """One forward pass over sentences in a window, in fractions of the whole video."""

    final: np.ndarray  # T^ [Ns, 2]
    words: np.ndarray | None  # T~^W [Ns, M, 2]
    paragraph: np.ndarray | None  # T~^P [2]
    alignment: np.ndarray  # A^VS [Ns, Nv] over the window's clips


def _seconds(span, duration: float) -> tuple[float, float]:
    start, end = (float(np.clip(v, 0.0, 1.0)) * duration for v in span)
    return round(min(start, end), 3), round(max(start, end), 3)


class _Reader:
    """One model over one video's features: spans of sentences (lists of word ids) within a window."""

    def __init__(self, trained: TrainedModel, features: np.ndarray, device: torch.device):
        self.trained, self.features, self.device = trained, np.asarray(features), device
        self.dtype = autocast_dtype(trained.config.train.precision, device)

    @torch.no_grad()
    def spans(self, word_ids: list[list[int]], window: tuple[float, float] = (0.0, 1.0)) -> WindowOutput:
        """Sentences (lists of word ids) grounded in `window` (fractions of the video)."""
        rows = len(self.features)
        first = min(int(np.floor(window[0] * rows)), rows - 1)
        last = max(int(np.ceil(window[1] * rows)), first + 1)
        start, length = first / rows, (last - first) / rows  # the window in whole clips
        item = {
            "video": torch.from_numpy(prepare_video(self.features[first:last], self.trained.config.data.num_clips)),
            "word_ids": word_ids,
            "spans": torch.zeros(len(word_ids), 2),
            "duration": 1.0,
            "meta": {},
        }
        batch = collate([item]).to(self.device)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            output = self.trained.model(batch)

        def back(values: torch.Tensor) -> np.ndarray:
            return start + np.clip(values.float().cpu().numpy(), 0.0, 1.0) * length  # window -> video

        words = back(output.word[0]) if output.word is not None else None  # [Ns, M, 2]
        paragraph = back(output.paragraph[0]) if output.paragraph is not None else None  # [2]
        alignment = output.align_sentence[0].float().cpu().numpy()  # [Ns, Nv]
        return WindowOutput(back(output.final[0]), words, paragraph, alignment)


def story_windows(reader: _Reader, parsed: ParsedParagraph, parts: list[range]) -> list[tuple[float, float]]:
    """Where each chunk of a long paragraph lies: the chunks grounded as the pseudo-sentences of one short
    paragraph, each window widened by `STORY_MARGIN`. More chunks than the model reads at once fall back
    to windows in proportion to their sentences."""
    trained = reader.trained
    if len(parts) > trained.config.data.max_sentences:
        total = sum(len(part) for part in parts)
        bounds = np.cumsum([0] + [len(part) for part in parts]) / total
        placed = list(itertools.pairwise(bounds))
    else:
        max_words = trained.config.data.max_words
        pseudo = [[word for i in part for word in parsed.sentences[i]][:max_words] for part in parts]
        final = reader.spans([trained.vocab.encode(words) for words in pseudo]).final
        placed = [(float(min(s, e)), float(max(s, e))) for s, e in final]
    # A story's chunks come one after another: no window starts (or ends) before the one of the chunk before.
    starts = np.maximum.accumulate([s for s, _ in placed])
    ends = np.maximum.accumulate([max(e, s) for (_, e), s in zip(placed, starts, strict=True)])
    return [(max(0.0, s - STORY_MARGIN), min(1.0, e + STORY_MARGIN)) for s, e in zip(starts, ends, strict=True)]


def ordered_partition(alignment: np.ndarray) -> np.ndarray:
    """A^VS [Ns, Nv] -> [Ns, 2]: consecutive parts of the video, one per sentence in order, each at least
    one clip. Every such partition is weighed by the summed log-softmax over clips of each sentence's
    similarities, and each boundary is put at its expected place under those weights (forward-backward
    over clips): where two cuts fit about as well it falls between them, which scores better on held-out
    paragraphs than the single best partition (docs/results.md). More sentences than clips get the even split."""
    count, clips = alignment.shape
    if count > clips:
        bounds = np.linspace(0.0, 1.0, count + 1)
        return np.stack([bounds[:-1], bounds[1:]], axis=1)
    shifted = alignment - alignment.max(axis=1, keepdims=True)
    scores = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))  # log p(clip | sentence) [Ns, Nv]
    blocked = np.full(1, -np.inf)
    forward = np.full((count, clips), -np.inf)  # clips 0..c read, clip c in sentence i [Ns, Nv]
    forward[0, 0] = scores[0, 0]
    for c in range(1, clips):
        opened = np.concatenate([blocked, forward[:-1, c - 1]])  # clip c opens sentence i
        forward[:, c] = scores[:, c] + np.logaddexp(forward[:, c - 1], opened)
    backward = np.full((count, clips), -np.inf)  # the clips after c, given clip c in sentence i [Ns, Nv]
    backward[-1, -1] = 0.0
    for c in range(clips - 2, -1, -1):
        following = scores[:, c + 1] + backward[:, c + 1]
        backward[:, c] = np.logaddexp(following, np.concatenate([following[1:], blocked]))
    inside = np.exp(forward + backward - forward[-1, -1])  # P(clip c in sentence i) [Ns, Nv]
    ends = np.cumsum(inside.sum(axis=1)) / clips  # expected clips up to each sentence's end [Ns]
    return np.stack([np.concatenate([[0.0], ends[:-1]]), ends], axis=1)


def _blend_readings(reader: _Reader, parsed: ParsedParagraph, sentences: list[dict], duration: float):
    """Move each sentence of a long paragraph read in chunks (`sentences`, in seconds) to its blend with the
    whole reading and the ordered partition (see the module docstring). Its words move with it, keeping
    their places within the sentence: clipped to the new span instead, they would pile up at one end."""
    whole = reader.spans([reader.trained.vocab.encode(words) for words in parsed.sentences])
    chunked = np.array([[s["start"], s["end"]] for s in sentences]) / duration  # [Ns, 2]
    shares = blend_shares(reader.trained.config)
    model = shares.story * chunked + (1 - shares.story) * np.sort(np.clip(whole.final, 0.0, 1.0), axis=1)  # [Ns, 2]
    blended = shares.partition * ordered_partition(whole.alignment) + (1 - shares.partition) * model  # [Ns, 2]
    for sentence, span in zip(sentences, blended, strict=True):
        start, end = _seconds(span, duration)
        old_start, old_length = sentence["start"], sentence["end"] - sentence["start"]
        scale = (end - start) / old_length if old_length > 0 else 0.0
        for word in sentence["words"]:
            for key in ("start", "end"):
                word[key] = round(min(max(start + (word[key] - old_start) * scale, start), end), 3)
        sentence["start"], sentence["end"] = start, end


def ground_paragraph(
    trained: TrainedModel,
    features: np.ndarray,
    duration: float,
    paragraph: str | Sequence[str],
    *,
    video: str = "",
    device: torch.device | str = "cpu",
    reading: str = "story",
) -> dict:
    """features [T, D] of one video (as extracted), a paragraph (text, or a list of sentences).

    A paragraph longer than the trained length is read in chunks, as `reading` says (see the module
    docstring); the result then says how (`"chunks"`: the sentences of each chunk, `"reading"`)."""
    if reading not in READINGS:
        raise InputError(f"unknown reading {reading!r}: use {' or '.join(READINGS)}")
    parsed = parse_paragraph(paragraph)
    vocab = trained.vocab
    unknown = sorted({w for words in parsed.sentences for w in words if w not in vocab})
    reader = _Reader(trained, features, torch.device(device))
    parts = chunks(len(parsed.sentences), trained.config.data.max_sentences)
    windows = [(0.0, 1.0)] * len(parts)
    if len(parts) > 1 and reading == "story":
        windows = story_windows(reader, parsed, parts)
    sentences, paragraph_spans = [], []
    for part, window in zip(parts, windows, strict=True):
        final, words, decoded_paragraph, _ = reader.spans([vocab.encode(parsed.sentences[i]) for i in part], window)
        found = []
        for k, i in enumerate(part):
            start, end = _seconds(final[k], duration)
            tokens = parsed.sentences[i]
            spans = [_seconds(words[k, j], duration) if words is not None else (start, end) for j in range(len(tokens))]
            spans = [(min(max(s, start), end), max(min(e, end), start)) for s, e in spans]  # inside the sentence
            word_entries = [{"word": word, "start": s, "end": e} for word, (s, e) in zip(tokens, spans, strict=True)]
            found.append({"text": parsed.texts[i], "start": start, "end": end, "words": word_entries})
        sentences += found
        if decoded_paragraph is not None:
            paragraph_spans.append(_seconds(decoded_paragraph, duration))
    if len(parts) > 1 and reading == "story":
        _blend_readings(reader, parsed, sentences, duration)
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
        result["reading"] = reading
        if reading == "story":
            result["chunk_windows"] = [list(_seconds(window, duration)) for window in windows]
    return result
