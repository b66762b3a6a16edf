"""What a Ray started by a killed driver leaves behind, removed: run as `python -m hscnet.pipeline.ray_reaper PID`.

Ray ties its node's main processes to the driver that started them (they die with it, even on
kill -9), but its dashboard and runtime-env agents outlive the raylet by about a minute, waiting
on a GCS that is gone. `bin/extract` (and `bin/ground --batch` with Ray) start this small watcher
beside Ray: once the driver's process is gone, it kills every process whose command line or open
files name a Ray session that driver started, and exits. It goes by the session, not the process
group, so a pipeline the user ran the command in (`bin/extract ... | tee log`) is never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path


def start() -> subprocess.Popen:
    """Watch this process; on its end, kill what is left of any Ray session it started. Call it before
    `ray.init`, so that a kill during Ray's start-up is covered too (Ray names a session after the
    process that starts it: session_<date>_<time>_<pid>)."""
    return subprocess.Popen(
        [sys.executable, "-m", "hscnet.pipeline.ray_reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def leftovers(driver: int) -> list[int]:
    """Processes whose command line, or one of whose open files, names a Ray session started by `driver`
    (the agents retitle themselves "ray::DashboardAgent", but keep their session's log files open)."""
    session = re.compile(r"session_[0-9_-]+_" + str(driver) + r"(?![0-9])")
    found = []
    for process in Path("/proc").glob("[0-9]*"):
        try:
            named = session.search((process / "cmdline").read_bytes().decode(errors="replace"))
            named = named or any(session.search(os.readlink(fd)) for fd in (process / "fd").iterdir())
        except (OSError, ValueError):
            continue
        if named and int(process.name) != os.getpid():
            found.append(int(process.name))
    return found


def main() -> None:
    driver = int(sys.argv[1])
    while alive(driver):
        time.sleep(0.2)
    for pid in leftovers(driver):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
