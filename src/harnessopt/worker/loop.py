"""The worker's message loop: runs harness code, one rollout at a time, for many rollouts.

It never sees a task's expected answer: it gets the public task, the harness source, and the
train-split examples; every model or tool call is a request to the parent.
"""

from __future__ import annotations

import asyncio
import linecache
import os
import shutil
import tempfile
import time
import traceback
from typing import Any

from harnessopt.examples import ExampleIndex
from harnessopt.records import Example
from harnessopt.worker import ipc
from harnessopt.worker.context import ContextCallError, HarnessContext, TaskView
from harnessopt.worker.isolation import Baseline, CapturedOutput
from harnessopt.worker.workspace import FOLDER as WORKSPACE_FOLDER, Workspace, materialise

MAX_ANSWER_CHARS = 1_000_000  # a longer answer is a failed rollout, not a 100 MB trace
MAX_EVENTS_PER_ROLLOUT = 20_000  # log lines / retrieval records sent to the parent per rollout


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
        self.baseline = Baseline()

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
        workspace: Workspace | None = None
        with CapturedOutput(scratch) as captured:
            try:
                try:
                    run = self._load_run(job["source"], job["path"])
                    index, labels = self.indexes[job["examples_key"]]
                    job_id = job["job_id"]
                    fields = dict(job["task"])
                    files = fields.pop("workspace", None)
                    task = TaskView(**fields)
                    request = lambda op, args: self.request(job_id, op, args)  # noqa: E731
                    notify = lambda op, args: self.notify(job_id, op, args)  # noqa: E731
                    if files is not None:  # the task's file tree, also the harness's working directory
                        root = os.path.join(scratch, WORKSPACE_FOLDER)
                        materialise(root, files)
                        os.chdir(root)
                        workspace = Workspace(root, files, request, notify)
                    ctx = HarnessContext(model=job["model"], labels=labels, examples=index, request=request,
                                         notify=notify, task_id=task.id, workspace=workspace)
                    answer = await asyncio.wait_for(_guarded(run(task, ctx)), timeout=job["timeout_s"])
                finally:
                    retire = self.baseline.restore_and_check()
                    if workspace is not None:  # what the scorer's check runs on, even after a failure
                        result["workspace"] = _changes(workspace)
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


def _cancel_leftover_tasks(keep: set) -> None:
    for task in asyncio.all_tasks():
        if task not in keep:
            task.cancel()


def _changes(workspace: Workspace) -> dict[str, Any]:
    try:
        return workspace.changes().model_dump()
    except Exception as exc:  # noqa: BLE001 - a workspace the harness wrecked is reported, not fatal
        return {"changed": {}, "deleted": [], "omitted": [f"(workspace unreadable: {type(exc).__name__})"]}


def _error(kind: str, message: str, tb: str | None) -> dict[str, Any]:
    return {"type": kind, "message": message[:4000], "traceback": tb[-8000:] if tb else None}
