"""A sandboxed worker process: runs harness code, one rollout at a time, for many rollouts.

Started by the runner with `python -m harnessopt.worker --fd N ...` in its own session, with an
environment that holds no API keys, resource limits, and a private socket to the parent. It
never sees a task's expected answer: it gets the public task, the harness source, and the
train-split examples; every model or tool call is a request to the parent.
"""

from __future__ import annotations

import argparse
import asyncio
import linecache
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import traceback
from typing import Any

from harnessopt import ipc
from harnessopt.context import ContextCallError, HarnessContext, TaskView
from harnessopt.examples import ExampleIndex
from harnessopt.records import Example

CAPTURE_LIMIT = 64 * 1024  # bytes of stdout/stderr kept per rollout (head and tail)
FILE_SIZE_LIMIT = 64 * 1024 * 1024  # no file a harness writes (stdout included) may exceed this
MAX_ANSWER_CHARS = 1_000_000  # a longer answer is a failed rollout, not a 100 MB trace
MAX_EVENTS_PER_ROLLOUT = 20_000  # log lines / retrieval records sent to the parent per rollout
MAX_RECURSION = 10_000  # sys.setrecursionlimit is capped here: deeper C recursion overflows the stack
# Modules whose globals the worker itself relies on: a harness that rebinds anything in them
# (monkey-patching json.dumps, builtins.len, ...) gets the worker retired after its rollout, so
# the next rollout (maybe another candidate's) starts in a clean process.
_WATCHED_MODULES = ("builtins", "json", "asyncio", "asyncio.tasks", "asyncio.events", "os", "io", "socket",
                    "traceback", "time", "harnessopt.ipc", "harnessopt.context", "harnessopt.worker",
                    "harnessopt.examples")
_WATCHED_SIGNALS = tuple(getattr(signal, n) for n in ("SIGTERM", "SIGINT", "SIGHUP", "SIGALRM", "SIGUSR1",
                                                     "SIGUSR2", "SIGPIPE", "SIGXFSZ", "SIGCHLD", "SIGVTALRM",
                                                     "SIGPROF") if hasattr(signal, n))


class Worker:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, scratch_root: str):
        self.reader = reader
        self.writer = writer
        self.scratch_root = scratch_root
        self.pending: dict[int, asyncio.Future] = {}
        self.next_id = 0
        self.indexes: dict[str, tuple[ExampleIndex, list[str] | None]] = {}
        self.compiled: dict[str, Any] = {}
        self.current: asyncio.Task | None = None
        self.events_sent: dict[str, int] = {}
        self.baseline = _Baseline()

    # ---------------------------------------------------------------- wire

    # Every message names its rollout, so a task a harness left running cannot act in the next one.
    def notify(self, job_id: str, op: str, args: dict[str, Any]) -> None:
        sent = self.events_sent.get(job_id, 0)
        if sent >= MAX_EVENTS_PER_ROLLOUT:
            return  # a harness logging in a tight loop must not fill the parent's memory
        self.events_sent[job_id] = sent + 1
        self.writer.write(ipc.encode({"type": "event", "job_id": job_id, "op": op, "args": args}))

    async def request(self, job_id: str, op: str, args: dict[str, Any]) -> Any:
        self.next_id += 1
        call_id = self.next_id
        future = asyncio.get_running_loop().create_future()
        self.pending[call_id] = future
        msg = {"type": "call", "job_id": job_id, "id": call_id, "op": op, "args": args}
        await ipc.send(self.writer, msg)
        reply = await future
        if not reply.get("ok"):
            raise ContextCallError(reply.get("error", "call failed"))
        return reply.get("result")

    async def serve(self) -> None:
        self.serve_task = asyncio.current_task()
        await ipc.send(self.writer, {"type": "ready", "pid": os.getpid()})
        while True:
            msg = await ipc.recv(self.reader)
            if msg is None or msg.get("type") == "shutdown":
                return
            kind = msg.get("type")
            if kind == "reply":
                future = self.pending.pop(msg["id"], None)
                if future is not None and not future.done():
                    future.set_result(msg)
            elif kind == "examples":
                examples = [Example.model_validate(e) for e in msg["examples"]]
                self.indexes[msg["key"]] = (ExampleIndex(examples), msg.get("labels"))
            elif kind == "run":
                self.current = asyncio.create_task(self.run_job(msg))

    # ---------------------------------------------------------------- one rollout

    async def run_job(self, job: dict[str, Any]) -> None:
        started = time.time()
        scratch = tempfile.mkdtemp(prefix="rollout-", dir=self.scratch_root)
        os.chdir(scratch)
        result: dict[str, Any] = {"answer": None, "error": None, "status": "ok"}
        retire = None
        with _CapturedOutput(scratch) as captured:
            try:
                try:
                    run = self._load_run(job["source"], job["path"])
                    index, labels = self.indexes[job["examples_key"]]
                    job_id = job["job_id"]
                    ctx = HarnessContext(
                        model=job["model"],
                        labels=labels,
                        examples=index,
                        request=lambda op, args: self.request(job_id, op, args),
                        notify=lambda op, args: self.notify(job_id, op, args),
                    )
                    task = TaskView(**job["task"])
                    answer = await asyncio.wait_for(_guarded(run(task, ctx)), timeout=job["timeout_s"])
                finally:
                    retire = self.baseline.restore_and_check()
                if not isinstance(answer, str):
                    raise TypeError(
                        f"run() returned {type(answer).__name__}, expected str: return the answer as text"
                    )
                if len(answer) > MAX_ANSWER_CHARS:
                    raise ValueError(f"run() returned {len(answer):,} characters; answers are limited to "
                                     f"{MAX_ANSWER_CHARS:,}: return only the answer")
                result["answer"] = str.__str__(answer)  # a plain str, whatever subclass came back
            except _HarnessExit as exc:
                result["status"] = "error"
                result["error"] = _error(exc.kind, exc.message, exc.tb)
            except asyncio.TimeoutError:
                result["status"] = "timeout"
                result["error"] = _error("Timeout", f"rollout exceeded {job['timeout_s']} s", None)
            except BaseException as exc:  # noqa: BLE001 - harness code may raise anything, SystemExit too
                result["status"] = "error"
                result["error"] = _error(type(exc).__name__, str(exc), traceback.format_exc())
        result["stdout"], result["stderr"] = captured.stdout, captured.stderr
        result["wall_s"] = time.time() - started
        _cancel_leftover_tasks(keep={self.serve_task, asyncio.current_task()})
        os.chdir(self.scratch_root)
        shutil.rmtree(scratch, ignore_errors=True)
        self.events_sent.pop(job["job_id"], None)
        if retire:
            result["retire"] = retire
        await ipc.send(self.writer, _done_message(job["job_id"], result))

    def _load_run(self, source: str, path: str):
        code = self.compiled.get(source)
        if code is None:
            code = self.compiled[source] = compile(source, path, "exec")
        # Tracebacks show the harness's own lines (the file itself is not readable from here).
        linecache.cache[path] = (len(source), None, source.splitlines(True), path)
        namespace: dict[str, Any] = {"__name__": "harness", "__file__": path}
        exec(code, namespace)  # fresh globals per rollout: no state leaks between tasks
        return namespace["run"]


