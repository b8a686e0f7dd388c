"""Rollouts on a Ray cluster, behind the runner's `Executor` seam.

`RayExecutor` keeps `concurrency` Ray actors (`RolloutHost`, one sandboxed worker process each)
and gives each rollout to an idle one. The rollout's model and tool calls come back here as
requests and are served by the broker this process was given (the gateway, with its keys, budget
and accounting), so nothing about paying for a call changes; see docs/SCALE.md for the limit
that puts on one driver.

Faults: a host that dies mid-rollout (its process killed, its node lost) or stops answering is
replaced, and the rollout starts again on another host, up to `attempts` times; the calls the
lost attempt was served are answered again from `CallReplay`, never paid twice. After the last
attempt the rollout is recorded as failed (`RayWorkerLost`), never dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from harnessopt.errors import UsageError
from harnessopt.executors import ray_runtime
from harnessopt.executors.ray_host import BrokerRequest, HostBatch, HostInfo, RolloutHost
from harnessopt.executors.replay import CallReplay
from harnessopt.records import LogLine, ModelCall, RolloutError, ToolCall
from harnessopt.runner import Broker, RolloutJob, RolloutOutcome

# Beyond the rollout's own timeout (which the host enforces): time for the call round trips and
# a first worker process start, before an unresponsive host is given up on.
HOST_SLACK_S = 90.0


class _HostLost(Exception):
    """The host running a rollout died or stopped answering. `started`: after its first answer.
    A host lost before that (most often one that died idle, found dead when handed the rollout)
    was served no call, so retrying costs nothing: such losses count as attempts only past a cap."""

    def __init__(self, message: str, started: bool = True):
        super().__init__(message)
        self.started = started


class _Host:
    def __init__(self, actor: Any):
        self.actor = actor
        self.info: HostInfo | None = None
        self.examples_keys: set[str] = set()
        self.welcome: asyncio.Task | None = None


def _one_line(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:limit]


class RayExecutor:
    """`concurrency` rollouts at once, each in a worker process hosted by a Ray actor.

    `address` None starts a Ray runtime on this machine (`local_cpus` CPUs, default all); "auto",
    "ray://HOST:PORT" or "HOST:PORT" join a running cluster. Each host reserves `worker_cpus` CPUs.
    One executor serves one event loop (the one that first runs a rollout).
    """

    def __init__(self, concurrency: int = 2, *, address: str | None = None, memory_mb: int = 2048,
                 kill_grace_s: float = 2.0, guard: bool = True, worker_cpus: float = 1.0, attempts: int = 3,
                 start_timeout_s: float = 300.0, local_cpus: int | None = None):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        ray_runtime.require_ray()  # the install hint now, before any run directory exists
        self.concurrency = concurrency
        self.address = address
        self.memory_mb = memory_mb
        self.kill_grace_s = kill_grace_s
        self.guard = guard
        self.worker_cpus = worker_cpus
        self.attempts = attempts
        self.start_timeout_s = start_timeout_s
        self.local_cpus = local_cpus
        self.hosts_lost = 0  # hosts that died or stopped answering (for reports and tests)
        self.calls_replayed = 0  # calls answered from a lost attempt instead of the broker
        self._hosts: set[_Host] = set()
        self._idle: asyncio.Queue[_Host | None] | None = None
        self._examples: dict[str, Any] = {}  # examples key -> ObjectRef in Ray's object store
        self._owns_ray = False
        self._connected = False
        self._started = False
        self._closed = False
        self._ever_ready = False
        self._start_failures = 0
        self._fatal: BaseException | None = None

    # ------------------------------------------------------------------ the pool of hosts

    def connect(self) -> None:
        """Join (or start) Ray now, so that a bad address is reported before anything else starts."""
        if not self._connected:
            self._owns_ray = ray_runtime.connect(self.address, num_cpus=self.local_cpus)
            self._connected = True

    def _start(self) -> None:
        if self._closed:
            raise RuntimeError("this RayExecutor is closed")
        if self._started:
            return
        ray = ray_runtime.require_ray()
        self.connect()
        self._actor_class = ray.remote(RolloutHost)
        self._idle = asyncio.Queue()
        self._started = True
        for _ in range(self.concurrency):
            self._add_host()

    def _add_host(self) -> None:
        # SPREAD: a pool of rollout workers should use every node, not fill the first one.
        options = {"num_cpus": self.worker_cpus, "max_restarts": 0, "scheduling_strategy": "SPREAD"}
        actor = self._actor_class.options(**options).remote(self.memory_mb, self.kill_grace_s, self.guard)
        host = _Host(actor)
        self._hosts.add(host)
        host.welcome = asyncio.create_task(self._welcome(host))

    async def _welcome(self, host: _Host) -> None:
        """Wait until Ray has placed and started the host, check it, then offer it to rollouts."""
        import harnessopt

        ray = ray_runtime.require_ray()
        try:
            info = await host.actor.hello.remote()
        except ray.exceptions.RayError as exc:
            self._hosts.discard(host)
            self._start_failures += 1
            if self._start_failures >= 3 * self.concurrency or (not self._ever_ready and self._start_failures >= 3):
                self._fail(UsageError(f"Ray workers cannot start ({_one_line(exc)}); every node needs harnessopt "
                                      f"{harnessopt.__version__}: pip install 'harnessopt[ray]'"))
            elif not self._closed:
                self._add_host()
            return
        if info.version != harnessopt.__version__:
            self._fail(UsageError(f"the Ray node {info.hostname} has harnessopt {info.version}, this driver "
                                  f"{harnessopt.__version__}: install the same version on every node"))
            return
        host.info = info
        self._ever_ready = True
        self._idle.put_nowait(host)

    def _fail(self, error: BaseException) -> None:
        self._fatal = error
        self._idle.put_nowait(None)  # wakes one waiter, which wakes the next

    async def _acquire(self) -> _Host:
        while True:
            if self._fatal is not None:
                self._idle.put_nowait(None)
                raise self._fatal
            if any(h.info is not None for h in self._hosts):  # a live host comes back when its rollout ends
                host = await self._idle.get()
            else:  # none started yet, or all lost: new ones must be placed, within the start timeout
                try:
                    host = await asyncio.wait_for(self._idle.get(), timeout=self.start_timeout_s)
                except asyncio.TimeoutError:
                    raise UsageError(self._no_host_message()) from None
            if host is not None and host in self._hosts:
                return host

    def _no_host_message(self) -> str:
        ray = ray_runtime.require_ray()
        with contextlib.suppress(Exception):
            free = ray.available_resources().get("CPU", 0.0)
            return (f"no Ray worker running, and none started within {self.start_timeout_s:g} s: each needs "
                    f"{self.worker_cpus:g} CPU and the cluster has {free:g} free; lower --ray-worker-cpus or "
                    "--concurrency, or add nodes")
        return f"no Ray worker running, and none started within {self.start_timeout_s:g} s"

    def _release(self, host: _Host) -> None:
        if host in self._hosts and not self._closed:
            self._idle.put_nowait(host)

    def _replace(self, host: _Host) -> None:
        """A lost host is killed (if it still runs) and a new one is started in its place."""
        ray = ray_runtime.require_ray()
        self._hosts.discard(host)
        self.hosts_lost += 1
        with contextlib.suppress(Exception):
            ray.kill(host.actor, no_restart=True)
        if not self._closed:
            self._add_host()

    async def host_infos(self) -> list[HostInfo]:
        """The hosts started so far (pid, node): what tests and benches look at."""
        return [h.info for h in self._hosts if h.info is not None]

    async def warm(self) -> list[HostInfo]:
        """Start every host now and wait until all are ready (benches, tests); rollouts do not
        need this, they start on the first ready host."""
        self._start()
        deadline = time.monotonic() + self.start_timeout_s
        while len(await self.host_infos()) < self.concurrency:
            if self._fatal is not None:
                raise self._fatal
            if time.monotonic() > deadline:
                raise UsageError(self._no_host_message())
            await asyncio.sleep(0.05)
        return await self.host_infos()

    # ------------------------------------------------------------------ one rollout

    async def run(self, job: RolloutJob, broker: Broker) -> RolloutOutcome:
        self._start()
        replay = CallReplay()
        lost: list[str] = []
        dead_on_arrival = 0  # hosts lost before their first answer (see _HostLost)
        while len(lost) < self.attempts:
            host = await self._acquire()
            replay.new_attempt()
            try:
                outcome = await self._run_on(host, job, broker, replay)
            except _HostLost as exc:
                self._replace(host)
                if exc.started or dead_on_arrival >= self.concurrency + self.attempts:
                    lost.append(str(exc))
                else:
                    dead_on_arrival += 1
                continue
            except BaseException:  # cancelled: the host was told to stop the rollout and is reusable
                self._release(host)
                replay.cancel_pending()
                raise
            self._release(host)
            replay.cancel_pending()
            self.calls_replayed += replay.replayed
            if lost:
                outcome.logs.insert(0, LogLine(t=outcome.started_at, msg=(
                    f"[harnessopt] started again on another Ray worker after {len(lost)} lost attempt(s) "
                    f"({lost[-1]}); {replay.replayed} call(s) answered from the lost attempt(s), not paid again")))
            return outcome
        replay.cancel_pending()
        self.calls_replayed += replay.replayed
        now = time.time()
        return RolloutOutcome(status="error", started_at=now, finished_at=now, error=RolloutError(
            type="RayWorkerLost",
            message=f"the Ray worker running this rollout was lost {len(lost)} time(s); last: {lost[-1]}"))

    async def _run_on(self, host: _Host, job: RolloutJob, broker: Broker, replay: CallReplay) -> RolloutOutcome:
        ray = ray_runtime.require_ray()
        examples = None
        if job.examples_key not in host.examples_keys:
            if job.examples_key not in self._examples:
                self._examples[job.examples_key] = ray.put(broker.examples(job.examples_key))
            examples = [self._examples[job.examples_key]]
        deadline = time.monotonic() + job.timeout_s + self.kill_grace_s + HOST_SLACK_S
        serving: set[asyncio.Task] = set()
        pending = host.actor.start.remote(job, examples)
        started = False
        try:
            while True:
                batch = await self._answer(pending, deadline, started)
                started = True
                host.examples_keys.add(job.examples_key)
                for request in batch.requests:
                    task = asyncio.create_task(self._serve(host, job, broker, replay, request))
                    serving.add(task)
                    task.add_done_callback(serving.discard)
                if batch.outcome is not None:
                    return batch.outcome
                pending = host.actor.next.remote(job.job_id)
        except asyncio.CancelledError:
            host.actor.cancel.remote(job.job_id)
            raise
        finally:
            for task in serving:
                task.cancel()

    async def _answer(self, ref: Any, deadline: float, started: bool) -> HostBatch:
        ray = ray_runtime.require_ray()

        async def get() -> HostBatch:
            return await ref

        try:
            return await asyncio.wait_for(get(), timeout=max(deadline - time.monotonic(), 0.1))
        except asyncio.TimeoutError:
            raise _HostLost("the Ray worker stopped answering") from None
        except ray.exceptions.RayError as exc:
            raise _HostLost(f"{type(exc).__name__}: {_one_line(exc)}", started=started) from None

    async def _serve(self, host: _Host, job: RolloutJob, broker: Broker, replay: CallReplay,
                     request: BrokerRequest) -> None:
        ray = ray_runtime.require_ray()
        error: str | None = None
        result: ModelCall | ToolCall | None = None
        try:
            result = await replay.serve(request, job, broker)
        except Exception as exc:  # noqa: BLE001 - a broker failure is the harness's error, as in a local run
            error = f"{type(exc).__name__}: {exc}"
        # A host lost meanwhile is noticed by the pending next(); nothing to do here. Shielded: the
        # rollout may end (and this task be cancelled) while the reply is on its way, and Ray
        # Client mishandles a cancelled wait.
        with contextlib.suppress(ray.exceptions.RayError, asyncio.CancelledError):
            await asyncio.shield(self._reply(host, job.job_id, request.id, result, error))

    @staticmethod
    async def _reply(host: _Host, job_id: str, request_id: int, result: Any, error: str | None) -> None:
        ray = ray_runtime.require_ray()
        with contextlib.suppress(ray.exceptions.RayError):
            await host.actor.reply.remote(job_id, request_id, result, error)

    # ------------------------------------------------------------------ sharing and closing

    def share(self) -> "SharedRayExecutor":
        """A view for one of several runs sharing this pool (a comparison grid): closing the view
        leaves the pool running; its owner closes it."""
        return SharedRayExecutor(self)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if not self._started:
            if self._owns_ray:
                ray_runtime.disconnect()
            return
        ray = ray_runtime.require_ray()
        hosts = list(self._hosts)
        for host in hosts:
            if host.welcome is not None:
                host.welcome.cancel()
        ready = [h for h in hosts if h.info is not None]
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*(self._close_host(h) for h in ready), return_exceptions=True), 15)
        for host in hosts:
            with contextlib.suppress(Exception):
                ray.kill(host.actor, no_restart=True)
        self._hosts.clear()
        if self._owns_ray:
            ray_runtime.disconnect()

    @staticmethod
    async def _close_host(host: _Host) -> None:
        await host.actor.close.remote()

    async def __aenter__(self) -> "RayExecutor":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class SharedRayExecutor:
    """One run's handle on a shared RayExecutor (see `RayExecutor.share`)."""

    def __init__(self, pool: RayExecutor):
        self.pool = pool

    async def run(self, job: RolloutJob, broker: Broker) -> RolloutOutcome:
        return await self.pool.run(job, broker)

    async def close(self) -> None:
        """The pool outlives each run; its owner closes it."""
