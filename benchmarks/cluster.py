"""The same videos on a one-node and a two-node local Ray cluster (one CPU each): clips/s and their ratio.

Run: .venv/bin/python benchmarks/cluster.py [--copies 6]

Each run is `tests/local_cluster.py` in a fresh process: a `ray.cluster_utils.Cluster` on
this machine whose nodes have one CPU each, `run_extraction` over copies of the real Charades
video (C3D fc6, random weights), cluster start-up excluded. With one worker per node, a second
node should nearly double the rate where the machine has a core for each; on a 2-core
machine both nodes share the two cores with the driver and the decode tasks, so the
ratio says how well the work spreads, not what a second machine would add. The last line is the
two-node rate over the one-node rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run(videos: Path, out: Path, nodes: int) -> dict:
    result = subprocess.run(
        [sys.executable, str(REPO / "tests" / "local_cluster.py"), str(nodes), str(videos), str(out), "0"],
        capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip
    if result.returncode:
        raise SystemExit(f"the {nodes}-node run failed: {result.stderr.strip().splitlines()[-1]}")
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    return json.loads(line.removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=6, help="copies of the Charades video (28 clips each)")
    args = parser.parse_args()
    shared = Path(os.environ.get("HSCNET_SHARED_DATA", REPO.parent / "shared" / "data"))
    source = shared / "videos" / "charades.mp4"
    if not source.is_file():
        sys.exit(f"{source} not found: set HSCNET_SHARED_DATA")
    work = Path(tempfile.mkdtemp(prefix="hscnet-cluster-bench-"))
    try:
        videos = work / "videos"
        videos.mkdir()
        for index in range(args.copies):
            shutil.copy(source, videos / f"charades_{index:03d}.mp4")
        rates = {}
        for nodes in (1, 2):
            summary = run(videos, work / f"store{nodes}", nodes)
            assert not summary["failed"], summary["failed"]
            rates[nodes] = summary["clips"] / summary["seconds"]
            print(f"{nodes} node(s) of 1 CPU: {summary['clips']} clips in {summary['seconds']:.1f} s, "
                  f"{rates[nodes]:.2f} clips/s")  # fmt: skip
        print(f"CPU cores on this machine: {os.cpu_count()}")
        print(f"two nodes over one node, clips/s ratio: {rates[2] / rates[1]:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
