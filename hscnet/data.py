"""Data stage: annotation files and feature files to model batches.

Annotations: ActivityNet Captions JSON (seconds), TACoS JSON (frame indices + fps), the VPG
paragraph `.npy` files of DepNet/PRVG (pickled object arrays, read with a restricted
unpickler) and our JSONL. Every reader returns `Paragraph`s with times in seconds.

Features: our feature store (one `<video>.npy` per video, memory-mapped on access) or the
standard HDF5 files, opened lazily. A video's clips are L2-normalised per clip and resampled
to the config's fixed count (average within bins, as PRVG/DepNet do).
"""

from __future__ import annotations

import codecs
import io
import json
import logging
import math
import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from extract.errors import InputError
from extract.store import FeatureStore
from extract.text import Vocabulary, tokenize

log = logging.getLogger(__name__)

FORMATS = ("activitynet", "tacos", "vpg-npy", "jsonl")

# Annotation times are rounded to 10 ms and durations are floats: an end that passes the
# duration by less than this is float noise, clipped without being counted as an error.
_TIME_TOLERANCE = 1e-6


@dataclass
class Paragraph:
    """One paragraph query of one video; sentences in annotation order, times in seconds."""

    video: str
    duration: float
    sentences: list[str]
    timestamps: list[tuple[float, float]]


@dataclass
class CleaningReport:
    """What a reader changed in an annotation file, so nothing is dropped silently."""

    path: str
    paragraphs: int = 0
    sentences: int = 0
    dropped_empty_span: int = 0  # start >= end (after clipping to the video)
    clipped_past_end: int = 0  # end after the video's duration, clipped to it

    def summary(self) -> str:
        text = f"{self.path}: {self.paragraphs} paragraphs, {self.sentences} sentences"
        if self.dropped_empty_span:
            text += f"; dropped {self.dropped_empty_span} timestamps with start >= end"
        if self.clipped_past_end:
            text += f"; clipped {self.clipped_past_end} timestamps that end after the video"
        return text


# ----------------------------------------------------------------------------------------
# Annotation readers
# ----------------------------------------------------------------------------------------


def detect_format(path: str | os.PathLike) -> str:
    """Name the annotation format of a file from its suffix and, for JSON, its first entry."""
    path = Path(path)
    if path.suffix == ".npy":
        return "vpg-npy"
    if path.suffix == ".jsonl":
        return "jsonl"
    if path.suffix == ".json":
        data = _read_json(path)
        first = next(iter(data.values()), None) if isinstance(data, dict) else None
        if isinstance(first, dict) and "fps" in first:
            return "tacos"
        if isinstance(first, dict) and "duration" in first:
            return "activitynet"
    raise InputError(f"{path}: cannot tell the annotation format; name one of {', '.join(FORMATS)}")


def load_paragraphs(path: str | os.PathLike, format: str = "auto") -> list[Paragraph]:
    """Read an annotation file; what was clipped or dropped is logged once."""
    paragraphs, report = read_annotations(path, format)
    log.info(report.summary())
    return paragraphs


