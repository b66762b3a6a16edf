"""bin/extract: a folder (or list) of raw videos to a feature store, in parallel with Ray.

Ray decode tasks read the videos (`extract.video.decode_clips`) and stream their clips, a chunk
at a time, to an actor that keeps C3D loaded (one per GPU; on CPU one actor). The actor takes
two videos at once, so the next video is already being decoded while C3D works on the current
one; a lock keeps one video on the model at a time, and each decode task may run at most two
chunks ahead, so memory stays flat however many and however long the videos are. Features come
back to this process, which writes them (atomically) and the manifest line, so the output
folder needs to exist only here.

A rerun skips the videos the manifest records as done with the same settings and retries
failed ones. A video that fails is recorded with the decoder's message and reported at the
end; the exit code is 0 only when every video succeeded. Everything Ray runs is the plain
function `extract_video`, which `bin/ground` and the tests call without Ray.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from extract.c3d import ClipEncoder, file_identity, warn_random_c3d
from extract.errors import InputError
from extract.store import FeatureStore, ManifestRecord, video_id_for
from extract.video import ClipSettings, VideoInfo, decode_clips, list_videos, probe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExtractSettings:
    clip: ClipSettings = field(default_factory=ClipSettings)
    weights: str | None = None  # the converted Sports-1M c3d.pickle; None: random C3D
    layer: str = "fc6"
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 8  # 16 is as fast on CPU, but its peak memory is 0.4 GiB higher
    dtype: str = "float16"  # what the feature files hold
    pca: str | None = None  # the official ActivityNet PCA file (fc7 to 500-d, as the released features)
    pca_dims: int = 500

    def encoder(self) -> ClipEncoder:
        return ClipEncoder(
            self.weights, self.layer, self.device, self.precision, self.batch_size, pca=self.pca, pca_dims=self.pca_dims
        )

    def record(self, video_id: str, source: str, weights_identity: str) -> ManifestRecord:
        """A manifest record of these settings, "failed" until extraction fills it in."""
        clip = self.clip
        pca = f"{file_identity(self.pca)} to {self.pca_dims}" if self.pca else ""
        return ManifestRecord(
            video_id=video_id,
            source=source,
            status="failed",
            clip_len=clip.clip_len,
            stride=clip.stride,
            target_fps=clip.target_fps,
            layer=self.layer,
            weights=weights_identity,
            dtype=self.dtype,
            pca=pca,
        )


@dataclass
class ExtractConfig:
    """configs/extract.yaml: the defaults of bin/extract's flags, under the same names."""

    clip_len: int = 16
    stride: int = 16
    fps: float = 0.0
    layer: str = "fc6"
    batch_size: int = 8
    precision: str = "auto"
    device: str = "auto"
    weights: str = ""
    pca: str = ""
    pca_dims: int = 500
    object_store_mb: int = 1024


@dataclass
class Summary:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # video id -> reason
    clips: int = 0
    seconds: float = 0.0

    def report(self) -> str:
        rate = f", {self.clips / self.seconds:.1f} clips/s" if self.seconds and self.clips else ""
        lines = [
            f"extracted {len(self.done)}, skipped {len(self.skipped)} (done before), failed {len(self.failed)}{rate}"
        ]
        lines += [f"  failed {video}: {reason}" for video, reason in sorted(self.failed.items())]
        return "\n".join(lines)


def extract_video(
    path: str | os.PathLike,
    video_id: str,
    encode,
    settings: ExtractSettings,
    weights_identity: str,
    decode: Callable[[VideoInfo], Iterable[np.ndarray]] | None = None,
) -> tuple[np.ndarray | None, ManifestRecord]:
    """One video to its features and manifest record; a failure becomes a "failed" record.

    `encode` maps uint8 clips to features; `decode(info)` gives the clips a chunk at a time
    (a Ray decode task's stream), once the video has been probed; by default they are decoded here.
    """
    started = time.time()
    record = settings.record(video_id, str(Path(path).resolve()), weights_identity)
    try:
        info = probe(path)
        record.fps, record.num_frames, record.duration = info.fps, info.num_frames, info.duration
        chunks = decode(info) if decode is not None else decode_clips(path, settings.clip, info)
        # Each chunk's features are cast at once: they are all that grows with the video's length.
        features = np.concatenate([encode(chunk).astype(settings.dtype) for chunk in chunks])
        if not np.isfinite(features).all():
            raise ValueError("C3D produced non-finite features (NaN or Inf)")
    except Exception as error:  # one bad video must not stop the others: recorded and reported at the end
        record.error = str(error).strip().splitlines()[0][:500] if str(error).strip() else type(error).__name__
        record.seconds = round(time.time() - started, 2)
        return None, record
    record.status, record.clips, record.dim = "ok", len(features), features.shape[1]
    record.seconds = round(time.time() - started, 2)
    return features, record


