"""Extraction on a local Ray cluster, in a process of its own (benchmarks/cluster.py and the cluster tests run it):
a local Ray cluster of NODES nodes with one CPU each (`ray.cluster_utils.Cluster`) extracts each folder of
videos in turn with `run_extraction`, on the same cluster (starting one is most of a small run's time); with
KILL_AFTER > 0 the second node is killed (its raylet and workers, ungracefully) once that run's store holds
that many manifest lines of videos extracted on it, so the runs after it have one node fewer. Prints each
run's summary as JSON on a line that starts with "RESULT ", in order (a killed node's raylet log lines reach
stdout too).

    python tests/local_cluster.py NODES VIDEOS OUT KILL_AFTER [VIDEOS OUT KILL_AFTER ...]
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from hscnet.extract.settings import ExtractSettings
from hscnet.pipeline.extraction import run_extraction


def lines_written_on(node, manifest: Path) -> int:
    """Manifest lines of videos extracted on `node`: a worker names its node "<host>/<first 12 of its id>"."""
    if not manifest.is_file():
        return 0
    lines = [json.loads(line) for line in manifest.read_text().splitlines() if line.endswith("}")]
    return sum(line.get("node", "").endswith("/" + node.node_id[:12]) for line in lines)


def kill_when(cluster: Cluster, node, manifest: Path, lines: int, killed: threading.Event) -> None:
    while lines_written_on(node, manifest) < lines:
        time.sleep(0.05)
    cluster.remove_node(node, allow_graceful=False)
    killed.set()


def main() -> None:
    nodes, runs = int(sys.argv[1]), sys.argv[2:]
    if not runs or len(runs) % 3:
        sys.exit("usage: " + __doc__.splitlines()[-1].strip())
    store_mb = 150 * 1024**2
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "object_store_memory": store_mb})
    others = [cluster.add_node(num_cpus=1, object_store_memory=store_mb) for _ in range(nodes - 1)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    for videos, out, kill_after in zip(runs[0::3], runs[1::3], runs[2::3], strict=True):
        killed = threading.Event()
        if int(kill_after):
            victim = others.pop(0)
            threading.Thread(
                target=kill_when, args=(cluster, victim, Path(out) / "manifest.jsonl", int(kill_after), killed),
                daemon=True,
            ).start()  # fmt: skip
        started = time.perf_counter()
        summary = run_extraction(Path(videos), Path(out), ExtractSettings(), progress=False)
        seconds = time.perf_counter() - started
        result = {"done": summary.done, "failed": summary.failed, "clips": summary.clips, "seconds": seconds}
        print("RESULT " + json.dumps({**result, "killed": killed.is_set()}), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main()
