"""The forward passes one extraction worker runs at once, and how many a CPU node gets."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def cpu_passes(cpus: int) -> tuple[int, int]:
    """How a CPU node's worker runs its backbone: (forward passes at once, torch threads each).

    The node's cores less an eighth (decoding's share), as two passes of half of them: a decode task
    or one of Ray's processes taking a core then stalls one pass, not one of two threads that wait for
    each other at every layer (the pipeline ran 4 % faster so on 2 cores; docs/benchmarks.md).
    """
    if cpus < 2:
        return 1, 1
    return 2, max(1, (cpus - cpus // 8 + 1) // 2)


class ForwardPasses:
    """The forward passes a worker runs at once (`cpu_passes`; one on a GPU), each on its own thread.

    A chunk of clips runs on one pass; with fewer videos on the worker than passes (one video
    alone, or the last of many) it also takes the passes idle at that moment, which would otherwise
    leave half of a CPU node's cores unused (a video alone on 2 cores takes about two thirds of the
    time). With as many videos as passes, each chunk keeps to one: a chunk split in two waits for its
    slower half while the next video's chunk waits for both, which made many videos 10 % slower.
    The parts are whole batches of the encoder, so each clip's features are those one pass gives,
    bit for bit; the network holds no state, so passes may run it at once."""

    def __init__(self, count: int):
        self.count = count
        self.idle = threading.Semaphore(count)
        self.helpers = ThreadPoolExecutor(max_workers=count - 1, thread_name_prefix="pass") if count > 1 else None
        self.videos = 0  # on the worker now, between their first chunk and their last
        self.counting = threading.Lock()

    @contextlib.contextmanager
    def video(self) -> Iterator[None]:
        """While one video's chunks come, so that the passes are shared among the videos there are."""
        with self.counting:
            self.videos += 1
        try:
            yield
        finally:
            with self.counting:
                self.videos -= 1

    def run(self, encode, clips: np.ndarray, batch_size: int) -> np.ndarray:
        """`encode` ([n, ...] clips -> [n, dim] features, `batch_size` at a time) over `clips` [N, ...]."""
        batches = -(-len(clips) // batch_size)
        share = max(1, self.count // max(1, self.videos))
        self.idle.acquire()
        taken = 1
        while taken < min(share, batches) and self.idle.acquire(blocking=False):
            taken += 1
        try:
            cuts = [batch_size * (batches * part // taken) for part in range(1, taken)]
            parts = np.split(clips, cuts)  # `taken` parts of whole batches (the last may be short)
            helped = [self.helpers.submit(encode, part) for part in parts[1:]]
            return np.concatenate([encode(parts[0])] + [future.result() for future in helped])  # [N, dim]
        finally:
            for _ in range(taken):
                self.idle.release()
