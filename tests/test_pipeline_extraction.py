"""pipeline/extraction.py: bin/extract's stage over many videos, with Ray and without."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from conftest import REPO, solid_frames, threads_of_a_worker_pass

from hscnet.common.errors import InputError
from hscnet.extract.encoders import build_encoder
from hscnet.extract.extractor import extract_video
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.store import FeatureStore
from hscnet.pipeline.extraction import extract_command, run_extraction
from hscnet.pipeline.passes import ForwardPasses, cpu_passes
from hscnet.pipeline.ray_workers import videos_in_flight
from hscnet.pipeline.synthetic import write_video


@pytest.mark.slow
def test_ray_extraction_records_failures_resumes_and_matches_the_plain_function(tmp_path, ray_session, caplog):
    caplog.set_level(logging.INFO, logger="hscnet.pipeline")
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "green.mp4", solid_frames(40, (20, 200, 20)), fps=10)
    write_video(videos / "blue.webm", solid_frames(20, (20, 20, 200)), fps=10, codec="libvpx-vp9")
    (videos / "corrupt.mp4").write_bytes(b"\x00garbage" * 50)
    (videos / "empty.avi").write_bytes(b"")
    settings = ExtractSettings(batch_size=4)
    summary = run_extraction(videos, tmp_path / "store", settings, progress=False)
    assert sorted(summary.done) == ["blue", "green"] and summary.clips == 3
    worker = "; 2 pass(es) at once of 1 thread(s), glibc keeping freed memory; 1 worker(s) on 1 node(s), videos at a "
    assert worker + "time per worker: 3" in caplog.text
    assert set(summary.failed) == {"corrupt", "empty"} and "empty file" in summary.failed["empty"]
    assert "failed 2" in summary.report() and "corrupt: " in summary.report()
    store = FeatureStore(tmp_path / "store")
    assert store.ids() == {"blue", "green"} and store.read("green").shape == (2, 4096)
    records = {r.video_id: r for r in store.records().values()}
    assert records["green"].status == "ok" and records["green"].num_frames == 40
    assert records["green"].spec == settings.spec() and records["green"].spec.weights == "random"
    assert records["corrupt"].status == "failed" and records["corrupt"].error
    lines = (tmp_path / "store" / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(line)["video_id"] for line in lines)

    # The same features without Ray.
    with threads_of_a_worker_pass(node_cpus=2):  # ray_session's node
        plain, _ = extract_video(videos / "green.mp4", "green", build_encoder(settings).encode, settings.spec())
    np.testing.assert_array_equal(plain, store.read("green"))

    # A rerun skips what is done and retries what failed.
    (videos / "empty.avi").unlink()
    rerun = run_extraction(videos, tmp_path / "store", settings, use_ray=False, progress=False)
    assert sorted(rerun.skipped) == ["blue", "green"] and rerun.done == [] and set(rerun.failed) == {"corrupt"}
    with pytest.raises(InputError, match=r"other settings \(stride 16 -> 8\)"):
        run_extraction(videos, tmp_path / "store", ExtractSettings(stride=8), use_ray=False)


def test_damaged_weights_stop_a_ray_extraction_with_the_error_that_names_them(tmp_path, ray_session):
    """The worker builds C3D after it started: its error must reach the driver as itself, not as Ray's."""
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "grey.mp4", solid_frames(16, (90, 90, 90)), fps=10)
    weights = tmp_path / "c3d.pickle"
    weights.write_bytes(b"\x80\x04not a pickle")
    refusal = r"c3d\.pickle: not a loadable C3D state dict: not a file torch\.save wrote"
    with pytest.raises(InputError, match=refusal) as caught:
        run_extraction(videos, tmp_path / "store", ExtractSettings(weights=str(weights)), progress=False)
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)
    store = FeatureStore(tmp_path / "store")
    assert store.records() == {} and store.ids() == set()


PLAN_AND_HELP = """
import runpy, sys
from pathlib import Path
from hscnet.extract.settings import ExtractSettings
from hscnet.extract.store import FeatureStore
from hscnet.pipeline.extraction import plan
todo, _ = plan([Path(sys.argv[1])], FeatureStore(sys.argv[2], create=True), ExtractSettings().spec())
sys.argv = ["bin/extract", "--help"]
try:
    runpy.run_path("bin/extract", run_name="__main__")
except SystemExit:
    pass
print(len(todo), sorted(name for name in ("torch", "torchvision") if name in sys.modules))
"""


