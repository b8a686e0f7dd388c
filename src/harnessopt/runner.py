"""Run one harness on many tasks in sandboxed, reused worker processes.

The runner knows harness source, public tasks and a broker; it knows nothing of scoring,
budgets or the meta-agent. Rollouts go through the `Executor` seam: `LocalProcessExecutor`
(a pool of worker processes on this machine) is the default; a distributed engine can
implement the same two methods without anything above the runner changing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Protocol

from pydantic import Field

from harnessopt.records import (
    Example,
    LogLine,
    ModelCall,
    ModelParams,
    Record,
    RolloutError,
    RolloutStatus,
    Task,
    ToolCall,
    Usage,
    WorkspaceChanges,
)
from harnessopt.rollout_limits import CallLimits, apply_done, record_event
from harnessopt.worker import ipc

# Environment variables a worker may inherit. Everything else (API keys above all) stays out.
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


class RolloutJob(Record):
    """One rollout to run: a harness on one public task (never its target)."""

    job_id: str
    candidate_id: str
    harness_source: str
    harness_path: str
    harness_hash: str
    task: Task
    trial: int
    model: str
    params: ModelParams = Field(default_factory=ModelParams)
    timeout_s: float = 60.0
    examples_key: str


class RolloutOutcome(Record):
    """What came back from running a job: answer or error, and everything recorded on the way."""

    answer: str | None = None
    error: RolloutError | None = None
    status: RolloutStatus = "ok"
    stdout: str = ""
    stderr: str = ""
    model_calls: list[ModelCall] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    logs: list[LogLine] = Field(default_factory=list)
    workspace_changes: WorkspaceChanges | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    wall_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)


class Broker(Protocol):
    """The parent-side service a rollout's model and tool calls go to (and are recorded by)."""

    def examples(self, key: str) -> tuple[list[Example], list[str] | None]: ...

    async def model_call(self, job: RolloutJob, kind: str, args: dict[str, Any]) -> ModelCall: ...

    async def tool_call(self, job: RolloutJob, name: str, args: dict[str, Any]) -> ToolCall: ...


class Executor(Protocol):
    async def run(self, job: RolloutJob, broker: Broker) -> RolloutOutcome: ...

    async def close(self) -> None: ...


class WorkerDied(RuntimeError):
    pass