def plan(
    videos: list[Path], store: FeatureStore, settings: ExtractSettings, weights_identity: str
) -> tuple[list, list]:
    """Which videos to extract now, and which the manifest records as done with these settings."""
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
    wanted = _settings(settings, weights_identity)
    todo, skipped = [], []
    for video_id, path in by_id.items():
        record = records.get(video_id)
        if record is not None and record.source != str(path.resolve()) and video_id in store:
            raise InputError(f"{path}: the store {store.path} already holds {video_id}.npy from {record.source}")
        if record is not None and record.status == "ok" and video_id in store:
            old = {k: v for k, v in record.settings().items() if k != "dim"}
            if old != wanted:
                changed = ", ".join(f"{k} {old[k]} -> {wanted[k]}" for k in wanted if old[k] != wanted[k])
                raise InputError(
                    f"{store.path}: holds features extracted with other settings ({changed}); use another --out"
                )
            skipped.append(video_id)
        else:
            todo.append((path, video_id))
    return todo, skipped


def _settings(settings: ExtractSettings, weights_identity: str) -> dict:
    return {k: v for k, v in settings.record("", "", weights_identity).settings().items() if k != "dim"}


def run_extraction(
    videos: str | os.PathLike,
    out: str | os.PathLike,
    settings: ExtractSettings,
    workers: int | None = None,
    address: str | None = None,
    object_store_mb: int = 1024,
    use_ray: bool = True,
    progress: bool = True,
) -> Summary:
    """bin/extract: extract every video of `videos` into the store `out`; see the module docstring."""
    paths = list_videos(videos)
    if not paths:
        raise InputError(f"{videos}: no video files found (suffixes .mp4 .mkv .webm .avi .mov ...)")
    store = FeatureStore(out, create=True)
    if settings.weights and not Path(settings.weights).is_file():
        raise InputError(f"{settings.weights}: C3D weights not found")
    if settings.pca and not Path(settings.pca).is_file():
        raise InputError(f"{settings.pca}: PCA file not found")
    weights_identity = file_identity(Path(settings.weights)) if settings.weights else "random"
    if not settings.weights:
        warn_random_c3d()
    todo, skipped = plan(paths, store, settings, weights_identity)
    summary = Summary(skipped=skipped)
    log.info(f"{len(paths)} videos: {len(todo)} to extract, {len(skipped)} done before; features to {store.path}")
    if not todo:
        return summary
    started = time.time()
    results = (
        _with_ray(todo, settings, weights_identity, workers, address, object_store_mb)
        if use_ray
        else _in_process(todo, settings, weights_identity)
    )
    bar = tqdm(total=len(todo), unit="video", desc="extracting", disable=not progress)
    try:
        for features, record in results:
            if features is not None:
                store.write(record.video_id, features)
                summary.done.append(record.video_id)
                summary.clips += record.clips
            else:
                summary.failed[record.video_id] = record.error
            store.append(record)
            summary.seconds = time.time() - started
            bar.set_postfix(clips_per_s=f"{summary.clips / max(summary.seconds, 1e-9):.1f}", failed=len(summary.failed))
            bar.update()
    finally:
        bar.close()
        results.close()
    return summary


