"""pipeline/extraction.py on a Ray cluster of two nodes on this machine: work spreads, a lost node loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from extract.store import FeatureStore
from pipeline.synthetic import write_video

pytestmark = pytest.mark.slow


def videos(folder, count: int):
    """`count` small videos of 16 frames (one C3D clip each), each its own colour."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(count):
        colour = rng.integers(0, 255, 3)
        frames = [np.full((64, 96, 3), colour, np.uint8) for _ in range(16)]
        write_video(folder / f"v{index:02d}.mp4", frames, fps=12)
    return folder


def run_cluster(videos_folder, out, nodes: int, kill_after: int = 0) -> dict:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "local_cluster.py"), str(videos_folder), str(out), str(nodes),
         str(kill_after)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def test_two_nodes_both_extract_and_each_line_names_its_node(tmp_path):
    folder = videos(tmp_path / "videos", 8)
    summary = run_cluster(folder, tmp_path / "store", nodes=2)
    assert sorted(summary["done"]) == [f"v{i:02d}" for i in range(8)] and not summary["failed"]
    records = FeatureStore(tmp_path / "store").records()
    nodes = {record.node for record in records.values()}
    assert len(nodes) == 2, nodes  # both nodes did work
    assert all(record.status == "ok" and record.clips == 1 for record in records.values())


def test_a_node_lost_mid_run_hands_its_videos_to_the_other(tmp_path):
    folder = videos(tmp_path / "videos", 10)
    store = tmp_path / "store"
    summary = run_cluster(folder, store, nodes=2, kill_after=1)
    assert summary["killed"]
    names = [f"v{i:02d}" for i in range(10)]
    assert sorted(summary["done"] + list(summary["failed"])) == names  # every video done or recorded as failed
    assert all("worker was lost" in reason for reason in summary["failed"].values())
    records = FeatureStore(store).records()
    assert sorted(records) == names
    written = sorted(path.stem for path in store.glob("*.npy"))
    assert written == sorted(summary["done"]) and not list(store.glob(".*.tmp"))  # nothing half written
    lines = (store / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(line)["video_id"] for line in lines}) == 10  # nothing written twice
    for name in summary["done"]:
        assert np.load(store / f"{name}.npy").shape == (1, 4096)
