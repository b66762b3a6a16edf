"""The extraction stage (bin/extract): a folder (or list) of raw videos to a feature store.

This module plans and writes: which videos a store still lacks (`plan`), and each video's features
written atomically, then its manifest line, as results come in. The results come from Ray workers
over one machine or a cluster (`pipeline/ray_workers.py`) or, with `use_ray=False`, from this
process, one video after another; both run the plain function `hscnet.extract.extractor.extract_video`.
A rerun skips the videos the manifest records as done (the store holds one feature spec) and
retries failed ones. A video that fails is recorded with the decoder's message and reported at the
end; the exit code is 0 only when every video succeeded. This module imports neither torch nor Ray:
bin/extract's own process only plans, schedules and writes.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from hscnet.common import atomic
from hscnet.common.errors import InputError, PipelineError
from hscnet.common.wording import count
from hscnet.extract.backbones import warn_random_weights
from hscnet.extract.extractor import extract_video
from hscnet.extract.imported import import_features
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.store import MANIFEST, FeatureStore, video_id_for
from hscnet.extract.video import list_videos

log = logging.getLogger(__name__)

# bin/ground --batch extracts a batch with this many distinct videos or more with Ray; fewer, in its process,
# since starting Ray costs seconds.
RAY_FROM_VIDEOS = 8


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # video id -> reason
    warnings: dict[str, str] = field(default_factory=dict)  # video id -> what was odd about a video extracted
    clips: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        rate = f", {self.clips / self.seconds:.1f} clips/s" if self.seconds and self.clips else ""
        lines = [
            f"extracted {len(self.done)}, skipped {len(self.skipped)} (done before), failed {len(self.failed)}{rate}"
        ]
        lines += [f"  failed {video}: {reason}" for video, reason in sorted(self.failed.items())]
        lines += [f"  warning {video}: {warning}" for video, warning in sorted(self.warnings.items())]
        return "\n".join(lines)


def plan(videos: list[Path], store: FeatureStore, spec: FeatureSpec) -> tuple[list, list]:
    """Which videos to extract now, and which the manifest records as done with this spec."""
    by_id: dict[str, Path] = {}
    for path in videos:
        video_id = video_id_for(path)
        if video_id in by_id:
            raise InputError(
                f"{by_id[video_id]} and {path} have the same name ({video_id}): rename one, "
                "since both would be stored as " + f"{video_id}.npy"
            )
        by_id[video_id] = path
    records = store.records()
    stored = store.spec()
    if stored is not None and stored != spec:
        changed = ", ".join(stored.differences(spec))
        raise InputError(f"{store.path}: holds features extracted with other settings ({changed}); use another --out")
    todo, skipped = [], []
    for video_id, path in by_id.items():
        record = records.get(video_id)
        if record is not None and record.source != str(path.resolve()) and video_id in store:
            raise InputError(f"{path}: the store {store.path} already holds {video_id}.npy from {record.source}")
        if record is not None and record.status == "ok" and video_id in store:
            skipped.append(video_id)
        else:
            todo.append((path, video_id))
    return todo, skipped


def run_extraction(
    videos: str | os.PathLike | list[Path],
    out: str | os.PathLike,
    settings: ExtractSettings,
    *,
    workers: int | None = None,
    address: str | None = None,
    use_ray: bool = True,
    progress: bool = True,
) -> Summary:
    """bin/extract: extract every video of `videos` (a folder, a list file, or a list of paths, as
    `bin/ground --batch` gives) into the store `out`; see the module docstring."""
    paths = videos if isinstance(videos, list) else list_videos(videos)
    if not paths:
        raise InputError(f"{videos}: no video files found (suffixes .mp4 .mkv .webm .avi .mov ...)")
    spec = settings.spec()
    Path(out).mkdir(parents=True, exist_ok=True)
    with atomic.only_writer(out):  # a second run into this store (another job, another node) is refused
        for repair in atomic.recover(out, logs=(MANIFEST,)):
            log.warning(f"{out}: {repair} (left by an interrupted run)")
        store = FeatureStore(out, create=True)
        if not settings.weights:
            warn_random_weights(settings.backbone)
        todo, skipped = plan(paths, store, spec)
        summary = Summary(skipped=skipped)
        log.info(
            f"{count(len(paths), 'video')}: {len(todo)} to extract, {len(skipped)} done before; features to "
            f"{store.path}"
        )
        if not todo:
            return summary
        if settings.decoder == "nvdec" and address is None:
            from hscnet.extract.nvdec import nvdec_missing  # torch: only when NVDEC is asked for

            if nvdec_missing():  # said once here; a cluster's workers each look at their own GPUs
                settings = replace(settings, decoder="pyav")
        if use_ray:
            from hscnet.pipeline.ray_workers import extract_with_ray

            results = extract_with_ray(todo, settings, spec, workers=workers, address=address)
        else:
            results = _in_process(todo, settings, spec)
        _write(results, store, summary, total=len(todo), progress=progress)
    return summary


def _write(results: Iterator, store: FeatureStore, summary: Summary, *, total: int, progress: bool) -> None:
    """Each video's features, then its manifest line, as its result comes; the summary kept up to date."""
    started = time.time()
    bar = tqdm(total=total, unit="video", desc="extracting", disable=not progress)
    try:
        for features, record in results:
            if features is not None:
                store.write(record.video_id, features)
                try:
                    store.append(record)
                except PipelineError:  # a full disk: the features without their line would be a stray file
                    (store.path / f"{record.video_id}.npy").unlink(missing_ok=True)
                    raise
                summary.done.append(record.video_id)
                summary.clips += record.clips
            else:
                summary.failed[record.video_id] = record.error
                store.append(record)
            if record.warning:
                summary.warnings[record.video_id] = record.warning
                log.warning(f"{record.source}: {record.warning}")
            summary.seconds = time.time() - started
            bar.set_postfix(clips_per_s=f"{summary.clips / max(summary.seconds, 1e-9):.1f}", failed=len(summary.failed))
            bar.update()
    finally:
        bar.close()
        results.close()