def test_bin_extracts_own_process_plans_the_run_without_importing_torch(tmp_path, charades):
    # Importing torch took 1.9 s of the 2.0 s bin/extract --help took; this process only plans, schedules and writes.
    command = [sys.executable, "-c", PLAN_AND_HELP, str(charades), str(tmp_path / "store")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip().splitlines()[-1] == "1 []"


def test_two_videos_with_the_same_name_are_refused(tmp_path):
    for folder in ["a", "b"]:
        (tmp_path / folder).mkdir()
        write_video(tmp_path / folder / "same.mp4", solid_frames(16, (9, 9, 9)), fps=10)
    with pytest.raises(InputError, match=r"same\.mp4 and .*same\.mp4 have the same name \(same\)"):
        run_extraction(tmp_path, tmp_path / "store", ExtractSettings(), use_ray=False, progress=False)
    assert not (tmp_path / "store" / "same.npy").exists()


def test_an_extract_config_gives_defaults_and_flags_win(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "grey.mp4", solid_frames(20, (99, 99, 99)), fps=10)
    (tmp_path / "extract.yaml").write_text("stride: 4\nlayer: pool5\n")
    flags = {"stride": None, "layer": None}
    assert (
        extract_command(videos, tmp_path / "a", str(tmp_path / "extract.yaml"), flags, use_ray=False, progress=False)
        == 0
    )
    assert FeatureStore(tmp_path / "a").read("grey").shape == ((20 - 16) // 4 + 1, 8192)
    flags = {"stride": 16, "layer": None}
    assert (
        extract_command(videos, tmp_path / "b", str(tmp_path / "extract.yaml"), flags, use_ray=False, progress=False)
        == 0
    )
    assert FeatureStore(tmp_path / "b").read("grey").shape == (1, 8192)
    assert "extracted 1, skipped 0" in capsys.readouterr().out


def test_without_out_the_store_is_features_in_the_current_folder(tmp_path, monkeypatch, caplog):
    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "grey.mp4", solid_frames(16, (99, 99, 99)), fps=10)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="hscnet.pipeline")
    assert extract_command("videos", None, None, {}, use_ray=False, progress=False) == 0
    assert FeatureStore(tmp_path / "features").read("grey").shape == (1, 4096)
    assert f"no --out given: the feature store is {tmp_path / 'features'}" in caplog.text


def test_a_cpu_worker_runs_two_passes_on_its_cores_less_an_eighth():
    assert cpu_passes(1) == (1, 1)
    assert cpu_passes(2) == (2, 1)
    assert cpu_passes(8) == (2, 4)  # 7 of 8 cores, rounded up to two halves
    assert cpu_passes(16) == (2, 7)
    assert cpu_passes(64) == (2, 28)


def test_a_gpu_worker_decodes_as_many_videos_as_its_cores_allow():
    assert videos_in_flight(cpus=2, gpus=0) == 3  # C3D bounds a CPU worker: one video a pass, one decoding
    assert videos_in_flight(cpus=1, gpus=0) == 2
    assert videos_in_flight(cpus=64, gpus=0) == 3
    assert videos_in_flight(cpus=16, gpus=1) == 15  # decoding bounds a GPU worker: a core per video, one feeds it
    assert videos_in_flight(cpus=96, gpus=8) == 11
    assert videos_in_flight(cpus=2, gpus=1) == 2


def test_a_chunk_takes_every_idle_pass_and_keeps_each_clips_features(charades):
    """One video alone must not run on half of a worker's cores; its features stay those of one pass."""
    from hscnet.extract.video import decode_clips

    settings = ExtractSettings(batch_size=1)
    clips = next(decode_clips(charades, settings.spec()))[:2]  # [2, 16, 112, 112, 3]: 2 batches
    passes = ForwardPasses(2)
    ran: list[tuple[str, int]] = []  # (thread, clips) of every part
    with threads_of_a_worker_pass(node_cpus=2):
        encoder = build_encoder(settings)

        def encode(part: np.ndarray) -> np.ndarray:
            ran.append((threading.current_thread().name, len(part)))
            return encoder.encode(part)

        alone = passes.run(encode, clips, settings.batch_size)
        assert [size for _, size in ran] == [1, 1] and len({thread for thread, _ in ran}) == 2
        ran.clear()
        with passes.idle:  # the other pass is busy with another video's chunk
            beside_another = passes.run(encode, clips, settings.batch_size)
        assert ran == [(threading.current_thread().name, 2)]
        ran.clear()
        with passes.video(), passes.video():  # two videos share the passes: each chunk keeps to one
            beside_a_video = passes.run(encode, clips, settings.batch_size)
        assert ran == [(threading.current_thread().name, 2)]
        one_pass = encoder.encode(clips)
    np.testing.assert_array_equal(alone, one_pass)
    np.testing.assert_array_equal(beside_another, one_pass)
    np.testing.assert_array_equal(beside_a_video, one_pass)


def test_a_second_run_into_a_store_being_written_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path):
    import socket

    from hscnet.common import atomic
    from hscnet.common.errors import PipelineError

    videos = tmp_path / "videos"
    videos.mkdir()
    write_video(videos / "grey.mp4", solid_frames(16, (99, 99, 99)), fps=10)
    store = tmp_path / "store"
    store.mkdir()
    refused = rf"another run is writing here \(process {os.getpid()} on "
    with atomic.only_writer(store), pytest.raises(PipelineError, match=refused):  # another run holds the store
        run_extraction(videos, store, ExtractSettings(), use_ray=False, progress=False)
    assert not (store / "manifest.jsonl").exists()

    gone = subprocess.Popen(["true"])
    gone.wait()  # a process of this host that no longer runs: its lock is stale
    (store / ".lock").write_text(json.dumps({"host": socket.gethostname(), "pid": gone.pid, "since": "then"}))
    summary = run_extraction(videos, store, ExtractSettings(), use_ray=False, progress=False)
    assert summary.done == ["grey"] and not (store / ".lock").exists()
    assert len((store / "manifest.jsonl").read_text().splitlines()) == 1

    (store / ".lock").write_text(json.dumps({"host": "another-node", "pid": 1, "since": "then"}))
    with pytest.raises(PipelineError, match=r"process 1 on another-node since then.* remove .*\.lock if it is gone"):
        run_extraction(videos, store, ExtractSettings(), use_ray=False, progress=False)