class _HarnessExit(Exception):
    """SystemExit / KeyboardInterrupt raised by harness code, carried as an ordinary exception."""

    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.kind = type(exc).__name__
        self.message = f"harness raised {self.kind}({exc})"
        self.tb = traceback.format_exc()


async def _guarded(coro):
    # asyncio lets SystemExit escape a task and stop the whole event loop (the worker);
    # catching it inside the task keeps it one rollout's error.
    try:
        return await coro
    except (SystemExit, KeyboardInterrupt) as exc:
        raise _HarnessExit(exc) from None


def _done_message(job_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The rollout's result as a message that surely encodes (an answer with lone surrogates, say,
    becomes a failed rollout instead of a worker that never answers)."""
    msg = {"type": "done", "job_id": job_id, **result}
    try:
        ipc.encode(msg)
        return msg
    except (UnicodeError, ValueError, TypeError, ipc.ProtocolError) as exc:
        clean = {k: (v.encode("utf-8", "replace").decode("utf-8") if isinstance(v, str) else v)
                 for k, v in msg.items()}
        clean.update(answer=None, status="error",
                     error=_error("UnserialisableResult", f"the rollout's result cannot be sent to the parent: "
                                  f"{type(exc).__name__}: {str(exc)[:200]}; return plain text", None))
        return clean


class _Baseline:
    """What a rollout may not leave changed for the next one: restored where possible, else the
    worker is retired (the parent replaces it) so no candidate inherits another's patches."""

    def __init__(self) -> None:
        self.streams = (sys.stdin, sys.stdout, sys.stderr)
        self.recursion = sys.getrecursionlimit()
        self.threads = threading.active_count()
        self.environ = dict(os.environ)
        self.modules = {name: dict(vars(sys.modules[name])) for name in _WATCHED_MODULES if name in sys.modules}
        self.signals = {sig: signal.getsignal(sig) for sig in _WATCHED_SIGNALS}

    def restore_and_check(self) -> str | None:
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


_MISSING = object()
_set_recursion_limit = sys.setrecursionlimit  # the original, before the capped one replaces it


def _cancel_leftover_tasks(keep: set) -> None:
    for task in asyncio.all_tasks():
        if task not in keep:
            task.cancel()


def _error(kind: str, message: str, tb: str | None) -> dict[str, Any]:
    return {"type": kind, "message": message[:4000], "traceback": tb[-8000:] if tb else None}


class _CapturedOutput:
    """Point fds 1 and 2 at files for one rollout, so os.write and child processes are caught."""

    def __init__(self, scratch: str):
        self.scratch = scratch
        self.stdout = ""
        self.stderr = ""

    def __enter__(self) -> "_CapturedOutput":
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


def _harden_interpreter(log_fd: int) -> None:
    # A C-level crash (stack overflow from deep recursion) writes its Python stack to the worker
    # log, whose tail the parent puts in the rollout's error.
    import faulthandler

    global _FAULT_LOG
    _FAULT_LOG = os.fdopen(os.dup(log_fd), "w")
    faulthandler.enable(file=_FAULT_LOG)

    def setrecursionlimit(limit: int) -> None:
        """Capped at harnessopt.worker.MAX_RECURSION: deeper recursion would crash the worker."""
        _set_recursion_limit(min(int(limit), MAX_RECURSION))

    sys.setrecursionlimit = setrecursionlimit


_FAULT_LOG = None


async def _main(fd: int, scratch_root: str) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=ipc.MAX_MESSAGE_BYTES)
    await Worker(reader, writer, scratch_root).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="harnessopt.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--scratch", required=True)
    parser.add_argument("--protect", action="append", default=[], help="a folder harness code may never read")
    parser.add_argument("--no-guard", action="store_true", help="do not install the audit-hook guard")
    args = parser.parse_args(argv)
    os.chdir(args.scratch)
    _apply_limits(args.memory_mb)
    _die_with_parent()
    _harden_interpreter(2)
    if not args.no_guard:
        from harnessopt.sandbox import install_guard

        install_guard([args.scratch], deny_roots=args.protect, allow_processes=False)
    asyncio.run(_main(args.fd, args.scratch))


if __name__ == "__main__":
    main()
