"""The Ray side of the ray executor: one actor that hosts one sandboxed worker process.

A `RolloutHost` runs rollouts with the runner's own `LocalProcessExecutor` (one worker process,
reused), so the guard, limits, namespaces and timeouts are exactly those of a local run. Its
broker is a proxy: each model or tool call the harness makes becomes a `BrokerRequest` that the
driver collects with `next()`, serves with its real broker (gateway, budget, tools) and answers
with `reply()`. The driver pulls; the host never needs to reach the driver, and no key ever
reaches the host.

One call of `start()` or `next()` returns a `HostBatch`: the requests made since the last one,
and the outcome once the rollout is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
from typing import Any, Literal

from pydantic import Field

from harnessopt.records import Example, ModelCall, Record, RolloutError, ToolCall
from harnessopt.runner import LocalProcessExecutor, RolloutJob, RolloutOutcome


class BrokerRequest(Record):
    """A model or tool call a harness made on a Ray worker, for the driver's broker to serve."""

    id: int
    op: Literal["model", "tool"]
    name: str  # "chat" / "complete" for a model call, the tool's name for a tool call
    args: dict[str, Any] = Field(default_factory=dict)


class HostBatch(Record):
    requests: list[BrokerRequest] = Field(default_factory=list)
    outcome: RolloutOutcome | None = None


class HostInfo(Record):
    pid: int
    hostname: str
    node_id: str
    version: str


class _BrokerError(Exception):
    """A broker failure on the driver, raised here under the original exception's name, so the
    runner words it for the harness exactly as in a local run ("ValueError: ...")."""

    @classmethod
    def named(cls, error: str) -> Exception:
        name, _, message = error.partition(": ")
        if not name.isidentifier():
            return cls(error)
        return type(name, (cls,), {})(message)


class _Channel:
    """The requests and the outcome of one rollout, waiting for the driver to collect them."""

    def __init__(self) -> None:
        self.requests: list[BrokerRequest] = []
        self.outcome: RolloutOutcome | None = None
        self.ready = asyncio.Event()
        self.waiting: dict[int, asyncio.Future] = {}
        self.task: asyncio.Task | None = None

    def push(self, request: BrokerRequest) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiting[request.id] = future
        self.requests.append(request)
        self.ready.set()
        return future

    def finish(self, outcome: RolloutOutcome) -> None:
        self.outcome = outcome
        self.ready.set()

    async def take(self) -> HostBatch:
        await self.ready.wait()
        self.ready.clear()
        batch = HostBatch(requests=self.requests, outcome=self.outcome)
        self.requests = []
        return batch


class _ProxyBroker:
    """The runner's Broker on a Ray worker: examples are held here, calls go to the driver."""

    def __init__(self, host: "RolloutHost", channel: _Channel):
        self.host = host
        self.channel = channel

    def examples(self, key: str) -> tuple[list[Example], list[str] | None]:
        return self.host.examples[key]

    async def model_call(self, job: RolloutJob, kind: str, args: dict[str, Any]) -> ModelCall:
        request = BrokerRequest(id=next(self.host.ids), op="model", name=kind, args=args)
        return ModelCall.model_validate(await self.channel.push(request))

    async def tool_call(self, job: RolloutJob, name: str, args: dict[str, Any]) -> ToolCall:
        request = BrokerRequest(id=next(self.host.ids), op="tool", name=name, args=args)
        return ToolCall.model_validate(await self.channel.push(request))


class RolloutHost:
    """A Ray actor (made with `ray.remote(RolloutHost)` by the driver) running one worker process."""

    def __init__(self, memory_mb: int = 2048, kill_grace_s: float = 2.0, guard: bool = True):
        self.executor = LocalProcessExecutor(1, memory_mb=memory_mb, kill_grace_s=kill_grace_s, guard=guard)
        self.examples: dict[str, tuple[list[Example], list[str] | None]] = {}
        self.channels: dict[str, _Channel] = {}
        self.ids = itertools.count(1)

    def hello(self) -> HostInfo:
        import ray

        import harnessopt

        return HostInfo(pid=os.getpid(), hostname=socket.gethostname(), version=harnessopt.__version__,
                        node_id=ray.get_runtime_context().get_node_id())

    async def start(self, job: RolloutJob, examples: list | None = None) -> HostBatch:
        """Begin a rollout; `examples` is [ObjectRef of (examples, labels)] the first time this
        host sees the job's examples key (in a list, so Ray hands over the reference, not a copy)."""
        if examples:
            self.examples[job.examples_key] = await examples[0]
        channel = _Channel()
        self.channels[job.job_id] = channel
        channel.task = asyncio.create_task(self._run(job, channel))
        return await self.next(job.job_id)

    async def _run(self, job: RolloutJob, channel: _Channel) -> None:
        try:
            outcome = await self.executor.run(job, _ProxyBroker(self, channel))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. the worker process could not start
            outcome = RolloutOutcome(status="error", error=RolloutError(
                type="WorkerDied", message=f"the Ray worker could not run the rollout: {type(exc).__name__}: {exc}"))
        channel.finish(outcome)

    async def next(self, job_id: str) -> HostBatch:
        channel = self.channels.get(job_id)
        if channel is None:
            raise KeyError(f"no rollout {job_id} on this Ray worker")
        batch = await channel.take()
        if batch.outcome is not None:
            del self.channels[job_id]
        return batch

    def reply(self, job_id: str, request_id: int, result: ModelCall | ToolCall | None, error: str | None = None) -> None:
        """The driver's answer to a request: its result, or the "Type: message" of its broker's error."""
        channel = self.channels.get(job_id)
        future = channel.waiting.pop(request_id, None) if channel else None
        if future is None or future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(_BrokerError.named(error))

    async def cancel(self, job_id: str) -> None:
        """Stop a rollout the driver gave up on (its worker process is killed by the runner)."""
        channel = self.channels.pop(job_id, None)
        if channel is not None and channel.task is not None:
            channel.task.cancel()
            with contextlib.suppress(BaseException):
                await channel.task

    async def close(self) -> None:
        for job_id in list(self.channels):
            await self.cancel(job_id)
        await self.executor.close()
