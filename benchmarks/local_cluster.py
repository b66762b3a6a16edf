"""Extraction on a local Ray cluster, in a process of its own (benchmarks/cluster.py and the cluster tests run it):
a local Ray cluster of NODES nodes with one CPU each (`ray.cluster_utils.Cluster`) extracts a folder of
videos with `run_extraction`; with KILL_AFTER > 0 the second node is killed (its raylet and workers,
ungracefully) once the store holds that many manifest lines. Prints the summary as JSON on a line that
starts with "RESULT " (a killed node's raylet log lines reach stdout too).

    python benchmarks/local_cluster.py VIDEOS OUT NODES KILL_AFTER
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from extract.extractor import ExtractSettings
from pipeline.extraction import run_extraction


def kill_when(cluster: Cluster, node, manifest: Path, lines: int, killed: threading.Event) -> None:
    while not (manifest.is_file() and len(manifest.read_text().splitlines()) >= lines):
        time.sleep(0.05)
    cluster.remove_node(node, allow_graceful=False)
    killed.set()


def main() -> None:
    videos, out, nodes, kill_after = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    store_mb = 150 * 1024**2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store_mb})
    others = [cluster.add_node(num_cpus=1, object_store_memory=store_mb) for _ in range(nodes - 1)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    killed = threading.Event()
    if kill_after:
        threading.Thread(
            target=kill_when, args=(cluster, others[0], out / "manifest.jsonl", kill_after, killed), daemon=True
        ).start()
    started = time.perf_counter()
    summary = run_extraction(videos, out, ExtractSettings(), progress=False)
    seconds = time.perf_counter() - started
    result = {"done": summary.done, "failed": summary.failed, "clips": summary.clips, "seconds": seconds}
    print("RESULT " + json.dumps({**result, "killed": killed.is_set()}))
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
