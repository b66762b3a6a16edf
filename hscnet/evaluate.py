"""Evaluation as the VPG papers do it (bin/eval), beside the dataset-prior baseline (`prior.py`).

Every sentence of the split's paragraphs is grounded; R@m and mIoU are pooled over all
sentences (`metrics.py`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hscnet.annotations import load_paragraphs
from hscnet.checkpoint import load_model
from hscnet.common import atomic
from hscnet.common.devices import autocast_dtype, resolve_device
from hscnet.common.errors import InputError
from hscnet.common.wording import count
from hscnet.data import GroundingDataset, SampleSpec, make_loader
from hscnet.extract.store import FeatureStore, video_id_for
from hscnet.extract.video import list_videos
from hscnet.features import open_features
from hscnet.infer import READINGS, ground_paragraph
from hscnet.metrics import grounding_metrics
from hscnet.prior import prior_predictions
from hscnet.report import write_eval_pages
from hscnet.text import tokenize

log = logging.getLogger(__name__)


@torch.no_grad()
def predict(
    model,
    dataset: GroundingDataset,
    *,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None = None,
    num_workers: int = 0,
    progress: bool = True,
    desc: str = "evaluating",
) -> list[dict]:
    """Ground every paragraph of `dataset`: one dict per paragraph, times in seconds.

    `{"video", "duration", "sentences", "timestamps" (ground truth), "predicted"}`, sentences in
    annotation order, and for report pages "words" (each sentence's tokens as the model read them),
    "predicted_words" (their spans T~^W) and "predicted_paragraph" (T~^P), where the model has those
    decoders. Predicted spans are clipped to the video.
    """
    was_training = model.training
    model.eval()
    results = []
    loader = make_loader(dataset, batch_size, num_workers, device=device)
    for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            output = model(batch.to(device))
        spans = output.final.float().clamp(0.0, 1.0).cpu().numpy()  # [B, Ns, 2]
        words = output.word.float().clamp(0.0, 1.0).cpu().numpy() if output.word is not None else None  # [B, Ns, M, 2]
        paragraph = output.paragraph.float().clamp(0.0, 1.0).cpu().numpy() if output.paragraph is not None else None
        for b, meta in enumerate(batch.meta):
            count, duration = len(meta["texts"]), meta["duration"]
            entry = {
                "video": meta["video"],
                "duration": duration,
                "sentences": meta["texts"],
                "timestamps": meta["timestamps"],
                "predicted": (spans[b, :count] * duration).tolist(),
                "words": meta["words"],
            }
            if words is not None:
                entry["predicted_words"] = [
                    (words[b, k, : len(tokens)] * duration).tolist() for k, tokens in enumerate(meta["words"])
                ]
            if paragraph is not None:
                entry["predicted_paragraph"] = (paragraph[b] * duration).tolist()
            results.append(entry)
    model.train(was_training)
    return results


def predict_stories(trained, paragraphs, store, *, device: torch.device, progress: bool) -> list[dict]:
    """The entries of `predict` for paragraphs longer than the trained length, each read as one story."""
    entries = []
    for paragraph in tqdm(paragraphs, desc="long paragraphs", disable=not progress, leave=False):
        kept = [
            (text, span) for text, span in zip(paragraph.sentences, paragraph.timestamps, strict=True) if tokenize(text)
        ]
        result = ground_paragraph(trained, store.read(paragraph.video), paragraph.duration, [t for t, _ in kept],
                                  video=paragraph.video, device=device)  # fmt: skip
        found = result["sentences"]
        entries.append({
            "video": paragraph.video,
            "duration": paragraph.duration,
            "sentences": [s["text"] for s in found],
            "timestamps": [list(span) for _, span in kept],
            "predicted": [[s["start"], s["end"]] for s in found],
            "words": [[w["word"] for w in s["words"]] for s in found],
            "predicted_words": [[[w["start"], w["end"]] for w in s["words"]] for s in found],
            "predicted_paragraph": [result["paragraph"]["start"], result["paragraph"]["end"]],
        })  # fmt: skip
    return entries


def score(predictions: list[dict], thresholds: Sequence[float]) -> dict[str, float]:
    predicted = [span for p in predictions for span in p["predicted"]]
    truth = [span for p in predictions for span in p["timestamps"]]
    return grounding_metrics(np.asarray(predicted), np.asarray(truth), thresholds)


def report_results(predictions: list[dict]) -> list[tuple[dict, list[list[float]]]]:
    """The predictions of `predict` per video, in the layout of `bin/ground --json` (the chunks of a
    paragraph joined in order), each with its true spans: what `hscnet.report` draws."""
    by_video: dict[str, list[dict]] = {}
    for entry in predictions:
        by_video.setdefault(entry["video"], []).append(entry)
    reports = []
    for video, entries in by_video.items():
        sentences, truth, paragraph_spans = [], [], []
        for entry in entries:
            for k, (text, span) in enumerate(zip(entry["sentences"], entry["predicted"], strict=True)):
                tokens = entry["words"][k]
                word_spans = entry["predicted_words"][k] if "predicted_words" in entry else [span] * len(tokens)
                words = [
                    {"word": word, "start": round(ws[0], 3), "end": round(ws[1], 3)}
                    for word, ws in zip(tokens, word_spans, strict=True)
                ]
                sentences.append({"text": text, "start": round(span[0], 3), "end": round(span[1], 3), "words": words})
            truth += entry["timestamps"]
            paragraph_spans.append(
                entry.get("predicted_paragraph")
                or [min(s[0] for s in entry["predicted"]), max(s[1] for s in entry["predicted"])]
            )
        result = {
            "video": video,
            "duration": entries[0]["duration"],
            "paragraph": {
                "start": round(min(s for s, _ in paragraph_spans), 3),
                "end": round(max(e for _, e in paragraph_spans), 3),
            },
            "sentences": sentences,
            "unknown_words": [],
        }
        reports.append((result, truth))
    return reports


def video_files(store, videos: str | None) -> dict[str, Path]:
    """Where each evaluated video's file is: in the folder `videos` (by file stem), else where the feature
    store's manifest says it was extracted from (released HDF5 features name no files)."""
    if videos:
        return {video_id_for(path): path for path in list_videos(videos)}
    if isinstance(store, FeatureStore):
        return {video: Path(record.source) for video, record in store.records().items() if record.source}
    return {}


def results_table(rows: dict[str, dict[str, float]]) -> str:
    names = list(next(iter(rows.values())))
    width = max(len(name) for name in rows) + 2
    lines = [" " * width + "".join(f"{name:>9}" for name in names)]
    for label, metrics in rows.items():
        lines.append(f"{label:<{width}}" + "".join(f"{100 * metrics[name]:9.2f}" for name in names))
    return "\n".join(lines)


@dataclass(frozen=True)
class EvalOutputs:
    """What bin/eval writes besides its table; each is skipped when None."""

    json: str | None = None  # the metrics, as fractions
    predictions: str | None = None  # one JSON line per paragraph: true and predicted spans
    html_dir: str | None = None  # a report page per video and an index of them, the worst first
    videos: str | None = None  # with html_dir: the folder of the video files, else the store's sources


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    split: str = "test",
    *,
    annotations: str | None = None,
    features_path: str | None = None,
    outputs: EvalOutputs = EvalOutputs(),
    reading: str = "story",
    device: str = "auto",
    progress: bool = True,
) -> dict:
    """bin/eval: the paper's Table 1 row for a split, and the prior baseline's beside it, written as
    `outputs` asks (`hscnet.report` draws the pages). A file already cut into chunks of at most the
    trained length (ActivityNet val_2, TACoS) is read as the paper reads it; with `reading="story"` an
    uncut paragraph longer than that is grounded as one story (`hscnet.infer`), with "chunks" as the
    paper's protocol does."""
    if reading not in READINGS:
        raise InputError(f"unknown reading {reading!r}: use {' or '.join(READINGS)}")
    torch_device = resolve_device(device)
    trained = load_model(checkpoint, torch_device)
    config = trained.config
    if split not in {"train", "val", "test"}:
        raise InputError(f"unknown split {split!r}: use train, val or test")
    annotation_path = annotations or getattr(config.data, split)
    if not annotation_path:
        raise InputError(f"{checkpoint}: its config names no data.{split}; give --annotations")
    paragraphs = load_paragraphs(annotation_path, config.data.format if not annotations else "auto")
    store = open_features(features_path or config.data.features)
    stories = []
    if reading == "story":  # a paragraph longer than the trained length is one story; the others as the paper reads
        trained_length = config.data.max_sentences
        stories = [
            p for p in paragraphs if p.video in store and sum(map(bool, map(tokenize, p.sentences))) > trained_length
        ]
        paragraphs = [p for p in paragraphs if p not in stories]
    dataset = GroundingDataset(
        paragraphs,
        store,
        trained.vocab,
        SampleSpec.for_evaluation(config),
        missing_features=config.data.missing_features,
        source=str(annotation_path),
    )
    predictions = predict(
        trained.model,
        dataset,
        batch_size=config.eval.batch_size,
        device=torch_device,
        dtype=autocast_dtype(config.train.precision, torch_device),
        num_workers=config.data.num_workers,
        progress=progress,
    )
    predictions += predict_stories(trained, stories, store, device=torch_device, progress=progress)
    prior = trained.prior
    rows = {
        "HSCNet": score(predictions, config.eval.thresholds),
        "dataset prior": score(prior_predictions(prior, predictions), config.eval.thresholds),
    }
    sentences = sum(len(p["sentences"]) for p in predictions)
    print(f"{Path(annotation_path).name}: {count(len(predictions), 'paragraph')}, {count(sentences, 'sentence')} "
          f"({split} split)")  # fmt: skip
    how = (f"{count(len(stories), 'paragraph')} longer than the trained length read as one story, chunks placed "
           "by the model" if stories else "every paragraph as the paper reads it (longer ones in chunks over the "
           "whole video)")  # fmt: skip
    print(f"reading: {how}")
    print(results_table(rows))
    result = {
        "reading": {"rule": reading, "read_as_story": len(stories)},
        "checkpoint": str(checkpoint),
        "split": split,
        "annotations": str(annotation_path),
        "paragraphs": len(predictions),
        "sentences": sentences,
        "metrics": rows["HSCNet"],
        "prior": rows["dataset prior"],
    }
    if outputs.json:
        atomic.write_json(outputs.json, result)
    if outputs.predictions:
        atomic.write_text(outputs.predictions, "".join(json.dumps(p) + "\n" for p in predictions))
    if outputs.html_dir:
        html_dir = outputs.html_dir
        files = video_files(store, outputs.videos)
        reports = report_results(predictions)
        found = sum(result["video"] in files and files[result["video"]].is_file() for result, _ in reports)
        heading = f"{Path(checkpoint).parent.name}/{Path(checkpoint).name} on {Path(annotation_path).name} ({split})"
        facts = " · ".join(
            [count(sentences, "sentence")]
            + [f"{label} mIoU {100 * metrics['mIoU']:.2f}" for label, metrics in rows.items()]
        )
        index = write_eval_pages(reports, html_dir, files, heading, facts)
        print(f"report pages of {len(reports)} videos ({found} with their video) under {html_dir}: open {index}")
    return result
