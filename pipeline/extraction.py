"""The extraction stage (bin/extract): a folder (or list) of raw videos to a feature store, in parallel with Ray.

Ray decode tasks read the videos (`extract.video.decode_clips`) and stream their clips, a chunk
at a time, to an actor that keeps the backbone loaded: one per GPU of the cluster, or on CPU
nodes one per node, pinned there and given that node's cores (less an eighth, what decoding
beside it takes) as two forward passes at once of half the threads each (`cpu_passes`); each
video's decode task runs on its actor's node, and its manifest line records the node in `node`.
The actor takes one video more than it runs passes, so the next video is already being decoded
while the model works on the others; at most as many chunks are on the model as it runs passes
(one on a GPU), a video alone takes every idle pass for its chunks (`ForwardPasses`: one video
runs on all of the cores), and each decode task may run at most two chunks ahead, so memory stays
flat however many and however long the videos are. Features come back to this process, which writes
them (atomically) and the manifest line, so the output folder needs to exist only here.

A worker lost mid-run (its process or its node died) hands its videos in flight back to the
others; a video whose worker was lost three times, or that no worker is left to take, is recorded
as failed with that reason. Nothing of a lost video was written: features are written here, whole.

A rerun skips the videos the manifest records as done (the store holds one feature spec) and
retries failed ones. A video that fails is recorded with the decoder's message and reported at the
end; the exit code is 0 only when every video succeeded. Everything Ray runs is the plain
function `extract_video`, which `bin/ground` and the tests call without Ray.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from common import atomic
from common.errors import InputError, PipelineError
from common.memory import MALLOC_SETTINGS, children_keep_freed_memory
from extract.backbones import warn_random_c3d
from extract.extractor import ExtractSettings, extract_video
from extract.spec import FeatureSpec
from extract.store import MANIFEST, FeatureStore, ManifestRecord, video_id_for
from extract.video import VideoInfo, decode_clips, list_videos
from pipeline import ray_reaper

log = logging.getLogger(__name__)


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
    for repair in atomic.recover(out, logs=(MANIFEST,)):
        log.warning(f"{out}: {repair} (left by an interrupted run)")
    store = FeatureStore(out, create=True)
    if not settings.weights and settings.backbone == "c3d":
        warn_random_c3d()
    todo, skipped = plan(paths, store, spec)
    summary = Summary(skipped=skipped)
    log.info(f"{len(paths)} videos: {len(todo)} to extract, {len(skipped)} done before; features to {store.path}")
    if not todo:
        return summary
    started = time.time()
    results = _with_ray(todo, settings, spec, workers, address) if use_ray else _in_process(todo, settings, spec)
    bar = tqdm(total=len(todo), unit="video", desc="extracting", disable=not progress)
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
            summary.seconds = time.time() - started
            bar.set_postfix(clips_per_s=f"{summary.clips / max(summary.seconds, 1e-9):.1f}", failed=len(summary.failed))
            bar.update()
    finally:
        bar.close()
        results.close()
    return summary


def extract_command(
    videos: str,
    out: str | None,
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

    if out is None:
        out = Path("features")
        log.info(f"no --out given: the feature store is {out.resolve()}")
    settings = dataclass_from_yaml(ExtractSettings, config_path) if config_path else ExtractSettings()
    settings = replace(settings, **{name: value for name, value in flags.items() if value is not None})
    summary = run_extraction(videos, out, settings, workers, address, use_ray, progress)
    print(summary.report())
    return 1 if summary.failed else 0


def _in_process(todo, settings: ExtractSettings, spec: FeatureSpec) -> Iterator:
    encoder = settings.encoder()
    log.info(encoder.describe())
    for path, video_id in todo:
        features, record = extract_video(path, video_id, encoder.encode, spec, decoder=settings.decoder)
        record.node = socket.gethostname()
        yield features, record


def _with_ray(todo, settings: ExtractSettings, spec: FeatureSpec, workers: int | None, address: str | None) -> Iterator:
    import ray

    errors = ray.exceptions
    worker_lost = (errors.RayActorError, errors.NodeDiedError, errors.WorkerCrashedError, errors.ObjectLostError)

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray_reaper.start()  # if this process is killed (kill -9), nothing of the Ray it starts stays behind
            with children_keep_freed_memory():  # Ray's processes, the workers among them
                ray.init(
                    num_cpus=workers or os.cpu_count(),
                    object_store_memory=settings.object_store_mb * 1024**2,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
    workers_keep_freed_memory = started_here and not address
    try:
        actors = _start_actors(ray, settings, spec, workers_keep_freed_memory)  # worker -> its videos at once
        queue = collections.deque(todo)
        pending: dict = {}  # object ref -> (actor, (path, video id))
        lost: collections.Counter = collections.Counter()  # video id -> workers lost while it ran

        def fill() -> None:
            for actor in actors:
                while queue and sum(owner is actor for owner, _ in pending.values()) < actors[actor]:
                    item = queue.popleft()
                    pending[actor.extract.remote(str(item[0]), item[1])] = (actor, item)

        fill()  # before the backbone is built: the first videos are decoded meanwhile
        try:
            described = ray.get(next(iter(actors)).describe.remote())
        except errors.RayTaskError as error:
            raise (error.cause or error) from None  # damaged weights: the InputError that names the file
        log.info(
            f"{described}; {len(actors)} worker(s) on {_alive_nodes(ray)} node(s), "
            f"videos at a time per worker: {', '.join(str(n) for n in sorted(set(actors.values())))}"
        )
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor, (path, video_id) = pending.pop(done[0])
            try:
                features, record = ray.get(done[0])
            except worker_lost as error:  # the worker or its node died: its videos go to the others
                if actor in actors:
                    del actors[actor]
                    log.warning(f"an extraction worker was lost ({type(error).__name__}); {len(actors)} left")
                lost[video_id] += 1
                if lost[video_id] >= MAX_WORKERS_LOST or not actors:
                    yield None, _lost_record(path, video_id, spec, settings.decoder, lost[video_id])
                else:
                    queue.appendleft((path, video_id))
                fill()
                continue
            fill()
            yield features, record
        for path, video_id in queue:  # no worker left to take them
            yield None, _lost_record(path, video_id, spec, settings.decoder, lost[video_id])
    finally:
        if started_here:
            ray.shutdown()


MAX_WORKERS_LOST = 3  # a video whose worker died this many times is recorded as failed, not tried again


def _lost_record(path, video_id: str, spec: FeatureSpec, decoder: str, times: int) -> ManifestRecord:
    reason = f"its extraction worker was lost {times} time(s) (node or process died)" if times else ""
    return ManifestRecord(
        video_id=video_id,
        source=str(Path(path).resolve()),
        status="failed",
        spec=spec,
        decoder=decoder,
        error=reason or "no extraction worker left (every node was lost)",
    )


def _alive_nodes(ray) -> int:
    return sum(node["Alive"] for node in ray.nodes())


def cpu_passes(cpus: int) -> tuple[int, int]:
    """How a CPU node's worker runs its backbone: (forward passes at once, torch threads each).

    The node's cores less an eighth (decoding's share), as two passes of half of them. On 2 cores
    (AMD EPYC Zen 5, bf16), C3D alone ran about as fast either way (two passes of one thread 8.50
    to 9.10 clips/s over three runs, one pass of two 7.90 to 9.25), but the whole pipeline ran
    4 % faster in two passes (10 copies of the Charades video, 3 pairs side by side: 40.8 against
    42.5 s): a decode task or one of Ray's processes taking a core then stalls one pass, not one
    of two threads that wait for each other at every layer.
    """
    if cpus < 2:
        return 1, 1
    return 2, max(1, (cpus - cpus // 8 + 1) // 2)


class ForwardPasses:
    """The forward passes a worker runs at once (`cpu_passes`; one on a GPU), each on its own thread.

    A chunk of clips runs on one pass; with fewer videos on the worker than passes (one video
    alone, or the last of many) it also takes the passes idle at that moment, which would otherwise
    leave half of a CPU node's cores unused. A 4-minute video, extracted alone on 2 cores, took
    16.9-18.3 s instead of 25.2-26.4, and 40 Charades videos 62.4-64.8 s as before (63.0-64.3;
    3 pairs each, the AMX Xeon). With as many videos as passes, each chunk keeps to one: taking
    an idle pass there too made those 40 videos 10 % slower (70.4-72.6 s against 62.8-66.3), since
    a chunk split in two waits for its slower half while the next video's chunk waits for both.
    The parts are whole batches of the encoder, so each clip's features are those one pass gives,
    bit for bit; the network holds no state, so passes may run it at once."""

    def __init__(self, count: int):
        self.count = count
        self.idle = threading.Semaphore(count)
        self.helpers = ThreadPoolExecutor(max_workers=count - 1, thread_name_prefix="pass") if count > 1 else None
        self.videos = 0  # on the worker now, between their first chunk and their last
        self.counting = threading.Lock()

    @contextlib.contextmanager
    def video(self) -> Iterator[None]:
        """While one video's chunks come, so that the passes are shared among the videos there are."""
        with self.counting:
            self.videos += 1
        try:
            yield
        finally:
            with self.counting:
                self.videos -= 1

    def run(self, encode, clips: np.ndarray, batch_size: int) -> np.ndarray:
        """`encode` ([n, ...] clips -> [n, dim] features, `batch_size` at a time) over `clips` [N, ...]."""
        batches = -(-len(clips) // batch_size)
        share = max(1, self.count // max(1, self.videos))
        self.idle.acquire()
        taken = 1
        while taken < min(share, batches) and self.idle.acquire(blocking=False):
            taken += 1
        try:
            cuts = [batch_size * (batches * part // taken) for part in range(1, taken)]
            parts = np.split(clips, cuts)  # `taken` parts of whole batches (the last may be short)
            helped = [self.helpers.submit(encode, part) for part in parts[1:]]
            return np.concatenate([encode(parts[0])] + [future.result() for future in helped])  # [N, dim]
        finally:
            for _ in range(taken):
                self.idle.release()


def videos_in_flight(cpus: int, gpus: int) -> int:
    """How many videos one worker has going at once. On a CPU node one per forward pass and one more
    decoding, since C3D bounds it there. On a GPU node as many as its share of the node's cores can
    decode, one core each and one left to feed the GPU: on an H200, C3D in fp16 ran 2290 clips/s
    while one process decoded a 720p H.264 video at about 10 clips/s (benchmarks/gpu_extract.py)."""
    return max(2, cpus // gpus - 1) if gpus else cpu_passes(cpus)[0] + 1


def _start_actors(ray, settings: ExtractSettings, spec: FeatureSpec, workers_keep_freed_memory: bool) -> dict:
    """One worker per GPU where the cluster has GPUs (and the device allows them), else one per node, each
    pinned to its node and given that node's CPUs, less an eighth for the decode tasks there, as
    `cpu_passes`. Returns each worker with the number of videos it runs at once (`videos_in_flight`).
    A CPU worker's glibc keeps freed memory from its start, for its pass threads too (common/memory.py):
    set where this process started Ray (`workers_keep_freed_memory`), else through its `runtime_env`."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_class = _actor_class(ray)
    nodes = [node for node in ray.nodes() if node["Alive"]]
    use_gpus = settings.device != "cpu" and any(node["Resources"].get("GPU", 0) for node in nodes)
    actors = {}
    for node in nodes:
        cpus = int(node["Resources"].get("CPU", 1)) or 1
        gpus = int(node["Resources"].get("GPU", 0)) if use_gpus else 0
        if use_gpus and not gpus:
            continue  # a CPU node of a GPU cluster: its cores would add little beside the GPUs
        place = NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
        for _ in range(max(gpus, 1)):
            passes, threads = (1, max(1, cpus // gpus)) if gpus else cpu_passes(cpus)
            if gpus:
                options = {"num_gpus": 1}
            else:
                options = {} if workers_keep_freed_memory else {"runtime_env": {"env_vars": MALLOC_SETTINGS}}
            videos = videos_in_flight(cpus, gpus)
            actor = actor_class.options(scheduling_strategy=place, max_concurrency=videos + 1, **options)
            actors[actor.remote(settings, spec, passes, threads)] = videos
    return actors


def _actor_class(ray):
    """The backbone's actor, defined on first use so that importing this module does not import Ray."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=1)
    def decode_task(path: str, spec: FeatureSpec, info: VideoInfo, decoder: str):
        """Ray streaming task: the video's clips, a chunk at a time."""
        yield from decode_clips(path, spec, info, decoder=decoder)

    @ray.remote(num_cpus=0)  # max_concurrency: videos_in_flight and one for describe, set where it starts
    class EncoderWorker:
        def __init__(self, settings: ExtractSettings, spec: FeatureSpec, passes: int, threads: int):
            import torch

            torch.set_num_threads(threads)  # per pass: each calling thread runs its own team of these
            self.spec, self.decoder = spec, settings.decoder
            self.passes = ForwardPasses(passes)
            self.node = ray.get_runtime_context().get_node_id()
            self.node_name = f"{socket.gethostname()}/{self.node[:12]}"  # hosts of a local test cluster share a name
            # The backbone is built in a thread of its own, so that an error in building it (a damaged weights
            # file) reaches the driver as itself through `describe`, not as Ray's ActorDiedError around a
            # 60-line traceback. The first videos are probed and decoded meanwhile, which on 2 cores saved no
            # measurable time (their start is CPU-bound); a warm-up batch of blank clips cost 1 s a run.
            loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="build-backbone")
            self.loading = loader.submit(settings.encoder)
            loader.shutdown(wait=False)

        def describe(self) -> str:
            """What runs where, once the backbone is built; the error of building it raised here."""
            import torch

            encoder = self.loading.result()
            kept = all(os.environ.get(name) == value for name, value in MALLOC_SETTINGS.items())
            memory = ", glibc keeping freed memory" if kept else ""
            threads = torch.get_num_threads()
            return f"{encoder.describe()}; {self.passes.count} pass(es) at once of {threads} thread(s){memory}"

        def encode(self, clips: np.ndarray) -> np.ndarray:
            encoder = self.loading.result()
            return self.passes.run(encoder.encode, clips, encoder.batch_size)

        def extract(self, path: str, video_id: str):
            stream = None

            def decode(info: VideoInfo) -> Iterator[np.ndarray]:
                nonlocal stream
                stream = decode_task.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(self.node, soft=True),
                    _generator_backpressure_num_objects=2,
                ).remote(path, self.spec, info, self.decoder)  # the probe's info: MKV and WebM are not read twice
                for ref in stream:
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayTaskError as error:
                        raise (error.cause or error) from None  # the decoder's own message, not Ray's wrapper

            with self.passes.video():
                features, record = extract_video(path, video_id, self.encode, self.spec, decode, self.decoder)
            if features is None and stream is not None:
                ray.cancel(stream)
            record.node = self.node_name
            return features, record

    return EncoderWorker
