"""One writer per run (or experiment) directory: an advisory lock that a dead process cannot leave behind.

The lock is `fcntl.flock` on a file in the directory. The kernel drops it when its holder exits,
however it exits (SIGKILL included), so a stale lock never blocks; a second live process is
refused at once with one line naming the holder (pid, host, since when), which the lock file
records. The holder removes the file when it is done; a process that locked a file just removed
(the inode changed under it) tries again, so two processes never both hold the lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path

from harnessopt.errors import UsageError


class LockedError(UsageError):
    """Another live process writes to this directory; the message names it."""


class DirectoryLock:
    def __init__(self, directory: Path, name: str = "run.lock"):
        self.path = Path(directory) / name
        self._fd: int | None = None

    def acquire(self, what: str = "run directory") -> "DirectoryLock":
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _describe(self.path)
                os.close(fd)
                raise LockedError(f"{self.path.parent}: this {what} is in use by {holder}; wait for it to finish "
                                  "or stop it, then try again") from None
            except BaseException:
                os.close(fd)
                raise
            try:  # the holder before us may have removed the file between our open and our lock
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                os.unlink(self.path)  # still ours: nobody else can hold it while we do
            except FileNotFoundError:
                pass
            os.close(fd)  # closing the descriptor drops the lock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "DirectoryLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _describe(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["since"])))
        return f"harnessopt pid {info['pid']} on {info['host']} (since {since})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another harnessopt process"
