"""Atomic writes: a file appears under its final name only once it is complete.

Each writer writes to a temporary name in the destination folder, flushes it to disk, then
renames it over the final name (`os.replace` is atomic on POSIX file systems). A failure or an
interrupt before the rename removes the temporary file and leaves any previous version intact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from hscnet.common.errors import PipelineError

# mkstemp makes its file private (0600); the final file gets the mode any new file of this process would.
_UMASK = os.umask(0)
os.umask(_UMASK)


FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFullError(PipelineError):
    """A write that found no space left: nothing of it remains, what was there before is intact."""


def is_disk_full(error: Exception, folder: Path) -> bool:
    """ENOSPC or EDQUOT, or a write error with no errno on a device that has next to nothing left (numpy's
    `tofile` reports "N requested and M written", torch.save a RuntimeError "iostream error")."""
    number = getattr(error, "errno", None)
    if number in FULL:
        return True
    try:
        return number is None and shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def disk_full(path: str | os.PathLike, error: Exception) -> DiskFullError:
    number = getattr(error, "errno", None)
    cause = os.strerror(number) if number else str(error).splitlines()[0][:120]
    return DiskFullError(
        f"{path}: no space left on the device ({cause}); nothing of this write was kept and "
        "what was there before is intact: free some space and run again"
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`. A full disk becomes one
    `DiskFullError` naming `path`."""
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    except OSError as error:
        if is_disk_full(error, final.parent):
            raise disk_full(final, error) from error
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, final)
    except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
        if is_disk_full(error, final.parent):
            raise disk_full(final, error) from error
        raise
    finally:
        tmp.unlink(missing_ok=True)


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line and flush it to disk; if it cannot be written whole (a full disk), the file is cut
    back to what it was, so no torn line is left behind."""
    path = Path(path)
    with open(path, "a", encoding="utf-8") as handle:
        before = handle.tell()
        try:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        except OSError as error:
            handle.truncate(before)  # the part that reached the disk; nothing new is written by truncating
            if is_disk_full(error, path.parent):
                raise disk_full(path, error) from error
            raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def recover(folder: str | os.PathLike, logs: tuple[str, ...] = ()) -> list[str]:
    """Undo what a process killed mid-write (kill -9, a lost machine) left in `folder`: the temporary files
    of `atomic_path` (".<name>.<random>.tmp") are removed and a torn last line of each append-only log in
    `logs` is cut back. Call it before writing into a folder that only one process writes at a time.
    Returns what it repaired, for the log."""
    folder = Path(folder)
    repaired = []
    if not folder.is_dir():
        return repaired
    for stale in folder.glob(".*.tmp"):
        stale.unlink(missing_ok=True)
        repaired.append(f"removed {stale.name}")
    for name in logs:
        log = folder / name
        if not log.is_file() or log.stat().st_size == 0:
            continue
        data = log.read_bytes()
        if not data.endswith(b"\n"):
            with open(log, "rb+") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
                os.fsync(handle.fileno())
            repaired.append(f"cut a torn last line of {name}")
    return repaired


LOCK = ".lock"


@contextlib.contextmanager
def only_writer(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold `folder`'s lock file while the block runs, so that two processes (on one machine, or on two
    sharing the folder over NFS) never write it at once: the file is made with O_CREAT | O_EXCL, which
    is atomic on local and network file systems. It names its holder (host, process, since when). A lock
    whose holder was a process of this host that is gone (killed) is taken over; any other is refused
    with one line naming its holder and the file to remove if that holder is gone."""
    import datetime
    import socket

    folder = Path(folder)
    lock = folder / LOCK
    host = socket.gethostname()
    holder = {"host": host, "pid": os.getpid(), "since": datetime.datetime.now().isoformat(timespec="seconds")}
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                other = json.loads(lock.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                other = {}
            if other.get("host") == host and isinstance(other.get("pid"), int) and not _alive(other["pid"]):
                lock.unlink(missing_ok=True)  # its holder was killed: nothing writes the folder now
                continue
            who = f"process {other.get('pid', '?')} on {other.get('host', '?')} since {other.get('since', '?')}"
            raise PipelineError(
                f"{folder}: another run is writing here ({who}); wait for it to finish, or remove {lock} if it is gone"
            ) from None
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(holder))
        break
    else:
        raise PipelineError(f"{lock}: could not take the lock")
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