class _WorkerHandle:
    """One live worker process and its socket."""

    def __init__(self, proc: asyncio.subprocess.Process, reader, writer, log_path: Path):
        self.proc = proc
        self.log_path = log_path
        self.reader = reader
        self.writer = writer
        self.examples_loaded: set[str] = set()
        self.alive = True

    @classmethod
    async def spawn(cls, *, memory_mb: int, scratch: str, guard: bool = True) -> "_WorkerHandle":
        from harnessopt.sandbox import namespace_prefix, protected_roots

        parent_sock, child_sock = socket.socketpair()
        child_fd = child_sock.fileno()
        # Each worker gets its own scratch folder (the only place its harness code may write); its
        # log lives beside it, out of the harness's reach.
        home = tempfile.mkdtemp(prefix="worker-", dir=scratch)
        cmd = [
            *namespace_prefix(), sys.executable, "-m", "harnessopt.worker",
            "--fd", str(child_fd), "--memory-mb", str(memory_mb), "--scratch", home,
            *[arg for root in protected_roots() for arg in ("--protect", root)],
            *([] if guard else ["--no-guard"]),
        ]
        # The worker's own stderr (outside rollouts, which capture theirs) goes to a log file whose
        # tail explains a worker that dies.
        log_path = Path(home + ".log")
        with open(log_path, "wb") as log:
            proc = await asyncio.create_subprocess_exec(
                *cmd,
                pass_fds=[child_fd],
                env=_worker_env(home),
                cwd=home,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # its own process group: a timeout kills all it started
            )
        child_sock.close()
        reader, writer = await asyncio.open_connection(sock=parent_sock, limit=ipc.MAX_MESSAGE_BYTES)
        handle = cls(proc, reader, writer, log_path)
        hello = await asyncio.wait_for(ipc.recv(reader), timeout=60)
        if not hello or hello.get("type") != "ready":
            handle.kill()
            raise WorkerDied(f"worker process failed to start: {handle.log_tail() or 'no output'}")
        return handle

    def log_tail(self, limit: int = 600) -> str:
        try:
            text = self.log_path.read_bytes()[-limit:].decode("utf-8", "replace").strip()
        except OSError:
            return ""
        return " | ".join(text.splitlines()[-4:])

    def kill(self) -> None:
        self.alive = False
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.writer.close()

    async def run(self, job: RolloutJob, broker: Broker, kill_grace_s: float) -> RolloutOutcome:
        out = RolloutOutcome(started_at=time.time())
        in_flight: set[asyncio.Task] = set()
        limits = CallLimits()
        try:
            if job.examples_key not in self.examples_loaded:
                examples, labels = broker.examples(job.examples_key)
                await ipc.send(self.writer, {
                    "type": "examples", "key": job.examples_key,
                    "examples": [e.model_dump(mode="json") for e in examples], "labels": labels,
                })
                self.examples_loaded.add(job.examples_key)
            await ipc.send(self.writer, {
                "type": "run", "job_id": job.job_id, "source": job.harness_source,
                "path": job.harness_path, "task": job.task.model_dump(mode="json"),
                "model": job.model, "timeout_s": job.timeout_s, "examples_key": job.examples_key,
            })
            # The worker enforces the timeout itself for cooperative code; the parent kills it
            # a little later for code that never yields (busy loops, blocking calls).
            deadline = time.monotonic() + job.timeout_s + kill_grace_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise asyncio.TimeoutError
                try:
                    msg = await asyncio.wait_for(ipc.recv(self.reader), timeout=remaining)
                except ValueError as exc:  # not JSON / not UTF-8: harness code wrote to the socket
                    raise ipc.ProtocolError(f"unreadable message from the worker ({type(exc).__name__})") from None
                if msg is None:
                    raise WorkerDied(await self._exit_description())
                if not isinstance(msg, dict):
                    raise ipc.ProtocolError(f"malformed message from the worker: {type(msg).__name__}")
                if msg.get("job_id") != job.job_id:
                    continue  # a straggler from an earlier rollout: ignore
                kind = msg.get("type")
                try:
                    if kind == "call":
                        task = asyncio.create_task(self._serve_call(job, broker, msg, out, limits))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                    elif kind == "event":
                        record_event(out, msg, limits)
                    elif kind == "done":
                        if apply_done(out, msg):
                            self.retire(out, str(msg.get("retire"))[:300])
                        break
                except (TypeError, ValueError, KeyError, AttributeError) as exc:
                    raise ipc.ProtocolError(f"malformed {kind!r} message from the worker: {type(exc).__name__}: "
                                            f"{str(exc)[:200]}") from None
        except asyncio.TimeoutError:
            self.kill()
            out.status = "timeout"
            out.error = RolloutError(
                type="Timeout",
                message=f"rollout did not finish within {job.timeout_s:g} s; the worker was killed",
            )
        except (WorkerDied, ConnectionError, ipc.ProtocolError) as exc:
            self.kill()
            protocol = isinstance(exc, ipc.ProtocolError)
            out.answer = None
            out.status = "error"
            out.error = RolloutError(type="WorkerProtocolError" if protocol else "WorkerDied",
                                     message=f"{exc}; the worker was replaced" if protocol else str(exc))
        finally:
            for task in in_flight:
                task.cancel()
        out.finished_at = time.time()
        out.wall_s = out.finished_at - out.started_at
        for call in out.model_calls:
            out.usage.add(Usage(
                calls=1, failed_calls=int(call.error is not None), prompt_tokens=call.prompt_tokens,
                completion_tokens=call.completion_tokens, cost_usd=call.cost_usd,
            ))
        return out

    def retire(self, out: RolloutOutcome, reason: str) -> None:
        """Replace this worker after the rollout: harness code left shared state changed."""
        self.alive = False
        self.kill()
        out.logs.append(LogLine(t=time.time(), msg=f"[harnessopt] worker replaced after this rollout: {reason}"))

    async def _serve_call(self, job: RolloutJob, broker: Broker, msg: dict, out: RolloutOutcome,
                          limits: "CallLimits | None" = None) -> None:
        op, args = msg.get("op"), msg.get("args") or {}
        reply: dict[str, Any] = {"type": "reply", "id": msg.get("id")}
        limits = limits or CallLimits()
        refused = limits.refusal(op, args)
        if refused is not None:
            reply.update(ok=False, error=refused)
            if limits.refusals <= 3:  # say it in the trace, without a line per refused call
                out.logs.append(LogLine(t=time.time(), msg=f"[harnessopt] refused a {str(op)[:20]} call: {refused}"))
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ipc.send(self.writer, reply)
            return
        try:
            async with limits.slots:
                await self._dispatch(job, broker, op, args, out, reply)
        except Exception as exc:  # noqa: BLE001 - a broker failure becomes the harness's error
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}")
        with contextlib.suppress(ConnectionError, RuntimeError, ipc.ProtocolError, ValueError, TypeError):
            try:
                await ipc.send(self.writer, reply)
            except (ipc.ProtocolError, ValueError, TypeError) as exc:  # e.g. a tool result too large to send
                await ipc.send(self.writer, {"type": "reply", "id": msg.get("id"), "ok": False,
                                             "error": f"the result could not be sent back: {type(exc).__name__}"})

    async def _dispatch(self, job: RolloutJob, broker: Broker, op: Any, args: dict, out: RolloutOutcome,
                        reply: dict[str, Any]) -> None:
        if op in ("chat", "complete"):
            call = await broker.model_call(job, op, args)
            out.model_calls.append(call)
            reply.update(ok=call.error is None, result=call.response, error=call.error)
        elif op == "tool":
            tool = await broker.tool_call(job, str(args.get("name")), dict(args.get("args") or {}))
            out.tool_calls.append(tool)
            reply.update(ok=tool.error is None, result=tool.result, error=tool.error)
        else:
            reply.update(ok=False, error=f"unknown context operation {str(op)[:40]!r}")

    async def _exit_description(self) -> str:
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout=5)
        except asyncio.TimeoutError:
            return "worker closed its connection during the rollout"
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            if name in ("SIGSEGV", "SIGBUS", "SIGABRT", "SIGILL"):
                return (f"worker process crashed with {name} during the rollout (a crash in C code: most "
                        "often a stack overflow from very deep recursion, or a faulty extension module)")
            return (f"worker process was killed by {name} during the rollout "
                    "(memory limit, or the harness killed its own process)")
        tail = self.log_tail()
        return (f"worker process exited with code {code} during the rollout (the harness may have called os._exit)"
                + (f"; worker log: {tail}" if tail else ""))


