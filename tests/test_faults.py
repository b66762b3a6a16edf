"""Faults that lose work, and what is kept: a full disk under bin/extract and bin/train, writes cut short.

A full disk is a real one where the tests may mount a small tmpfs (root, as in CI), else the
test is skipped; the unit checks below it fill the disk the same way.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, SMOKE, cli, command, overrides, threads_of_a_worker_pass

from hscnet.common import atomic
from hscnet.common.atomic import DiskFullError
from hscnet.extract.settings import ExtractSettings
from hscnet.pipeline.extraction import run_extraction
from hscnet.pipeline.synthetic import write_video


@pytest.fixture
def small_disk(tmp_path):
    """A 160 KiB tmpfs mounted for the test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mount)], capture_output=True)
    if result.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.decode().strip()[:100]})")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def fill(disk, leave: int = 0) -> None:
    """Fill the disk but `leave` bytes (about: tmpfs counts in pages)."""
    free = shutil.disk_usage(disk).free
    if free > leave:
        (disk / "ballast").write_bytes(b"\0" * (free - leave))


def test_an_atomic_write_on_a_full_disk_keeps_the_previous_version(small_disk):
    target = small_disk / "result.json"
    atomic.write_json(target, {"version": 1})
    fill(small_disk)
    with pytest.raises(DiskFullError, match=r"result\.json: no space left on the device"):
        atomic.write_json(target, {"version": 2, "padding": "x" * 50_000})
    assert json.loads(target.read_text()) == {"version": 1}
    assert sorted(p.name for p in small_disk.iterdir()) == ["ballast", "result.json"]  # no temporary file


def test_an_append_that_does_not_fit_leaves_no_torn_line(small_disk):
    log = small_disk / "lines.jsonl"
    atomic.append_line(log, json.dumps({"n": 1}))
    fill(small_disk, leave=4096 - log.stat().st_size - 10)  # a few bytes fit, not the whole line
    with pytest.raises(DiskFullError, match=r"lines\.jsonl: no space left"):
        atomic.append_line(log, json.dumps({"n": 2, "padding": "x" * 20_000}))
    assert log.read_text() == '{"n": 1}\n'


def test_a_write_failing_with_enospc_anywhere_keeps_the_previous_version(tmp_path, monkeypatch):
    # Where no filesystem can be mounted: the same failure, made by the operating system's call itself.
    import errno

    target, log = tmp_path / "result.json", tmp_path / "lines.jsonl"
    atomic.write_json(target, {"version": 1})
    atomic.append_line(log, "one")

    def full(*_):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError, match=r"result\.json: no space left on the device \(No space left on device\)"):
        atomic.write_json(target, {"version": 2})
    with pytest.raises(DiskFullError, match=r"lines\.jsonl: no space left"):
        atomic.append_line(log, "two")
    monkeypatch.undo()
    assert json.loads(target.read_text()) == {"version": 1} and log.read_text() == "one\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lines.jsonl", "result.json"]


@pytest.mark.slow
def test_bin_extract_on_a_full_disk_stops_with_one_line_and_keeps_what_it_finished(small_disk, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for index in range(6):  # one C3D clip each: 8 KiB of float16 features a video, three 4 KiB pages with its header
        write_video(videos / f"v{index}.mp4", [np.full((64, 96, 3), 40 * index, np.uint8)] * 16, fps=16)
    store = small_disk / "store"
    fill(small_disk, leave=30 * 1024)  # the manifest's page and two videos' features
    result = command("extract", "--videos", str(videos), "--out", str(store), "--no-ray", "--no-progress")
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0] and "Traceback" not in result.stderr
    lines = [json.loads(line) for line in (store / "manifest.jsonl").read_text().splitlines()]
    done = sorted(line["video_id"] for line in lines if line["status"] == "ok")
    assert 0 < len(done) < 6
    assert sorted(p.stem for p in store.glob("*.npy")) == done  # no features without their line
    assert not [p for p in store.iterdir() if p.name.startswith(".")]  # no temporary file
    for name in done:
        assert np.load(store / f"{name}.npy").shape == (1, 4096)


@pytest.mark.slow
def test_bin_train_on_a_full_disk_stops_with_one_line(small_disk, proxy_data):
    run = small_disk / "run"
    fill(small_disk, leave=24 * 1024)  # the resolved config fits; a checkpoint does not
    result = command("train", "--config", str(SMOKE), *overrides(proxy_data, run, "train.epochs=1"), "--no-progress")
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space left on the device" in errors[0] and "Traceback" not in result.stderr
    assert not list(run.glob("*.pt")) and not list(run.glob(".*.tmp"))


# --- Damaged inputs read back later: one line naming the file and the problem, never code run.


