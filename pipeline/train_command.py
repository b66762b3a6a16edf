"""bin/train: from a config file, from a run to resume, or with no config from one's own data.

With no `--config`, the current folder is taken to hold one's own data, as the README's
three commands use it (`bin/extract --videos videos/`, then `bin/train`):
- captions: `--captions FILE`, else `captions.json` (ActivityNet Captions format) or
  `captions.jsonl` (ours), else `train`/`val`/`test` files of either format;
- features: `./features`, the store `bin/extract` writes by default; `--videos DIR` first
  extracts what the store lacks (the same resumable Ray stage as `bin/extract`).
One captions file is split by video into train/val/test (80/10/10, seed 0). The splits are
written into the run folder in our JSONL format, with each caption's video named as the store
names it (a file suffix such as TACoS's ".avi" dropped). The config starts from
`configs/own-small.yaml` (the demo's model and recipe) below 2000 training paragraphs and from
`configs/own-large.yaml` (the paper's) from there on; the store gives the feature size, the
videos' lengths the number of clips, the data size the epochs, and `key=value` overrides win.
The run goes to `./runs/<captions>-<time>`; the last line says how to ground with it.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from hscnet.annotations import Paragraph, read_annotations, write_jsonl
from hscnet.common.errors import InputError
from hscnet.common.paths import CONFIGS
from hscnet.config import load_config
from hscnet.extract.imported import is_imported
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.store import FeatureStore, video_id_for
from hscnet.extract.video import VIDEO_SUFFIXES, list_videos
from hscnet.pipeline.extraction import run_extraction
from hscnet.train import run as train_run
from hscnet.train import train

log = logging.getLogger(__name__)

LARGE_DATA = 2000  # training paragraphs from which the paper's model and recipe are the default
SPLIT = (0.8, 0.1, 0.1)
TARGET_STEPS = 3000  # the small recipe's training length, in steps (20 to 120 epochs)


def caption_video_id(name: str) -> str:
    """A caption's video as the feature store names it: "s13-d21.avi" -> "s13-d21", "v_QOlS" -> "v_QOlS"."""
    return video_id_for(name) if Path(name).suffix.lower() in VIDEO_SUFFIXES else video_id_for(name + ".mp4")


def find_captions(folder: Path, captions: str | None) -> dict[str, Path] | Path:
    """The captions file given, or found in `folder`: one file, or train/val/test files."""
    if captions:
        path = Path(captions)
        if not path.is_file():
            raise InputError(f"{path}: captions file not found")
        return path
    for name in ("captions.json", "captions.jsonl"):
        if (folder / name).is_file():
            return folder / name
    splits = {}
    for split, names in {"train": ["train"], "val": ["val", "val_1"], "test": ["test", "val_2"]}.items():
        found = [folder / f"{n}.{ext}" for n in names for ext in ("json", "jsonl") if (folder / f"{n}.{ext}").is_file()]
        if found:
            splits[split] = found[0]
    if "train" in splits:
        return splits
    raise InputError(
        f"{folder.resolve()}: no captions found (looked for captions.json, captions.jsonl and "
        "train/val/test .json or .jsonl files); give --captions FILE"
    )


def split_by_video(paragraphs: list[Paragraph], seed: int = 0) -> dict[str, list[Paragraph]]:
    """Train/val/test by video (a video's paragraphs stay together), seeded, at least one video each."""
    videos = sorted({p.video for p in paragraphs})
    if len(videos) < 3:
        raise InputError(f"{len(videos)} captioned videos: at least 3 are needed to train, validate and test")
    order = np.random.default_rng(seed).permutation(len(videos))
    val = max(1, round(len(videos) * SPLIT[1]))
    test = max(1, round(len(videos) * SPLIT[2]))
    split_of = {videos[i]: "val" for i in order[:val]} | {videos[i]: "test" for i in order[val : val + test]}
    splits: dict[str, list[Paragraph]] = {"train": [], "val": [], "test": []}
    for paragraph in paragraphs:
        splits[split_of.get(paragraph.video, "train")].append(paragraph)
    return splits


def _renamed(paragraphs: list[Paragraph]) -> list[Paragraph]:
    return [Paragraph(caption_video_id(p.video), p.duration, p.sentences, p.timestamps) for p in paragraphs]


def num_clips_for(clip_counts: list[int]) -> int:
    """The model's clip count: the videos' median, rounded up to a power of two, 32 to 256."""
    median = float(np.median(clip_counts)) if clip_counts else 32.0
    return int(min(256, max(32, 2 ** math.ceil(math.log2(max(median, 1.0))))))


