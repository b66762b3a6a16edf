"""Paragraphs with their video features to model batches: the dataset (training samples
sentences, evaluation reads every one), the epoch sampler that makes a resumed run exact, the
collate function and the data loader.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass, field

import numpy as np
import torch

from hscnet.annotations import Paragraph
from hscnet.common.errors import InputError
from hscnet.config import Config
from hscnet.features import l2_normalize, resample_clips
from hscnet.text import Vocabulary, tokenize

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """What the model reads. B paragraphs, Nv clips, Ns sentences, Nw words, M words a sentence.

    Masks are True on real entries. `sentence_words[b, i, j]` indexes `words[b]` (the j-th word
    of sentence i), the layout of the word-level decoder (§3.4). Spans are normalised to [0, 1].
    """

    video: torch.Tensor  # [B, Nv, Dv] float
    video_mask: torch.Tensor  # [B, Nv] bool
    words: torch.Tensor  # [B, Nw] long, vocabulary ids
    word_mask: torch.Tensor  # [B, Nw] bool
    word_sentence: torch.Tensor  # [B, Nw] long, sentence of each word
    sentence_words: torch.Tensor  # [B, Ns, M] long, index into Nw
    sentence_word_mask: torch.Tensor  # [B, Ns, M] bool
    sentence_mask: torch.Tensor  # [B, Ns] bool
    spans: torch.Tensor  # [B, Ns, 2] float, normalised (start, end)
    paragraph_span: torch.Tensor  # [B, 2] float, the union (hull) of the sentences' spans
    duration: torch.Tensor  # [B] float, seconds
    meta: list[dict] = field(default_factory=list)  # video, texts, words, sentence indices

    def to(self, device: torch.device | str) -> Batch:
        moved = {
            name: value.to(device, non_blocking=True) if isinstance(value, torch.Tensor) else value
            for name, value in self.__dict__.items()
        }
        return Batch(**moved)

    def __len__(self) -> int:
        return self.video.shape[0]


@dataclass
class _Item:
    """A paragraph with its words tokenised and encoded, ready to be batched."""

    video: str
    duration: float
    texts: list[str]
    words: list[list[str]]
    word_ids: list[list[int]]
    spans: np.ndarray  # [Ns, 2] seconds


@dataclass
class DatasetReport:
    truncated_sentences: int = 0
    chunked_paragraphs: int = 0  # read in chunks of at most the trained number of sentences
    dropped_wordless_sentences: int = 0
    skipped_videos: list[str] = field(default_factory=list)

    def summary(self, max_words: int) -> str:
        parts = []
        if self.truncated_sentences:
            parts.append(f"{self.truncated_sentences} sentences truncated to max_words={max_words}")
        if self.dropped_wordless_sentences:
            parts.append(f"{self.dropped_wordless_sentences} sentences without a word dropped")
        if self.skipped_videos:
            parts.append(f"{len(self.skipped_videos)} paragraphs skipped for lack of features")
        if self.chunked_paragraphs:
            parts.append(f"{self.chunked_paragraphs} paragraphs longer than the trained length read in chunks")
        return "; ".join(parts)


def tokenize_paragraphs(paragraphs: Sequence[Paragraph]) -> list[list[list[str]]]:
    """Words of every sentence of every paragraph (annotation sentences are never re-split)."""
    return [[tokenize(sentence) for sentence in paragraph.sentences] for paragraph in paragraphs]


def chunks(count: int, size: int) -> list[range]:
    """Consecutive runs of at most `size` of `count` sentences, as even as possible (20 by 8: 7, 7, 6)."""
    parts = -(-count // size)
    bounds = [i * count // parts for i in range(parts + 1)]
    return [range(a, b) for a, b in itertools.pairwise(bounds)]


def crop_window(total: int, duration: float, spans: np.ndarray, rng: np.random.Generator) -> tuple[int, int]:
    """A random window [first, last) of a video's `total` clips that holds every span [Ns, 2] (seconds).

    Its first clip is drawn among those that start at or before the earliest start, its end among
    the clip boundaries at or after the latest end, so no sentence is cut and the idle clips on
    either side vary from one epoch to the next. The clips are taken to cover the video evenly,
    duration / total seconds each, as `prepare_video` and the span normalisation assume.
    """
    clip = duration / total
    earliest, latest = float(np.clip(spans[:, 0].min(), 0, duration)), float(np.clip(spans[:, 1].max(), 0, duration))
    first = int(rng.integers(0, min(int(earliest // clip), total - 1) + 1))
    last = int(rng.integers(max(math.ceil(latest / clip - 1e-9), first + 1), total + 1))
    return first, last


@dataclass(frozen=True)
class SampleSpec:
    """What a dataset's samples hold (their size) and, in training, how they are drawn from the paragraphs."""

    num_clips: int  # Nv: every video is resampled to this many clips
    feature_dim: int  # Dv: the clip features' size, checked against the store
    max_words: int  # a sentence's words past this many are cut
    _: KW_ONLY
    max_sentences: int | None = None  # training: 1 to this many sentences a sample; None: evaluation
    chunk_sentences: int | None = None  # evaluation: a longer paragraph is read in chunks of this many
    sample_sentences: bool = True  # training: False reads every sentence, in chunks of max_sentences
    crop_videos: bool = False  # training: a random window of whole clips around the sentences
    stories: int = 0  # training: this many more samples an epoch, each a story of several paragraphs
    story_paragraphs: int = 4  # the paragraphs a story joins
    story_sentences: int = 16  # training: 1 to this many of a story's sentences a sample
    seed: int = 0

    @classmethod
    def for_training(cls, config: Config) -> SampleSpec:
        data = config.data
        return cls(data.num_clips, data.feature_dim, data.max_words, max_sentences=data.max_sentences,
                   sample_sentences=data.sample_sentences, crop_videos=data.crop_videos, stories=data.stories,
                   story_paragraphs=data.story_paragraphs, story_sentences=data.story_sentences,
                   seed=config.train.seed)  # fmt: skip

    @classmethod
    def for_evaluation(cls, config: Config) -> SampleSpec:
        data = config.data
        return cls(data.num_clips, data.feature_dim, data.max_words, chunk_sentences=data.max_sentences)


