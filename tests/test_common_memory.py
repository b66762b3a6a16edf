"""common/memory.py: freed blocks stay in the process, so touching them again costs no page faults.

Each case runs in a fresh Python process, since glibc's settings are process-wide and the test
session's own are whatever its earlier tests left. A page fault count is a count, not a timing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hscnet.common.memory import MALLOC_SETTINGS, has_glibc
from tests.conftest import REPO

# Runs a 3-D convolution (C3D's first layer, on 2 clips) eight times, in the main thread or in a new one
# (or both in turn), and prints the median page faults of the last three steps each time: its 103 MB
# output and oneDNN's buffers are allocated and freed at every step, as in every C3D batch and HSCNet
# step. The median: a heap that grows once more at one step does not move it; faults at every step, or
# at every other step, do.
SCRIPT = """
import resource, statistics, sys, threading
import torch
from hscnet.common.memory import keep_freed_memory

if sys.argv[1] == "kept":
    assert keep_freed_memory()
torch.set_num_threads(1)
clips, weight = torch.rand(2, 3, 16, 112, 112), torch.rand(64, 3, 3, 3, 3)

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def steps():
    # The first step maps and touches in any case, and while the freed blocks settle into holes the heap
    # may grow once more: with oneDNN's SSE4.1 kernels (ONEDNN_MAX_CPU_ISA=SSE41) it does at the third.
    for _ in range(5):
        torch.nn.functional.conv3d(clips, weight, padding=1).relu_().sum()
    counts = []
    for _ in range(3):
        before = faults()
        torch.nn.functional.conv3d(clips, weight, padding=1).relu_().sum()
        counts.append(faults() - before)
    print(statistics.median(counts))

for where in sys.argv[2].split(","):
    if where == "thread":
        worker = threading.Thread(target=steps)
        worker.start()
        worker.join()
    else:
        steps()
"""

PAGES = 2 * 64 * 16 * 112 * 112 * 4 // 4096  # one step's output in pages, faulted in afresh when nothing is kept


def faults(mode: str, where: str, env: dict[str, str] | None = None) -> list[int]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode, where],
        env={**environment, **(env or {}), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(count) for count in result.stdout.split()]


def huge_pages_always() -> bool:
    """Whether the kernel backs every large mapping with 2 MiB pages, which fault 512 times less often."""
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not has_glibc(), reason="glibc only: other allocators keep or return memory their own way")
def test_freed_blocks_are_reused_without_page_faults():
    (default,) = faults("default", "main")
    if not huge_pages_always():
        assert default > PAGES * 0.9  # glibc maps and zero-fills each block afresh
    # keep_freed_memory in a running process (bin/train), then a thread that starts after it: with an
    # arena of its own, that thread's blocks would be mapped afresh again.
    main, thread = faults("kept", "main,thread")
    assert main < PAGES * 0.05 and thread < PAGES * 0.05
    # The environment a Ray extraction worker starts with: its forward passes run on threads.
    (worker,) = faults("default", "thread", MALLOC_SETTINGS)
    assert worker < PAGES * 0.05