def test_damaged_feature_files_are_refused_naming_the_file(tmp_path):
    from hscnet.common.errors import InputError
    from hscnet.extract.store import FeatureStore

    store = FeatureStore(tmp_path / "store", create=True)
    np.save(tmp_path / "store" / "good.npy", np.ones((4, 8), np.float16))
    good = (tmp_path / "store" / "good.npy").read_bytes()
    (tmp_path / "store" / "truncated.npy").write_bytes(good[:100])
    (tmp_path / "store" / "corrupt.npy").write_bytes(b"\x93NUMPY" + b"\xff" * 40)
    np.save(tmp_path / "store" / "integers.npy", np.ones((4, 8), np.int64))
    np.save(tmp_path / "store" / "cube.npy", np.ones((4, 8, 2), np.float32))
    np.save(tmp_path / "store" / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert store.read("good").shape == (4, 8)
    expected = {
        "truncated": "unreadable feature file",
        "corrupt": "unreadable feature file",
        "integers": r"features of shape \(4, 8\) and dtype int64, expected \[clips, dim\] floats",
        "cube": r"features of shape \(4, 8, 2\) and dtype float32",
        "objects": "unreadable feature file",  # never unpickled
    }
    for name, message in expected.items():
        with pytest.raises(InputError, match=rf"{name}\.npy: {message}"):
            store.read(name)


def test_hdf5_files_with_missing_keys_are_refused_naming_the_key(tmp_path):
    import h5py

    from hscnet.common.errors import InputError
    from hscnet.features import open_features

    with h5py.File(tmp_path / "f.hdf5", "w") as f:
        f.create_dataset("v_a/c3d_features", data=np.ones((3, 500), np.float32))
        f.create_group("v_b")  # the ActivityNet layout without its array
        f.create_dataset("v_c", data=np.ones(3, np.float32))  # not [clips, dim]
    features = open_features(tmp_path / "f.hdf5")
    assert features.read("v_a").shape == (3, 500)
    with pytest.raises(InputError, match=r"f\.hdf5\[v_b\]: no such features in the HDF5 file"):
        features.read("v_b")
    with pytest.raises(InputError, match=r"f\.hdf5\[v_zz\]: no such features"):
        features.read("v_zz")
    with pytest.raises(InputError, match=r"f\.hdf5\[v_c\]: features of shape \(3,\)"):
        features.read("v_c")


def test_damaged_checkpoints_are_refused_in_one_line_and_no_code_runs(tmp_path):
    import torch

    from hscnet.checkpoint import load_checkpoint
    from hscnet.common.errors import InputError

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (marker.write_text, ("code ran",))

    torch.save({"x": Payload()}, tmp_path / "payload.pt")
    torch.save({"format": "hscnet-checkpoint/2"}, tmp_path / "whole.pt")
    (tmp_path / "truncated.pt").write_bytes((tmp_path / "whole.pt").read_bytes()[:60])
    reasons = {"payload": "it holds objects other than tensors", "truncated": "not a file torch.save wrote"}
    for name, reason in reasons.items():
        with pytest.raises(InputError, match=rf"{name}\.pt: not a loadable checkpoint: {reason}") as caught:
            load_checkpoint(tmp_path / f"{name}.pt")
        assert "\n" not in str(caught.value) and "weights_only" not in str(caught.value)
    assert not marker.exists()


# --- Every reader of outside text, fuzzed: it returns a value or raises a PipelineError, nothing else.

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from hscnet.common.errors import PipelineError  # noqa: E402

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
NEAR_ANNOTATION = st.dictionaries(
    st.sampled_from(["duration", "timestamps", "sentences", "video", "x"]) | st.text(max_size=5), JSON, max_size=5
)


def refuses_cleanly(read, *args) -> None:
    try:
        read(*args)
    except PipelineError as error:
        assert str(error).strip() and "\n" not in str(error).strip()


@FUZZ
@given(st.dictionaries(st.text(max_size=8), NEAR_ANNOTATION | JSON, max_size=4) | JSON)
def test_fuzz_activitynet_annotation_files(tmp_path, content):
    from hscnet.annotations import read_annotations

    path = tmp_path / "captions.json"
    path.write_text(json.dumps(content))
    refuses_cleanly(read_annotations, path)


@FUZZ
@given(st.lists(NEAR_ANNOTATION.map(json.dumps) | st.text(max_size=30), max_size=5))
def test_fuzz_jsonl_annotation_files(tmp_path, lines):
    from hscnet.annotations import read_annotations

    path = tmp_path / "captions.jsonl"
    path.write_text("\n".join(lines))
    refuses_cleanly(read_annotations, path, "jsonl")


@FUZZ
@given(st.lists(st.dictionaries(
    st.sampled_from(["video_id", "source", "status", "spec", "error", "clips", "duration", "x"]), JSON, max_size=6
).map(json.dumps) | st.text(max_size=40), max_size=4))  # fmt: skip
def test_fuzz_manifest_lines(tmp_path, lines):
    from hscnet.extract.store import FeatureStore

    (tmp_path / "store").mkdir(exist_ok=True)
    (tmp_path / "store" / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    refuses_cleanly(lambda: FeatureStore(tmp_path / "store").records())


@FUZZ
@given(st.dictionaries(st.sampled_from(["data", "model", "train", "eval", "text", "run_dir", "seed"]),
                       JSON | st.dictionaries(st.sampled_from(["epochs", "lr", "features", "depths", "x"]), JSON,
                                              max_size=3), max_size=4) | JSON)  # fmt: skip
def test_fuzz_configs(tmp_path, content):
    import yaml

    from hscnet.config import load_config

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(content))
    refuses_cleanly(load_config, path)


@FUZZ
@given(st.text(max_size=200))
def test_fuzz_paragraph_files(tmp_path, text):
    from hscnet.pipeline.ground import read_paragraph

    path = tmp_path / "paragraph.txt"
    path.write_text(text, encoding="utf-8")
    refuses_cleanly(read_paragraph, path, False)
    refuses_cleanly(read_paragraph, path, True)


@FUZZ
@given(st.lists(st.dictionaries(st.sampled_from(["video", "paragraph", "x"]), JSON, max_size=3).map(json.dumps)
                | st.text(max_size=30), max_size=4))  # fmt: skip
def test_fuzz_batch_item_files(tmp_path, lines):
    from hscnet.pipeline.ground import read_batch

    path = tmp_path / "items.jsonl"
    path.write_text("\n".join(lines))
    refuses_cleanly(read_batch, path)


# --- kill -9 of the driver: nothing partial, nothing left running, and the rerun ends where one run would.


def session_processes(session: int) -> list[str]:
    """The processes still alive in a session (a command started with start_new_session and all it spawned)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # after "pid (name) ": state, ppid, pgrp, session, ...
        if int(fields[3]) == session and fields[0] != "Z":
            alive.append(text[: text.rindex(")") + 1])
    return alive


def kill_9(command: list[str], when, timeout: float = 240.0) -> None:
    """Start `command` in a session of its own, SIGKILL it once `when()` is true, and see that nothing of it
    is left running a little later (Ray's processes included)."""
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # fmt: skip
    deadline = time.time() + timeout
    while not when() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the command ended before the moment to kill it"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    for _ in range(100):
        if not session_processes(process.pid):
            break
        time.sleep(0.2)
    assert session_processes(process.pid) == []


def lines(path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


@pytest.mark.slow
def test_kill_9_of_bin_extract_at_start_and_mid_run_then_the_rerun_ends_with_the_same_features(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for index in range(6):
        frames = [np.full((64, 96, 3), (30 * index + 2 * t) % 256, np.uint8) for t in range(16)]  # 1 clip
        write_video(videos / f"v{index}.mp4", frames, fps=12)
    extract = [str(REPO / "bin" / "extract"), "--videos", str(videos), "--no-progress", "--workers", "2"]
    with threads_of_a_worker_pass(node_cpus=2):  # the expected features, as the workers of --workers 2 compute them
        whole = run_extraction(videos, tmp_path / "whole", ExtractSettings(), use_ray=False, progress=False)
    assert whole.done and not whole.failed
    store = tmp_path / "store"
    started = time.time()
    kill_9([*extract, "--out", str(store)], when=lambda: time.time() - started > 1.0)  # importing, starting Ray
    kill_9([*extract, "--out", str(store)], when=lambda: lines(store / "manifest.jsonl") >= 2)  # mid-run
    assert 2 <= lines(store / "manifest.jsonl") < 6
    rerun = cli("extract", "--videos", str(videos), "--out", str(store), "--no-progress", "--workers", "2")
    assert rerun.returncode == 0, rerun.stderr
    assert not [p.name for p in store.iterdir() if p.name.startswith(".")]  # no temporary file
    names = sorted(p.name for p in (tmp_path / "whole").glob("*.npy"))
    assert sorted(p.name for p in store.glob("*.npy")) == names and len(names) == 6
    for name in names:
        np.testing.assert_array_equal(np.load(store / name), np.load(tmp_path / "whole" / name))


@pytest.mark.slow
def test_kill_9_of_bin_train_then_resume_gives_the_weights_of_an_uninterrupted_run(proxy_data, tmp_path):
    import torch

    def train(run):
        return [str(REPO / "bin" / "train"), "--config", str(SMOKE), *overrides(proxy_data, run, "train.epochs=3"),
                "--no-progress"]  # fmt: skip

    from hscnet.config import load_config
    from hscnet.train import train as train_here

    # The uninterrupted run in this process: the same code and seeds as bin/train, one start-up fewer.
    train_here(load_config(SMOKE, overrides(proxy_data, tmp_path / "whole", "train.epochs=3")), progress=False)
    run = tmp_path / "run"
    kill_9(train(run), when=lambda: (run / "last.pt").is_file())  # epoch 1 saved, epoch 2 under way
    resumed = command("train", "--resume", str(run), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not list(run.glob(".*.tmp"))
    final = torch.load(run / "last.pt", weights_only=True)
    expected = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)
    assert final["state"]["epoch"] == expected["state"]["epoch"] == 3
    for name, weight in expected["model"].items():
        torch.testing.assert_close(final["model"][name], weight, rtol=0, atol=0)