class GroundingDataset(torch.utils.data.Dataset):
    """Paragraphs with their video features, as items for `collate`.

    Training (`max_sentences` set) samples between one and that many sentences of a paragraph,
    kept in annotation order, with a generator seeded by (seed, epoch, index) so that an epoch is
    the same whatever the worker that loads it and a resumed run sees the same samples. Evaluation
    (`max_sentences=None`) keeps every sentence, in annotation order too: training shows the
    one-way sentence LSTM the order the test reads (383 of the 4929 val_2 test chunks are not in
    time order as annotated, so sorting by time would show an order the test never has).
    Index with an int, or with (index, epoch) from `EpochSampler`.

    Two training options that are not the paper's, for small data (`configs/demo.yaml`):
    `sample_sentences=False` trains on every sentence, the paragraph cut into chunks of at most
    `max_sentences` as evaluation reads it; `crop_videos=True` cuts each training sample's video to
    a random window of whole clips around its sentences (`crop_window`), the spans re-expressed in
    it, so that where an event lies in the video changes from epoch to epoch and only the video
    tells it (their effect on small data is in docs/results.md).

    One more for long paragraphs: `stories=N` adds N samples an epoch after the paragraphs, each a
    story of `story_paragraphs` training paragraphs drawn anew every epoch and told one after another
    (`join_story`), with 1 to `story_sentences` of their sentences. The paper trains on paragraphs
    of at most 8 sentences over one video; a user's long paragraph is read in chunks placed along a
    video of many scenes, and a model that has seen such stories reads them better
    (docs/results.md, "Long paragraphs read as one story").
    """

    def __init__(
        self,
        paragraphs: Sequence[Paragraph],
        store,
        vocab: Vocabulary,
        spec: SampleSpec,
        *,
        words: list[list[list[str]]] | None = None,
        missing_features: str = "error",
        source: str = "annotations",
    ):
        self.store = store  # a FeatureStore or released HDF5Features: where each video's clips are read
        self.spec = spec
        max_words, chunk_sentences = spec.max_words, spec.chunk_sentences
        if spec.max_sentences is not None and not spec.sample_sentences:
            chunk_sentences = spec.max_sentences  # every sentence, in the chunks evaluation reads
        self.report = DatasetReport()
        words = words if words is not None else tokenize_paragraphs(paragraphs)

        missing = [p.video for p in paragraphs if p.video not in store]
        if missing and missing_features != "skip":
            unique = list(dict.fromkeys(missing))
            raise InputError(
                f"{source}: {len(unique)} of {len({p.video for p in paragraphs})} videos have no features in "
                f"{getattr(store, 'path', store)} (first: {', '.join(unique[:5])}); "
                "set data.missing_features=skip to leave them out"
            )
        self.report.skipped_videos = missing

        self.items: list[_Item] = []
        for paragraph, paragraph_words in zip(paragraphs, words, strict=True):
            if paragraph.video not in store:
                continue
            kept = [
                (t, w, s)
                for t, w, s in zip(paragraph.sentences, paragraph_words, paragraph.timestamps, strict=True)
                if w
            ]
            self.report.dropped_wordless_sentences += len(paragraph.sentences) - len(kept)
            if not kept:
                continue
            self.report.truncated_sentences += sum(len(w) > max_words for _, w, _ in kept)
            # Evaluation reads a paragraph longer than the model was trained on in chunks of at
            # most that many sentences, as the VPG test sets are cut (ActivityNet val_2 in 8s).
            parts = chunks(len(kept), chunk_sentences) if chunk_sentences else [range(len(kept))]
            self.report.chunked_paragraphs += len(parts) > 1
            for part in parts:
                truncated = [kept[i][1][:max_words] for i in part]
                self.items.append(
                    _Item(
                        video=paragraph.video,
                        duration=paragraph.duration,
                        texts=[kept[i][0] for i in part],
                        words=truncated,
                        word_ids=[vocab.encode(w) for w in truncated],
                        spans=np.array([kept[i][2] for i in part], dtype=np.float64),
                    )
                )
        if not self.items:
            raise InputError(f"{source}: no paragraph left with both features and words")
        if spec.stories:
            self._check_stories(source)
        summary = self.report.summary(max_words)
        if summary:
            log.info(f"{source}: {summary}")
        self._check_dimension(self.items[0].video)

    def _check_dimension(self, video: str, features: np.ndarray | None = None) -> np.ndarray:
        features = self.store.read(video) if features is None else features
        if features.ndim != 2 or features.shape[1] != self.spec.feature_dim or features.shape[0] == 0:
            raise InputError(
                f"{self.store.where(video)}: features of shape {tuple(features.shape)}, "
                f"expected [clips, {self.spec.feature_dim}] (data.feature_dim)"
            )
        return features

    def _check_stories(self, source: str) -> None:
        spec = self.spec
        if spec.max_sentences is None:
            raise ValueError("stories are training samples: a SampleSpec with stories needs max_sentences")
        most = min(len(self.items), spec.num_clips)
        if not 2 <= spec.story_paragraphs <= most:
            raise InputError(
                f"{source}: data.story_paragraphs is {spec.story_paragraphs}: a story joins 2 to {most} "
                "paragraphs (the training paragraphs, at most data.num_clips)"
            )
        if spec.stories < 0 or spec.story_sentences < 1:
            raise InputError(f"{source}: data.stories and data.story_sentences must be positive (0 stories: none)")

    def __len__(self) -> int:
        return len(self.items) + self.spec.stories

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        training = self.spec.max_sentences is not None
        rng = np.random.default_rng((self.spec.seed, epoch, index)) if training else None
        if index >= len(self.items):
            return self._story(rng)
        item = self.items[index]
        order = np.arange(len(item.texts))
        if training and self.spec.sample_sentences:
            order = _drawn_sentences(len(order), self.spec.max_sentences, rng)
        video = self._check_dimension(item.video, self.store.read(item.video))  # [T, Dv]
        return self._sample(item, order, l2_normalize(np.asarray(video, dtype=np.float32)), rng)

    def _story(self, rng: np.random.Generator) -> dict:
        """A story: `story_paragraphs` items drawn by `rng`, joined in the order drawn (`join_story`)."""
        spec = self.spec
        parts = [self.items[i] for i in rng.choice(len(self.items), spec.story_paragraphs, replace=False)]
        videos = [self._check_dimension(part.video, self.store.read(part.video)) for part in parts]
        video, seconds, duration = join_story(videos, [part.duration for part in parts], [part.spans for part in parts],
                                              spec.num_clips)  # fmt: skip
        story = _Item(
            video=" + ".join(part.video for part in parts),
            duration=duration,
            texts=[text for part in parts for text in part.texts],
            words=[words for part in parts for words in part.words],
            word_ids=[ids for part in parts for ids in part.word_ids],
            spans=seconds,
        )
        total = len(story.texts)
        if spec.sample_sentences:
            order = _drawn_sentences(total, spec.story_sentences, rng)
        else:  # every sentence of a consecutive run, as long as a sample may be
            count = min(spec.story_sentences, total)
            start = int(rng.integers(0, total - count + 1))
            order = np.arange(start, start + count)
        return self._sample(story, order, video, rng)

    def _sample(self, item: _Item, order: np.ndarray, video: np.ndarray, rng: np.random.Generator | None) -> dict:
        """The model's input for the sentences `order` of `item` over `video` ([T, Dv], L2-normalised clips)."""
        seconds, duration = item.spans[order], item.duration  # [Ns, 2]
        if rng is not None and self.spec.crop_videos:
            first, last = crop_window(len(video), duration, seconds, rng)
            clip = duration / len(video)
            video, seconds, duration = video[first:last], seconds - first * clip, (last - first) * clip
        spans = np.clip(seconds / duration, 0.0, 1.0)
        return {
            "video": torch.from_numpy(resample_clips(video, self.spec.num_clips)),
            "word_ids": [item.word_ids[i] for i in order],
            "spans": torch.from_numpy(spans.astype(np.float32)),
            "duration": duration,
            "meta": {
                "video": item.video,
                "duration": duration,
                "sentence_index": order.tolist(),
                "texts": [item.texts[i] for i in order],
                "timestamps": seconds.tolist(),
                "words": [item.words[i] for i in order],
            },
        }


