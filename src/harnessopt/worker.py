"""A sandboxed worker process: runs harness code, one rollout at a time, for many rollouts.

Started by the runner with `python -m harnessopt.worker --fd N ...` in its own session, with an
environment that holds no API keys, resource limits, and a private socket to the parent. It
never sees a task's expected answer: it gets the public task, the harness source, and the
train-split examples; every model or tool call is a request to the parent.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from typing import Any

from harnessopt import ipc
from harnessopt.context import ContextCallError, HarnessContext, TaskView
from harnessopt.examples import ExampleIndex
from harnessopt.records import Example

CAPTURE_LIMIT = 64 * 1024  # bytes of stdout/stderr kept per rollout (head and tail)
FILE_SIZE_LIMIT = 64 * 1024 * 1024  # no file a harness writes (stdout included) may exceed this


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

    # ---------------------------------------------------------------- wire

    # Every message names its rollout, so a task a harness left running cannot act in the next one.
    def notify(self, job_id: str, op: str, args: dict[str, Any]) -> None:
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
        with _CapturedOutput(scratch) as captured:
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
                if not isinstance(answer, str):
                    raise TypeError(
                        f"run() returned {type(answer).__name__}, expected str: return the answer as text"
                    )
                result["answer"] = answer
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
        await ipc.send(self.writer, {"type": "done", "job_id": job["job_id"], **result})

    def _load_run(self, source: str, path: str):
        code = self.compiled.get(source)
        if code is None:
            code = self.compiled[source] = compile(source, path, "exec")
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
    # Writing past the file-size limit then fails with an OSError in the harness instead of
    # killing the worker with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


async def _main(fd: int, scratch_root: str) -> None:
    sock = socket.socket(fileno=fd)
    reader, writer = await asyncio.open_connection(sock=sock, limit=ipc.MAX_MESSAGE_BYTES)
    await Worker(reader, writer, scratch_root).serve()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="harnessopt.worker")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--memory-mb", type=int, default=0)
    parser.add_argument("--scratch", required=True)
    args = parser.parse_args(argv)
    os.chdir(args.scratch)
    _apply_limits(args.memory_mb)
    asyncio.run(_main(args.fd, args.scratch))


if __name__ == "__main__":
    main()
