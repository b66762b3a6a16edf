"""Keeping freed memory in the process, so that the next batch does not pay the kernel for it again.

glibc's malloc serves every allocation over 32 MiB with a fresh `mmap` and unmaps it on free,
and gives a thread other than the first its own arena, where anything over 64 MiB is mapped
the same way. The kernel then zero-fills each page of such a block at its first touch, every
time. C3D's activations are such blocks (conv1's output is 205 MB for 8 clips in bf16), and so
are HSCNet's at the paper's batch sizes. Keeping them made C3D and a training step 10 to 40 %
faster (docs/benchmarks.md, "Memory"); one arena matters too, since the extraction worker's
passes run on threads of their own. The price: a process's resident memory stays at its peak
between batches instead of dropping.

Where a process starts with `MALLOC_SETTINGS` in its environment, glibc applies them to every
thread from the first allocation on: Ray's extraction workers get them so, from the Ray that
`bin/extract` starts (`children_keep_freed_memory`) or, on a cluster started before, from the
worker's `runtime_env`.
`keep_freed_memory` sets the same with `mallopt` in a process already running, where they hold
for the main thread (training, evaluation, in-process extraction) and for threads that start
allocating afterwards. Outside glibc (macOS, musl) both do nothing: the allocator there differs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Iterator

_TRIM_NEVER = 2**31 - 1  # the largest value mallopt takes: free memory at the heap's top is kept

# (glibc's environment name, mallopt's parameter number from malloc.h, value); the trailing underscores are glibc's.
_SETTINGS = (
    ("MALLOC_MMAP_MAX_", -4, 0),  # no block is mapped on its own: all come from the heap and return to it
    ("MALLOC_TRIM_THRESHOLD_", -1, _TRIM_NEVER),
    ("MALLOC_ARENA_MAX", -8, 1),  # one heap for all threads: other arenas cannot grow past 64 MiB
)
MALLOC_SETTINGS = {name: str(value) for name, _, value in _SETTINGS}


def has_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))  # "glibc 2.36"; absent or None elsewhere
    except (AttributeError, ValueError, OSError):
        return False


def keep_freed_memory() -> bool:
    """Set `MALLOC_SETTINGS` in this running process (see the module docstring); True where glibc took
    them. Calling it again changes nothing."""
    if not has_glibc():
        return False
    libc = ctypes.CDLL(None)  # the symbols this process already has, glibc's among them
    return all([libc.mallopt(parameter, value) == 1 for _, parameter, value in _SETTINGS])  # 1: taken; each tried


@contextlib.contextmanager
def children_keep_freed_memory() -> Iterator[None]:
    """Processes started inside this block start with `MALLOC_SETTINGS` (and so do theirs: Ray's daemons
    pass their environment on to the workers they start); this process's own environment is as before
    afterwards. The other way, a `runtime_env`, makes Ray start the actor a worker process of its own,
    later than one started with Ray."""
    before = {name: os.environ.get(name) for name in MALLOC_SETTINGS}
    os.environ.update(MALLOC_SETTINGS)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
