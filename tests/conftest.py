"""Shared fixtures and helpers: the real data of ../shared/data, small feature stores, one Ray session,
solid-colour videos, a small demo world with a model trained on it, and proxy-feature training data.

`make test` runs the tests in two processes (pytest-xdist, `--dist loadscope`, scopes below), each of one
thread; the demo world is built once, by whichever process needs it first, into a folder both read."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock

from benchmarks.proxy_store import write_proxy_store
from hscnet.annotations import read_annotations, write_jsonl
from hscnet.extract.store import FeatureStore
from hscnet.pipeline import synthetic
from hscnet.pipeline.passes import cpu_passes

REPO = Path(__file__).resolve().parents[1]

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two test processes on two cores: one thread each, and in the commands they start, since two teams of
    # two OpenMP threads on two cores spin-wait on each other. Tests that need a Ray worker's thread count
    # still set it (threads_of_a_worker_pass).
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def shared_data_dir() -> Path:
    return Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real annotation files and video of ../shared/data (or $HSCNET_SHARED_DATA)."""
    path = shared_data_dir()
    if not (path / "activitynet" / "train.json").is_file():
        pytest.skip(f"real data not found at {path}: set HSCNET_SHARED_DATA to the shared/data folder")
    return path


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    np.random.seed(0)


def write_feature_store(folder: Path, videos: dict[str, int], dim: int, seed: int = 0) -> FeatureStore:
    """A feature store with random [clips, dim] features for each video (float16, as extracted)."""
    store = FeatureStore(folder, create=True)
    rng = np.random.default_rng(seed)
    for video, clips in videos.items():
        store.write(video, rng.standard_normal((clips, dim)).astype(np.float16))
    return store


@pytest.fixture(scope="session", autouse=True)
def _random_c3d_drawn_once():
    """Every C3D encoder built in this process without weights gets a copy of the random C3D that
    `load_c3d` drew first: drawing its 78M He-initialised weights takes seconds on a slow CPU, and the
    tests build dozens of encoders here. The copy holds the same weights, and the warning is said as
    `load_c3d` says it; weights files, other seeds, Ray workers and other processes draw as always."""
    from hscnet.extract import c3d

    draw = c3d.load_c3d
    drawn: dict[int, tuple] = {}

    def copy_of_the_first(weights, seed: int = 0):
        if weights:
            return draw(weights, seed)
        if seed not in drawn:
            drawn[seed] = draw(weights, seed)
        c3d.warn_random_weights("c3d", seed)
        model, identity = drawn[seed]
        return copy.deepcopy(model), identity

    patch = pytest.MonkeyPatch()
    patch.setattr(c3d, "load_c3d", copy_of_the_first)
    yield
    patch.undo()


# The modules whose tests use the session's Ray (`ray_session`): `make test` runs them in one process.
RAY_MODULES = ("tests/test_pipeline_extraction.py", "tests/test_pipeline_ground.py")