def extract_command(
    videos: str,
    out: str | None,
    config_path: str | None,
    flags: dict,
    *,
    workers: int | None = None,
    address: str | None = None,
    use_ray: bool = True,
    progress: bool = True,
) -> int:
    """bin/extract: settings from configs/extract.yaml (if given) and the flags that were set;
    prints the summary; exit code 0 only when every video succeeded."""
    from hscnet.config import dataclass_from_yaml

    if out is None:
        out = Path("features")
        log.info(f"no --out given: the feature store is {out.resolve()}")
    settings = dataclass_from_yaml(ExtractSettings, config_path) if config_path else ExtractSettings()
    settings = replace(settings, **{name: value for name, value in flags.items() if value is not None})
    summary = run_extraction(videos, out, settings, workers=workers, address=address, use_ray=use_ray,
                             progress=progress)  # fmt: skip
    print(summary.report())
    return 1 if summary.failed else 0


def import_command(
    folder: str,
    out: str | None,
    *,
    label: str,
    transposed: bool = False,
    seconds_per_row: float | None = None,
    captions: str | None = None,
) -> int:
    """bin/extract --import: a folder of per-video .npy features made elsewhere into a feature store, with
    the seconds a row covers given or taken from the captions' durations."""
    from hscnet.annotations import read_annotations

    out = Path(out or "features")
    durations = None
    if captions is not None:
        paragraphs, _ = read_annotations(captions)
        durations = {paragraph.video: paragraph.duration for paragraph in paragraphs}
    if not Path(folder).is_dir():
        raise InputError(f"{folder}: folder of .npy feature files not found")
    made = not out.exists()
    store = FeatureStore(out, create=True)
    try:
        with atomic.only_writer(out):
            summary = import_features(folder, store, label=label, transposed=transposed,
                                      seconds_per_row=seconds_per_row, durations=durations)  # fmt: skip
    except InputError:
        if made and not any(out.iterdir()):
            out.rmdir()  # a refused import leaves no empty store behind
        raise
    print(
        f"imported {count(summary.imported, 'video')} ({count(summary.rows, 'row')}) into {out}: "
        f"{summary.spec.describe()}"
    )
    return 0


def _in_process(todo, settings: ExtractSettings, spec: FeatureSpec) -> Iterator:
    from hscnet.extract.encoders import build_encoder  # torch: only where a network runs

    encoder = build_encoder(settings)
    log.info(encoder.describe())
    for path, video_id in todo:
        features, record = extract_video(path, video_id, encoder.encode, spec, decoder=settings.decoder)
        record.node = socket.gethostname()
        yield features, record