def read_annotations(path: str | os.PathLike, format: str = "auto") -> tuple[list[Paragraph], CleaningReport]:
    """Read an annotation file into paragraphs (seconds), with a report of what was cleaned.

    Timestamps that end after the video are clipped to its duration; timestamps with
    start >= end are dropped, and so is a paragraph left without sentences.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: annotation file not found")
    if format == "auto":
        format = detect_format(path)
    readers = {"activitynet": _read_activitynet, "tacos": _read_tacos, "vpg-npy": _read_vpg_npy, "jsonl": _read_jsonl}
    if format not in readers:
        raise InputError(f"{path}: unknown annotation format {format!r}; use one of {', '.join(FORMATS)}")
    try:
        raw = readers[format](path)
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"{path}: not a valid {format} annotation file ({type(error).__name__}: {error})") from error
    return _clean(raw, str(path))


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error})") from error


def _read_activitynet(path: Path) -> list[Paragraph]:
    """`{"v_<id>": {"duration": s, "timestamps": [[s, e], ...], "sentences": [...]}}`."""
    return [
        Paragraph(
            video,
            float(entry["duration"]),
            list(entry["sentences"]),
            [tuple(map(float, t)) for t in entry["timestamps"]],
        )
        for video, entry in _read_json(path).items()
    ]


def _read_tacos(path: Path) -> list[Paragraph]:
    """`{"sXX-dYY.avi": {"timestamps": [[f0, f1], ...] (frames), "sentences", "fps", "num_frames"}}`.

    One paragraph per video holding all its annotated sentences; the VPG protocol trains and
    tests on the paragraph files instead (`*_paragraphs.npy`).
    """
    paragraphs = []
    for video, entry in _read_json(path).items():
        fps = float(entry["fps"])
        stamps = [(float(f0) / fps, float(f1) / fps) for f0, f1 in entry["timestamps"]]
        paragraphs.append(Paragraph(video, float(entry["num_frames"]) / fps, list(entry["sentences"]), stamps))
    return paragraphs


def _read_jsonl(path: Path) -> list[Paragraph]:
    """Our format: one paragraph a line, `{"video", "duration", "sentences", "timestamps"}`."""
    paragraphs = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as error:
                raise InputError(f"{path}:{number}: not valid JSON ({error})") from error
            paragraphs.append(_paragraph_from_dict(entry))
    return paragraphs


def _paragraph_from_dict(entry: dict) -> Paragraph:
    return Paragraph(
        str(entry["video"]),
        float(entry["duration"]),
        [str(s) for s in entry["sentences"]],
        [tuple(map(float, t)) for t in entry["timestamps"]],
    )


def _read_vpg_npy(path: Path) -> list[Paragraph]:
    """The DepNet/PRVG paragraph files: an object array of `{video, duration, sentences, timestamps}`."""
    return [_paragraph_from_dict(entry) for entry in load_object_npy(path)]


def _clean(raw: list[Paragraph], path: str) -> tuple[list[Paragraph], CleaningReport]:
    report = CleaningReport(path)
    paragraphs = []
    for paragraph in raw:
        if len(paragraph.sentences) != len(paragraph.timestamps):
            counts = f"{len(paragraph.sentences)} sentences but {len(paragraph.timestamps)} timestamps"
            raise InputError(f"{path}: video {paragraph.video} has {counts}")
        sentences, stamps = [], []
        for sentence, (start, end) in zip(paragraph.sentences, paragraph.timestamps, strict=True):
            if end > paragraph.duration:
                report.clipped_past_end += end > paragraph.duration + _TIME_TOLERANCE
                end = paragraph.duration
            start = max(start, 0.0)
            if start >= end:
                report.dropped_empty_span += 1
                continue
            sentences.append(sentence)
            stamps.append((start, end))
        if sentences:
            paragraphs.append(Paragraph(paragraph.video, paragraph.duration, sentences, stamps))
            report.paragraphs += 1
            report.sentences += len(sentences)
    return paragraphs, report


# ----------------------------------------------------------------------------------------
# Restricted unpickling of NumPy object arrays
# ----------------------------------------------------------------------------------------


def _latin1_bytes(text: str, encoding: str = "latin1") -> bytes:
    # Protocol-2 pickles store an array's raw bytes as _codecs.encode(text, "latin1").
    if codecs.lookup(encoding).name != "iso8859-1":
        raise pickle.UnpicklingError(f"refused: _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays of plain Python values and refuses every other global."""

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            return np.ndarray.__reduce__(np.zeros(0))[0]  # NumPy's own _reconstruct, whatever its module
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) == ("_codecs", "encode"):
            return _latin1_bytes
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: only NumPy arrays of plain values are allowed")


def load_object_npy(path: str | os.PathLike) -> np.ndarray:
    """`np.load` for a pickled object array, without running any code the file asks for."""
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            version = np.lib.format.read_magic(handle)
            header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = header(handle)
        except ValueError as error:
            raise InputError(f"{path}: not a NumPy .npy file ({error})") from error
        if dtype != np.dtype(object):
            handle.seek(0)
            return np.load(handle, allow_pickle=False)
        try:
            array = _ArrayOnlyUnpickler(io.BufferedReader(handle)).load()
        except pickle.UnpicklingError as error:
            raise InputError(f"{path}: {error}") from error
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise InputError(f"{path}: the pickled payload is not the array its header describes")
    return array