def extract_command(
    videos: str,
    out: str,
    config_path: str | None,
    flags: dict,
    workers: int | None = None,
    address: str | None = None,
    use_ray: bool = True,
    progress: bool = True,
) -> int:
    """bin/extract: settings from configs/extract.yaml (if given) and the flags that were set;
    prints the summary; exit code 0 only when every video succeeded."""
    from hscnet.config import dataclass_from_yaml

    config = dataclass_from_yaml(ExtractConfig, config_path) if config_path else ExtractConfig()
    config = replace(config, **{name: value for name, value in flags.items() if value is not None})
    settings = ExtractSettings(
        clip=ClipSettings(clip_len=config.clip_len, stride=config.stride, target_fps=config.fps),
        weights=config.weights or None,
        layer=config.layer,
        device=config.device,
        precision=config.precision,
        batch_size=config.batch_size,
        pca=config.pca or None,
        pca_dims=config.pca_dims,
    )
    summary = run_extraction(videos, out, settings, workers, address, config.object_store_mb, use_ray, progress)
    print(summary.report())
    return 1 if summary.failed else 0


def _in_process(todo, settings: ExtractSettings, weights_identity: str) -> Iterator:
    encoder = settings.encoder()
    log.info(encoder.describe())
    for path, video_id in todo:
        yield extract_video(path, video_id, encoder.encode, settings, weights_identity)


def _with_ray(
    todo,
    settings: ExtractSettings,
    weights_identity: str,
    workers: int | None,
    address: str | None,
    object_store_mb: int,
) -> Iterator:
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(
                num_cpus=workers or os.cpu_count(),
                object_store_memory=object_store_mb * 1024**2,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
    try:
        gpus = int(ray.cluster_resources().get("GPU", 0)) if settings.device != "cpu" else 0
        cpus = os.cpu_count() or 1
        # Decoding costs about an eighth of C3D's time per clip, so the CPU actor's model keeps every core.
        threads = max(1, cpus // max(gpus, 1))
        actor_class = _actor_class(ray)
        actors = [
            actor_class.options(num_gpus=1 if gpus else 0).remote(settings, weights_identity, threads)
            for _ in range(max(gpus, 1))
        ]
        log.info(ray.get(actors[0].describe.remote()))
        pending: dict = {}
        queue = iter(todo)

        def submit(actor) -> None:
            item = next(queue, None)
            if item is not None:
                pending[actor.extract.remote(str(item[0]), item[1])] = actor

        for actor in actors:
            for _ in range(2):  # two videos per actor: one on the model, the next one decoding
                submit(actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            submit(actor)
            features, record = ray.get(done[0])
            yield features, ManifestRecord(**record)
    finally:
        if started_here:
            ray.shutdown()


def _actor_class(ray):
    """The C3D actor, defined on first use so that importing this module does not import Ray."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def decode_task(path: str, clip: ClipSettings, info: VideoInfo):
        """Ray streaming task: the video's clips, a chunk at a time."""
        yield from decode_clips(path, clip, info)

    @ray.remote(num_cpus=0, max_concurrency=2)
    class C3DWorker:
        def __init__(self, settings: ExtractSettings, weights_identity: str, threads: int):
            import torch

            torch.set_num_threads(threads)
            self.settings, self.weights_identity = settings, weights_identity
            self.encoder = settings.encoder()
            self.model_lock = threading.Lock()
            self.node = ray.get_runtime_context().get_node_id()

        def describe(self) -> str:
            return self.encoder.describe()

        def encode(self, clips: np.ndarray) -> np.ndarray:
            with self.model_lock:
                return self.encoder.encode(clips)

        def extract(self, path: str, video_id: str):
            stream = None

            def decode(info: VideoInfo) -> Iterator[np.ndarray]:
                nonlocal stream
                stream = decode_task.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(self.node, soft=True),
                    _generator_backpressure_num_objects=2,
                ).remote(path, self.settings.clip, info)  # the probe's info: MKV and WebM are not read twice
                for ref in stream:
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        raise (error.cause or error) from None  # the decoder's own message, not Ray's wrapper

            features, record = extract_video(path, video_id, self.encode, self.settings, self.weights_identity, decode)
            if features is None and stream is not None:
                ray.cancel(stream)
            return features, asdict(record)

    return C3DWorker