def own_data_run(folder: Path, overrides: list[str], videos: str | None, captions: str | None, progress: bool) -> int:
    """bin/train with no --config: see the module docstring."""
    found = find_captions(folder, captions)
    store_path = folder / "features"
    if isinstance(found, Path):
        paragraphs, _ = read_annotations(found)
        splits = split_by_video(_renamed(paragraphs))
        name = found.stem
        log.info(f"{found}: {len(paragraphs)} paragraphs, split by video into "
                 + ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + " (seed 0)")  # fmt: skip
    else:
        splits = {split: _renamed(read_annotations(path)[0]) for split, path in found.items()}
        name = found["train"].parent.resolve().name or "captions"
        log.info("captions: " + ", ".join(f"{split} {path}" for split, path in found.items()))
    captioned = {p.video for paragraphs in splits.values() for p in paragraphs}

    if videos:
        files = list_videos(videos)
        present = {video_id_for(path) for path in files}
        absent = sorted(captioned - present)
        if absent:
            log.warning(f"{len(absent)} captioned videos are not in {videos}: {', '.join(absent[:10])}"
                        + (" ..." if len(absent) > 10 else ""))  # fmt: skip
        summary = run_extraction(videos, store_path, ExtractSettings(), progress=progress)
        log.info(summary.report())
    if not store_path.is_dir():
        raise InputError(
            f"{store_path.resolve()}: no feature store; run bin/extract --videos DIR, or bin/train --videos DIR"
        )
    store = FeatureStore(store_path)
    spec = store.spec()
    if spec is None:
        raise InputError(f"{store_path.resolve()}: the feature store holds no extracted video yet")
    records = store.records()
    failed = sorted(v for v in captioned if v in records and records[v].status != "ok")
    if failed:
        log.warning(f"{len(failed)} captioned videos failed to decode and are left out: {', '.join(failed[:10])}"
                    + (" ..." if len(failed) > 10 else ""))  # fmt: skip
    missing = sorted(v for v in captioned if v not in records)
    if missing:
        log.warning(f"{len(missing)} captioned videos have no features in {store_path} and are left out: "
                    + ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))  # fmt: skip
    usable = {split: [p for p in paragraphs if p.video in store] for split, paragraphs in splits.items()}
    if not usable["train"]:
        raise InputError(f"{store_path.resolve()}: none of the training captions' videos has features")

    run_dir = folder / "runs" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for split, paragraphs in splits.items():
        write_jsonl(run_dir / "captions" / f"{split}.jsonl", paragraphs)
    large = len(usable["train"]) >= LARGE_DATA
    base = CONFIGS / ("own-large.yaml" if large else "own-small.yaml")
    num_clips = num_clips_for([records[v].clips for v in captioned if v in store and v in records])
    batch = load_config(base).train.batch_size
    epochs = 20 if large else int(min(120, max(20, math.ceil(TARGET_STEPS / math.ceil(len(usable["train"]) / batch)))))
    data = [
        f"data.features={store_path}",
        *(f"data.{split}={run_dir / 'captions' / f'{split}.jsonl'}" for split in splits),
        f"data.feature_dim={spec.dim}",
        f"data.num_clips={num_clips}",
        f"train.epochs={epochs}",
        f"run_dir={run_dir}",
    ]
    config = load_config(base, [*data, *overrides])
    log.info(
        f"{len(usable['train'])} training paragraphs: {base.name} ("
        + ("the paper's model and recipe" if large else "the demo's smaller model and recipe")
        + f"), {config.data.feature_dim}-d features ({spec.describe()}), {config.data.num_clips} clips, "
        f"{config.train.epochs} epochs; run folder {run_dir}"
    )
    state = train(config, progress=progress)
    if state.interrupted:
        return 130
    checkpoint = run_dir / ("best.pt" if (run_dir / "best.pt").is_file() else "last.pt")
    if is_imported(spec):
        print(f"ground with it: bin/ground --features VIDEO.npy --duration S PARAGRAPH.txt --checkpoint {checkpoint}")
    else:
        print(f"ground a video with it: bin/ground VIDEO PARAGRAPH.txt --checkpoint {checkpoint}")
    return 0


def train_command(
    config: str | None,
    overrides: list[str],
    resume: str | None = None,
    videos: str | None = None,
    captions: str | None = None,
    progress: bool = True,
) -> int:
    """bin/train: from `--config` or `--resume`; with neither, one's own data in the current folder."""
    if config or resume:
        if videos or captions:
            raise InputError("--videos and --captions are for training on one's own data, without --config or --resume")
        return train_run(config, overrides, resume, progress=progress)
    return own_data_run(Path("."), overrides, videos, captions, progress)