def _drawn_sentences(total: int, most: int, rng: np.random.Generator) -> np.ndarray:
    """As the VPG peers train (PRVG): a count drawn from 1..min(most, total), then that many of the
    `total` sentences drawn without replacement, their indices sorted."""
    count = int(rng.integers(1, min(most, total) + 1))
    return np.sort(rng.choice(total, count, replace=False))


def join_story(videos: list[np.ndarray], durations: list[float], spans: list[np.ndarray], num_clips: int):
    """Videos told one after another, as one video of `num_clips` clips: each part L2-normalised and
    resampled to a share of the clips proportional to its duration (at least one), its spans moved and
    scaled to the clips it got. Returns the clips [num_clips, Dv], the spans [sum Ns, 2] in seconds of
    the story, and its duration. No clip mixes two videos, whatever their clip rates.
    """
    total, parts = float(sum(durations)), len(videos)
    bounds = [0]  # part k holds clips bounds[k]:bounds[k + 1], the rounded ends of the durations so far
    for k, end in enumerate(np.cumsum(durations) / total):
        bounds.append(min(max(round(num_clips * end), bounds[-1] + 1), num_clips - (parts - 1 - k)))
    clip = total / num_clips
    clips, moved = [], []
    for video, duration, part_spans, first, last in zip(videos, durations, spans, bounds[:-1], bounds[1:], strict=True):
        clips.append(resample_clips(l2_normalize(np.asarray(video, dtype=np.float32)), last - first))
        scale = (last - first) * clip / duration
        moved.append(first * clip + np.clip(part_spans, 0.0, duration) * scale)  # [Ns, 2]
    return np.concatenate(clips), np.concatenate(moved), total