# ----------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------


class HDF5Features:
    """The standard released feature files, opened lazily in each process that reads them.

    `sub_activitynet_v1-3.c3d.hdf5` keeps a video's clips at `f[vid]["c3d_features"]`,
    `tall_c3d_features.hdf5` (TACoS) at `f[vid]`; both layouts are read.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: feature file not found")
        self._handle = None
        self._pid = None
        with self._open() as f:
            self._ids = set(f.keys())
        self.settings: dict | None = None  # released features carry no extraction settings

    def _open(self):
        import h5py

        try:
            return h5py.File(self.path, "r")
        except OSError as error:
            raise InputError(f"{self.path}: not a readable HDF5 file ({error})") from error

    def _file(self):
        if self._handle is None or self._pid != os.getpid():  # h5py handles do not survive fork
            self._handle, self._pid = self._open(), os.getpid()
        return self._handle

    def __contains__(self, video: str) -> bool:
        return video in self._ids

    def ids(self) -> set[str]:
        return set(self._ids)

    def where(self, video: str) -> str:
        return f"{self.path}[{video}]"

    def read(self, video: str) -> np.ndarray:
        node = self._file()[video]
        if not hasattr(node, "shape"):  # a group: the ActivityNet layout
            node = node["c3d_features"]
        return node[()]

    def __getstate__(self):
        return {**self.__dict__, "_handle": None, "_pid": None}


def open_features(path: str | os.PathLike) -> FeatureStore | HDF5Features:
    """A feature store folder or a released HDF5 file."""
    path = Path(path)
    if path.is_dir():
        return FeatureStore(path)
    if path.suffix in {".hdf5", ".h5"}:
        return HDF5Features(path)
    if not path.exists():
        raise InputError(f"{path}: feature store not found")
    raise InputError(f"{path}: not a feature store folder nor an .hdf5/.h5 feature file")


def l2_normalize(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-8)


def resample_clips(features: np.ndarray, num_clips: int) -> np.ndarray:
    """[T, D] clips to [num_clips, D]: mean within equal bins, or interpolation when T < num_clips."""
    features = np.asarray(features, dtype=np.float32)
    total = features.shape[0]
    if total == 0:
        raise ValueError("a video with no clips cannot be resampled")
    if total >= num_clips:
        edges = np.linspace(0, total, num_clips + 1).round().astype(int)
        starts = edges[:-1]
        ends = np.maximum(edges[1:], starts + 1)
        cumulative = np.concatenate(
            [np.zeros((1, features.shape[1]), np.float64), np.cumsum(features, axis=0, dtype=np.float64)]
        )
        return ((cumulative[ends] - cumulative[starts]) / (ends - starts)[:, None]).astype(np.float32)
    positions = np.clip((np.arange(num_clips) + 0.5) * total / num_clips - 0.5, 0, total - 1)
    low = np.floor(positions).astype(int)
    high = np.minimum(low + 1, total - 1)
    weight = (positions - low)[:, None].astype(np.float32)
    return (1 - weight) * features[low] + weight * features[high]


def prepare_video(features: np.ndarray, num_clips: int) -> np.ndarray:
    """Per-clip L2 normalisation, then resampling to the model's clip count (PRVG's order)."""
    return resample_clips(l2_normalize(np.asarray(features, dtype=np.float32)), num_clips)


# ----------------------------------------------------------------------------------------
# Dataset and batches
# ----------------------------------------------------------------------------------------


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
        return "; ".join(parts)


def tokenize_paragraphs(paragraphs: Sequence[Paragraph]) -> list[list[list[str]]]:
    """Words of every sentence of every paragraph (annotation sentences are never re-split)."""
    return [[tokenize(sentence) for sentence in paragraph.sentences] for paragraph in paragraphs]


class GroundingDataset(torch.utils.data.Dataset):
    """Paragraphs with their video features, as items for `collate`.

    Training (`max_sentences` set) samples between one and that many sentences of a paragraph,
    sorted by start time, with a generator seeded by (seed, epoch, index) so that an epoch is the same
    whatever the worker that loads it and a resumed run sees the same samples. Evaluation
    (`max_sentences=None`) keeps every sentence in annotation order.
    Index with an int, or with (index, epoch) from `EpochSampler`.
    """

    def __init__(
        self,
        paragraphs: Sequence[Paragraph],
        features,
        vocab: Vocabulary,
        num_clips: int,
        feature_dim: int,
        max_words: int,
        max_sentences: int | None = None,
        seed: int = 0,
        missing_features: str = "error",
        source: str = "annotations",
        words: list[list[list[str]]] | None = None,
    ):
        self.features = features
        self.num_clips = num_clips
        self.feature_dim = feature_dim
        self.max_sentences = max_sentences
        self.seed = seed
        self.report = DatasetReport()
        words = words if words is not None else tokenize_paragraphs(paragraphs)

        missing = [p.video for p in paragraphs if p.video not in features]
        if missing and missing_features != "skip":
            unique = list(dict.fromkeys(missing))
            raise InputError(
                f"{source}: {len(unique)} of {len({p.video for p in paragraphs})} videos have no features in "
                f"{getattr(features, 'path', features)} (first: {', '.join(unique[:5])}); "
                "set data.missing_features=skip to leave them out"
            )
        self.report.skipped_videos = missing

        self.items: list[_Item] = []
        for paragraph, paragraph_words in zip(paragraphs, words, strict=True):
            if paragraph.video not in features:
                continue
            kept = [
                (t, w, s)
                for t, w, s in zip(paragraph.sentences, paragraph_words, paragraph.timestamps, strict=True)
                if w
            ]
            self.report.dropped_wordless_sentences += len(paragraph.sentences) - len(kept)
            if not kept:
                continue
            truncated = [w[:max_words] for _, w, _ in kept]
            self.report.truncated_sentences += sum(len(w) > max_words for _, w, _ in kept)
            self.items.append(
                _Item(
                    video=paragraph.video,
                    duration=paragraph.duration,
                    texts=[t for t, _, _ in kept],
                    words=truncated,
                    word_ids=[vocab.encode(w) for w in truncated],
                    spans=np.array([s for _, _, s in kept], dtype=np.float64),
                )
            )
        if not self.items:
            raise InputError(f"{source}: no paragraph left with both features and words")
        summary = self.report.summary(max_words)
        if summary:
            log.info(f"{source}: {summary}")
        self._check_dimension(self.items[0].video)

    def _check_dimension(self, video: str, features: np.ndarray | None = None) -> np.ndarray:
        features = self.features.read(video) if features is None else features
        if features.ndim != 2 or features.shape[1] != self.feature_dim or features.shape[0] == 0:
            raise InputError(
                f"{self.features.where(video)}: features of shape {tuple(features.shape)}, "
                f"expected [clips, {self.feature_dim}] (data.feature_dim)"
            )
        return features

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        item = self.items[index]
        order = np.arange(len(item.texts))
        if self.max_sentences is not None:
            # As the VPG peers train (PRVG): a count drawn from 1..min(max_sentences, Ns),
            # then that many sentences drawn without replacement, kept in temporal order.
            rng = np.random.default_rng((self.seed, epoch, index))
            count = int(rng.integers(1, min(self.max_sentences, len(order)) + 1))
            order = rng.choice(order, count, replace=False)
            order = order[np.lexsort((item.spans[order, 1], item.spans[order, 0]))]
        video = self._check_dimension(item.video, self.features.read(item.video))
        spans = np.clip(item.spans[order] / item.duration, 0.0, 1.0)
        return {
            "video": torch.from_numpy(prepare_video(video, self.num_clips)),
            "word_ids": [item.word_ids[i] for i in order],
            "spans": torch.from_numpy(spans.astype(np.float32)),
            "duration": item.duration,
            "meta": {
                "video": item.video,
                "duration": item.duration,
                "sentence_index": order.tolist(),
                "texts": [item.texts[i] for i in order],
                "timestamps": item.spans[order].tolist(),
                "words": [item.words[i] for i in order],
            },
        }


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
