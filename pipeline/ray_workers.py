"""Ray's part of bin/extract: workers that keep a backbone loaded, decode tasks that feed them.

Ray decode tasks read the videos (`hscnet.extract.video.decode_clips`) and stream their clips, a chunk
at a time, to an actor that keeps the backbone loaded: one per GPU of the cluster, or on CPU
nodes one per node, pinned there and given that node's cores (less an eighth, what decoding
beside it takes) as forward passes at once (`pipeline/passes.py`); each video's decode task runs
on its actor's node, and its manifest line records the node in `node`. The actor takes one video
more than it runs passes, so the next video is already being decoded while the model works on
the others, and each decode task may run at most two chunks ahead, so memory stays flat however
many and however long the videos are. Features come back to the driver, which writes them, so the
output folder needs to exist only there.

A worker lost mid-run (its process or its node died) hands its videos in flight back to the
others; a video whose worker was lost three times, or that no worker is left to take, is recorded
as failed with that reason. Nothing of a lost video was written: features are written whole, by
the driver.
"""

from __future__ import annotations

import collections
import logging
import os
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from hscnet.common.memory import MALLOC_SETTINGS, children_keep_freed_memory
from hscnet.extract.extractor import extract_video
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.spec import FeatureSpec
from hscnet.extract.store import ManifestRecord
from hscnet.extract.video import VideoInfo, decode_clips
from hscnet.pipeline import ray_reaper
from hscnet.pipeline.passes import ForwardPasses, cpu_passes

log = logging.getLogger(__name__)


def extract_with_ray(
    todo: list[tuple[Path, str]],
    settings: ExtractSettings,
    spec: FeatureSpec,
    *,
    workers: int | None = None,
    address: str | None = None,
) -> Iterator[tuple[np.ndarray | None, ManifestRecord]]:
    """Each (path, video id) of `todo` to its features and manifest record, in the order they finish.
    Starts Ray on this machine (`workers` CPUs), or joins the cluster at `address`."""
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
                    address="local",  # a new Ray of its own, even where another runs (Ray would join that one)
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


def videos_in_flight(cpus: int, gpus: int) -> int:
    """How many videos one worker has going at once. On a CPU node one per forward pass and one more
    decoding, since C3D bounds it there. On a GPU node as many as its share of the node's cores can
    decode, one core each and one left to feed the GPU: there C3D in fp16 is far faster than one
    process decoding a 720p video (docs/benchmarks.md, "On a GPU")."""
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

            from hscnet.extract.encoders import build_encoder

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
            self.loading = loader.submit(build_encoder, settings)
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

            # NVDEC's frames stay on this worker's GPU, so it decodes them itself, a stream per video in flight.
            reader = None if self.decoder == "nvdec" else decode
            with self.passes.video():
                features, record = extract_video(path, video_id, self.encode, self.spec, reader, self.decoder)
            if features is None and stream is not None:
                ray.cancel(stream)
            record.node = self.node_name
            return features, record

    return EncoderWorker
