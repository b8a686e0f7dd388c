"""What keeps one rollout from affecting the worker or the next rollout.

`Baseline` puts back what harness code may change in the process (module globals, streams,
signal handlers, timers, the recursion limit) and says when something cannot be put back, so the
worker retires; `CapturedOutput` points fds 1 and 2 at files for one rollout; `harden_process`
sets the limits and crash reporting a worker runs under.
"""

from __future__ import annotations

import faulthandler
import os
import resource
import signal
import sys
import tempfile
import threading

CAPTURE_LIMIT = 64 * 1024  # bytes of stdout/stderr kept per rollout (head and tail)
FILE_SIZE_LIMIT = 64 * 1024 * 1024  # no file a harness writes (stdout included) may exceed this
MAX_RECURSION = 10_000  # sys.setrecursionlimit is capped here: deeper C recursion overflows the stack
# Modules whose globals the worker itself relies on: a harness that rebinds anything in them
# (monkey-patching json.dumps, builtins.len, ...) gets the worker retired after its rollout, so
# the next rollout (maybe another candidate's) starts in a clean process.
WATCHED_MODULES = ("builtins", "json", "asyncio", "asyncio.tasks", "asyncio.events", "os", "io", "socket",
                   "traceback", "time", "harnessopt.worker.ipc", "harnessopt.worker.context",
                   "harnessopt.worker.loop", "harnessopt.worker.isolation", "harnessopt.worker.guard",
                   "harnessopt.examples")
WATCHED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP", "SIGALRM", "SIGUSR1",
                                                    "SIGUSR2", "SIGPIPE", "SIGXFSZ", "SIGCHLD", "SIGVTALRM",
                                                    "SIGPROF") if hasattr(signal, n))

_MISSING = object()
_set_recursion_limit = sys.setrecursionlimit  # the original, before the capped one replaces it


class Baseline:
    """What a rollout may not leave changed for the next one: restored where possible, else the
    worker is retired (the parent replaces it) so no candidate inherits another's patches."""

    def __init__(self) -> None:
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.recursion = sys.getrecursionlimit()
        self.threads = threading.active_count()
        self.environ = dict(os.environ)
        self.modules = {name: dict(vars(sys.modules[name])) for name in WATCHED_MODULES if name in sys.modules}
        self.signals = {sig: signal.getsignal(sig) for sig in WATCHED_SIGNALS}

    def restore_and_check(self) -> str | None:
        """Put back what can be put back; the reasons to retire the worker, or None."""
        # Module globals first (builtins first of all) and without calling any builtin before
        # they are back: the rest of this method and the worker rely on them.
        changes = []
        for name, saved in self.modules.items():
            now = sys.modules[name].__dict__
            changed = [k for k in saved.keys() | now.keys() if now.get(k, _MISSING) is not saved.get(k, _MISSING)]
            for key in changed:  # put it back, so the worker can still report this rollout
                if key in saved:
                    now[key] = saved[key]
                else:
                    del now[key]
            if changed:
                changes.append((name, changed))
        sys.stdin, sys.stdout, sys.stderr = self.streams
        _set_recursion_limit(self.recursion)
        for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            signal.setitimer(timer, 0)
        reasons = [f"{name}.{sorted(changed)[0]} was changed" for name, changed in changes]
        if threading.active_count() > self.threads:
            reasons.append(f"{threading.active_count() - self.threads} thread(s) still running")
        if dict(os.environ) != self.environ:
            reasons.append("os.environ was changed")
        if any(signal.getsignal(sig) is not handler for sig, handler in self.signals.items()):
            reasons.append("a signal handler was changed")
        return "; ".join(reasons) or None


class CapturedOutput:
    """Point fds 1 and 2 at files for one rollout, so os.write and child processes are caught."""

    def __init__(self, scratch: str):
        self.scratch = scratch
        self.stdout = ""
        self.stderr = ""

    def __enter__(self) -> "CapturedOutput":
        sys.stdout.flush()
        sys.stderr.flush()
        self.files = [tempfile.TemporaryFile(dir=self.scratch) for _ in range(2)]
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.files[0].fileno(), 1)
        os.dup2(self.files[1].fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os.dup2(self.saved[0], 1)
        os.dup2(self.saved[1], 2)
        for fd in self.saved:
            os.close(fd)
        self.stdout, self.stderr = (_read_capped(f) for f in self.files)
        for f in self.files:
            f.close()


def _read_capped(f) -> str:
    size = f.seek(0, os.SEEK_END)
    f.seek(0)
    if size <= CAPTURE_LIMIT:
        return f.read().decode("utf-8", "replace")
    half = CAPTURE_LIMIT // 2
    head = f.read(half).decode("utf-8", "replace")
    f.seek(size - half)
    tail = f.read(half).decode("utf-8", "replace")
    return f"{head}\n[... {size - 2 * half} bytes cut ...]\n{tail}"


def harden_process(memory_mb: int, log_fd: int) -> None:
    """Limits, death with the parent and crash reporting for a worker (before any harness runs)."""
    _apply_limits(memory_mb)
    _die_with_parent()
    _harden_interpreter(log_fd)


def _apply_limits(memory_mb: int) -> None:
    if memory_mb > 0:
        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_SIZE_LIMIT, FILE_SIZE_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Writing past the file-size limit then fails with an OSError in the harness instead of
    # killing the worker with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _die_with_parent() -> None:
    """Linux: SIGKILL this worker when the parent dies (a killed optimizer leaves no workers behind)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before prctl took effect
        os._exit(1)


_FAULT_LOG = None


def _harden_interpreter(log_fd: int) -> None:
    # A C-level crash (stack overflow from deep recursion) writes its Python stack to the worker
    # log, whose tail the parent puts in the rollout's error.
    global _FAULT_LOG
    _FAULT_LOG = os.fdopen(os.dup(log_fd), "w")
    faulthandler.enable(file=_FAULT_LOG)

    def setrecursionlimit(limit: int) -> None:
        """Capped at harnessopt.worker.isolation.MAX_RECURSION: deeper recursion would crash the worker."""
        _set_recursion_limit(min(int(limit), MAX_RECURSION))

    sys.setrecursionlimit = setrecursionlimit