def _worker_env(scratch: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    package_root = str(Path(__file__).resolve().parents[1])
    env.update(
        HOME=scratch,
        TMPDIR=scratch,
        PYTHONPATH=package_root,
        PYTHONDONTWRITEBYTECODE="1",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
    )
    return env


_SCRATCH_PREFIX = "harnessopt-scratch-"


def _remove_stale_scratch() -> None:
    """Scratch folders of executors whose process died without closing (SIGKILL) are removed."""
    for path in Path(tempfile.gettempdir()).glob(f"{_SCRATCH_PREFIX}*-*"):
        pid = path.name[len(_SCRATCH_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass


class LocalProcessExecutor:
    """A pool of reused worker processes on this machine; at most `concurrency` at once."""

    def __init__(self, concurrency: int = 2, *, memory_mb: int = 2048, kill_grace_s: float = 2.0,
                 guard: bool = True):
        """`guard=False` leaves out the audit-hook guard in workers (see docs/SECURITY.md); the
        process limits, environment allow-list and scratch directories stay."""
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.concurrency = concurrency
        self.memory_mb = memory_mb
        self.kill_grace_s = kill_grace_s
        self.guard = guard
        self._idle: list[_WorkerHandle] = []
        self._slots = asyncio.Semaphore(concurrency)
        self._all: set[_WorkerHandle] = set()
        _remove_stale_scratch()
        self._scratch = tempfile.mkdtemp(prefix=f"{_SCRATCH_PREFIX}{os.getpid()}-")
        self.spawned = 0
        from harnessopt.sandbox import parent_protected

        self._protection = parent_protected()  # keys in this process: not readable by workers
        self._protection.__enter__()

    async def run(self, job: RolloutJob, broker: Broker) -> RolloutOutcome:
        async with self._slots:
            worker = self._idle.pop() if self._idle else await self._spawn()
            try:
                outcome = await worker.run(job, broker, self.kill_grace_s)
            except BaseException:
                worker.kill()
                self._all.discard(worker)
                raise
            if worker.alive:
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(worker.proc.wait(), timeout=5)
            return outcome

    async def _spawn(self) -> _WorkerHandle:
        worker = await _WorkerHandle.spawn(memory_mb=self.memory_mb, scratch=self._scratch, guard=self.guard)
        self._all.add(worker)
        self.spawned += 1
        return worker

    async def close(self) -> None:
        for worker in list(self._all):
            with contextlib.suppress(Exception):
                await ipc.send(worker.writer, {"type": "shutdown"})
        for worker in list(self._all):
            try:
                await asyncio.wait_for(worker.proc.wait(), timeout=2)
            except (asyncio.TimeoutError, Exception):
                worker.kill()
            with contextlib.suppress(Exception):
                worker.writer.close()
        self._all.clear()
        self._idle.clear()
        shutil.rmtree(self._scratch, ignore_errors=True)
        if self._protection is not None:
            self._protection.__exit__(None, None, None)
            self._protection = None

    async def __aenter__(self) -> "LocalProcessExecutor":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