def pytest_collection_modifyitems(items):
    for item in items:
        if "ray_session" in getattr(item, "fixturenames", ()) and item.nodeid.split("::")[0] not in RAY_MODULES:
            raise pytest.UsageError(f"{item.nodeid} uses ray_session: add its module to conftest.RAY_MODULES")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """With `--dist loadscope`, each module's tests run in one process, so that its module-scoped fixtures
    run once, and the modules of RAY_MODULES all in the same one, so that Ray starts once."""
    from xdist.scheduler import LoadScopeScheduling

    class ModulesWithRayTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            return "ray" if module in RAY_MODULES else module

    return ModulesWithRayTogether(config, log) if config.getvalue("dist") == "loadscope" else None


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for the whole test session (starting Ray takes seconds)."""
    import ray

    ray.init(
        address="local",  # never a cluster another test started (Ray joins the latest one otherwise)
        num_cpus=2,
        object_store_memory=200 * 1024**2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
    )
    yield ray
    ray.shutdown()


@contextlib.contextmanager
def threads_of_a_worker_pass(node_cpus: int = 2):
    """Run torch here with the threads of one forward pass of a Ray worker on a node of `node_cpus`.

    Float32 convolutions differ in their last bits with the thread count (oneDNN splits the sums
    differently; bf16 on AMX did not), so features expected bit for bit from a worker are computed
    with the threads it runs them with."""
    saved = torch.get_num_threads()
    torch.set_num_threads(cpu_passes(node_cpus)[1])
    try:
        yield
    finally:
        torch.set_num_threads(saved)


def solid_frames(count: int, colour, size=(64, 96)) -> list[np.ndarray]:
    frames = [np.zeros((*size, 3), np.uint8) for _ in range(count)]
    for frame in frames:
        frame[:] = colour
    return frames


@pytest.fixture(scope="session")
def charades(shared_data):
    return shared_data / "videos" / "charades.mp4"


# C3D costs per clip, and about ten tests extract the test video again: this seed and shape give the six
# videos a world needs for one test video (train 4, val 1, test 1) in 27 clips, the test video's 3 of them.
WORLD_CLIPS, WORLD_SEED = 27, 66
SMALL = synthetic.WorldShape(episodes=(2, 2), idle_at_ends=2.0, idle_between=2.0)
WORLD_EPOCHS = 2


@pytest.fixture(scope="session")
def small_demo(tmp_path_factory) -> tuple[Path, dict]:
    """`make demo --no-ray` in miniature, run once a session: demo videos of 27 C3D clips (6 videos, one to
    test) generated and extracted, a model trained on them for a moment, evaluated and one video grounded.
    Its folder and the summary the demo returns; the tests of the world's videos and model use its folder.
    With xdist, the first test process to need it builds it in the run's shared folder while the other
    waits on the lock; the summary.json the demo writes last says it is complete.
    Without Ray: only the tests of Ray extraction start the session's Ray, since its idle processes take a
    few percent of a CPU for as long as it runs."""
    from hscnet.pipeline.demo import run_demo

    shared = tmp_path_factory.getbasetemp()
    shared = shared.parent if os.environ.get("PYTEST_XDIST_WORKER") else shared
    folder = shared / "world"
    with FileLock(shared / "world.lock"):
        if not (folder / "summary.json").is_file():
            shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
            run_demo(
                WORLD_CLIPS, seed=WORLD_SEED, folder=folder, overrides=[f"train.epochs={WORLD_EPOCHS}"],
                progress=False, shape=SMALL, use_ray=False,
            )  # fmt: skip
    return folder, json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="session")
def small_world(small_demo) -> tuple[Path, dict[str, list[dict]]]:
    """The miniature demo's folder (videos/, paragraphs/, annotations/, features/, run/last.pt) and the
    paragraphs of each split, as `synthetic.generate_world` returned them."""
    folder, _ = small_demo
    splits = {
        name: [json.loads(line) for line in (folder / "annotations" / f"{name}.jsonl").read_text().splitlines()]
        for name in synthetic.SPLITS
    }
    scenes = synthetic.plan_world(WORLD_CLIPS, seed=WORLD_SEED, shape=SMALL)
    assert [p["video"] for items in splits.values() for p in items] == [scene.video for scene in scenes]
    return folder, splits


@pytest.fixture(scope="session")
def encoded_test_video(small_world):
    """The world's test video through its model's C3D, once a session (3 clips), for the tests of how text
    is grounded; the tests of what a video path does extract it themselves."""
    from hscnet.grounder import Grounder

    folder, splits = small_world
    video = folder / "videos" / f"{splits['test'][0]['video']}.mp4"
    return Grounder.from_checkpoint(folder / "run" / "last.pt", device="cpu").encode_video(video)


SMOKE = REPO / "configs" / "smoke.yaml"


@pytest.fixture(scope="session")
def proxy_data(shared_data, tmp_path_factory):
    """96 real ActivityNet training paragraphs and 24 real val_2 chunks, with proxy features."""
    folder = tmp_path_factory.mktemp("proxy")
    train_paragraphs, _ = read_annotations(shared_data / "activitynet" / "train.json")
    test_paragraphs, _ = read_annotations(shared_data / "activitynet" / "val_2_paragraphs.npy")
    train_set, val_set = train_paragraphs[:96], test_paragraphs[:24]
    write_proxy_store([train_set, val_set], folder / "features", progress=False)
    return {
        "features": folder / "features",
        "train": write_jsonl(folder / "train.jsonl", train_set),
        "val": write_jsonl(folder / "val.jsonl", val_set),
    }


def overrides(data, run_dir, *extra):
    return [
        f"data.features={data['features']}",
        f"data.train={data['train']}",
        f"data.val={data['val']}",
        f"data.test={data['val']}",
        "data.feature_dim=500",
        f"run_dir={run_dir}",
        *extra,
    ]


def cli(*args, **kwargs):
    return subprocess.run([str(REPO / "bin" / args[0]), *args[1:]], capture_output=True, text=True, cwd=REPO, **kwargs)


def command(name: str, *args: str) -> subprocess.CompletedProcess:
    """bin/<name> with `args`, run in this process from the repository root as `cli` runs it: the function
    bin/<name> calls (tests/test_bin.py checks that the script calls nothing else), without a process's
    start-up (importing torch, spaCy and Ray costs seconds). Its exit code, stdout and stderr."""
    from hscnet.pipeline import commands

    logger = logging.getLogger("hscnet")
    saved = logger.handlers[:], logger.propagate, logger.level  # the command sets up its own log lines
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.chdir(REPO), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = None  # a command that returns exits 0, as its process would
            try:
                getattr(commands, f"{name}_main")(list(args), prog=f"bin/{name}")
            except SystemExit as leaving:
                code = leaving.code
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])
    if isinstance(code, str):  # sys.exit("message"): Python prints it and exits 1
        err.write(code + "\n")
        code = 1
    return subprocess.CompletedProcess([f"bin/{name}", *args], code or 0, out.getvalue(), err.getvalue())


@pytest.fixture(scope="session")
def entry_point_helps(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`bin/<name> --help` of every entry point, run once a session from a folder outside the clone with no
    venv on PATH (each command must find the project's interpreter by itself)."""
    folder = tmp_path_factory.mktemp("elsewhere")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    helps = {}
    for name in ("extract", "train", "eval", "ground"):
        command = [str(REPO / "bin" / name), "--help"]
        helps[name] = subprocess.run(command, capture_output=True, text=True, cwd=folder, env=env, timeout=120)
    return helps
