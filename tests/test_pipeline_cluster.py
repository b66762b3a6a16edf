"""pipeline/extraction.py on a Ray cluster of two nodes on this machine: work spreads, a lost node loses nothing."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from hscnet.extract.store import FeatureStore
from hscnet.pipeline.synthetic import write_video

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


@pytest.fixture(scope="module")
def cluster_run(tmp_path_factory) -> tuple[dict, object]:
    """One run of six videos on a local cluster of two nodes, whose start-up is most of its time: the second
    node is killed once it has extracted a video (each worker takes two at once, `videos_in_flight`), and the
    head node finishes the run. Its summary and its store."""
    work = tmp_path_factory.mktemp("cluster")
    folder, store = videos(work / "videos", 6), work / "store"
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "local_cluster.py"), "2", str(folder), str(store), "1"],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT ")), store


def test_two_nodes_both_extract_and_each_line_names_its_node(cluster_run):
    _, store = cluster_run
    records = FeatureStore(store).records()
    extracted = [record for record in records.values() if record.status == "ok"]
    nodes = {record.node for record in extracted}
    assert len(nodes) == 2, nodes  # both nodes did work: the second before it was lost, the head after
    assert all(len(node.split("/")[-1]) == 12 for node in nodes)  # "<host>/<node id>": a test cluster's hosts match
    assert all(record.clips == 1 for record in extracted)


def test_a_node_lost_mid_run_hands_its_videos_to_the_other(cluster_run):
    summary, store = cluster_run
    assert summary["killed"]
    names = [f"v{i:02d}" for i in range(6)]
    assert sorted(summary["done"] + list(summary["failed"])) == names  # every video done or recorded as failed
    assert all("worker was lost" in reason for reason in summary["failed"].values())
    records = FeatureStore(store).records()
    assert sorted(records) == names
    written = sorted(path.stem for path in store.glob("*.npy"))
    assert written == sorted(summary["done"]) and not list(store.glob(".*.tmp"))  # nothing half written
    lines = (store / "manifest.jsonl").read_text().splitlines()
    assert len(lines) == len({json.loads(line)["video_id"] for line in lines}) == 6  # nothing written twice
    for name in summary["done"]:
        assert np.load(store / f"{name}.npy").shape == (1, 4096)