class EpochSampler(torch.utils.data.Sampler):
    """Shuffled (index, epoch) keys for one epoch, from a generator seeded by (seed, epoch).

    `skip` leaves out the first keys, so a run resumed in the middle of an epoch continues
    with exactly the samples the interrupted run would have seen next.
    """

    def __init__(self, size: int, seed: int, epoch: int, shuffle: bool = True, skip: int = 0):
        self.size, self.seed, self.epoch, self.shuffle, self.skip = size, seed, epoch, shuffle, skip

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self):
        return iter([(index, self.epoch) for index in self._order()[self.skip :]])

    def __len__(self) -> int:
        return max(self.size - self.skip, 0)


def collate(items: list[dict]) -> Batch:
    """Pad a list of dataset items into a `Batch`."""
    batch_size = len(items)
    num_clips = max(item["video"].shape[0] for item in items)
    num_sentences = max(len(item["word_ids"]) for item in items)
    num_words = max(sum(len(s) for s in item["word_ids"]) for item in items)
    max_sentence_words = max(len(s) for item in items for s in item["word_ids"])

    video = torch.zeros(batch_size, num_clips, items[0]["video"].shape[1])
    video_mask = torch.zeros(batch_size, num_clips, dtype=torch.bool)
    words = torch.zeros(batch_size, num_words, dtype=torch.long)
    word_mask = torch.zeros(batch_size, num_words, dtype=torch.bool)
    word_sentence = torch.zeros(batch_size, num_words, dtype=torch.long)
    sentence_words = torch.zeros(batch_size, num_sentences, max_sentence_words, dtype=torch.long)
    sentence_word_mask = torch.zeros(batch_size, num_sentences, max_sentence_words, dtype=torch.bool)
    sentence_mask = torch.zeros(batch_size, num_sentences, dtype=torch.bool)
    spans = torch.zeros(batch_size, num_sentences, 2)
    for b, item in enumerate(items):
        clips = item["video"].shape[0]
        video[b, :clips] = item["video"]
        video_mask[b, :clips] = True
        position = 0
        for i, ids in enumerate(item["word_ids"]):
            count = len(ids)
            words[b, position : position + count] = torch.tensor(ids)
            word_mask[b, position : position + count] = True
            word_sentence[b, position : position + count] = i
            sentence_words[b, i, :count] = torch.arange(position, position + count)
            sentence_word_mask[b, i, :count] = True
            position += count
        sentence_mask[b, : len(item["word_ids"])] = True
        spans[b, : len(item["word_ids"])] = item["spans"]
    masked_spans = spans.masked_fill(~sentence_mask[..., None], math.nan)
    paragraph_span = torch.stack(
        [
            torch.nan_to_num(masked_spans[..., 0], nan=math.inf).amin(dim=1),
            torch.nan_to_num(masked_spans[..., 1], nan=-math.inf).amax(dim=1),
        ],
        dim=1,
    )
    return Batch(
        video=video,
        video_mask=video_mask,
        words=words,
        word_mask=word_mask,
        word_sentence=word_sentence,
        sentence_words=sentence_words,
        sentence_word_mask=sentence_word_mask,
        sentence_mask=sentence_mask,
        spans=spans,
        paragraph_span=paragraph_span,
        duration=torch.tensor([float(item["duration"]) for item in items]),
        meta=[item["meta"] for item in items],
    )


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
