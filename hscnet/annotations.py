"""Annotation files to paragraphs: ActivityNet Captions JSON (seconds), TACoS JSON (frame indices
+ fps), the VPG paragraph `.npy` files of DepNet/PRVG (pickled object arrays, read with a
restricted unpickler) and our JSONL. Every reader returns `Paragraph`s with times in seconds,
and reports what it cleaned.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hscnet.common import atomic
from hscnet.common.errors import InputError
from hscnet.restricted_pickle import load_object_npy

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


def write_jsonl(path: str | os.PathLike, paragraphs: list[Paragraph]) -> Path:
    """Paragraphs to our JSONL format (read back by `load_paragraphs`), written atomically."""
    lines = [
        json.dumps({"video": p.video, "duration": p.duration, "sentences": p.sentences, "timestamps": p.timestamps})
        for p in paragraphs
    ]
    atomic.write_text(path, "".join(line + "\n" for line in lines))
    return Path(path)


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
