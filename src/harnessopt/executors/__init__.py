"""Executors: where rollouts run, behind the runner's `Executor` seam.

`local` is the runner's pool of sandboxed worker processes on this machine; `ray` runs the same
worker processes on a Ray cluster (`ray_executor.py`), with every model and tool call brokered
back to this process. `make_executor` builds one from the run options; nothing above the runner
needs to know which it got. Ray is imported only when the ray executor is built.
"""

from __future__ import annotations

import re
from typing import Any

from harnessopt.errors import UsageError

EXECUTORS = ("local", "ray")
_HOST_PORT = re.compile(r"^[A-Za-z0-9._-]+:\d{1,5}$")


def check_ray_address(value: str) -> str:
    """`auto`, `ray://HOST:PORT` (Ray Client) or `HOST:PORT` (a cluster's GCS, from one of its nodes)."""
    value = value.strip()
    if value == "auto" or _HOST_PORT.match(value) or (value.startswith("ray://") and _HOST_PORT.match(value[6:])):
        return value
    raise ValueError("expected auto, ray://HOST:PORT or HOST:PORT")


def check_available(kind: str, address: str | None = None) -> None:
    """Refuse an executor that cannot be built here (Ray not installed, nothing at the cluster
    address), before anything starts."""
    if kind == "ray":
        from harnessopt.executors.ray_runtime import probe, require_ray

        require_ray()
        if address is not None:
            probe(address)
    elif kind not in EXECUTORS:
        raise UsageError(f"executor {kind!r}: choose one of {', '.join(EXECUTORS)}")


def make_executor(kind: str = "local", *, concurrency: int = 2, memory_mb: int = 2048,
                  ray_address: str | None = None, ray_worker_cpus: float = 1.0) -> Any:
    """An executor for `kind` ("local" or "ray"); `concurrency` is how many rollouts it runs at once."""
    if kind == "local":
        from harnessopt.runner import LocalProcessExecutor

        return LocalProcessExecutor(concurrency, memory_mb=memory_mb)
    if kind == "ray":
        from harnessopt.executors.ray_executor import RayExecutor

        return RayExecutor(concurrency, address=ray_address, memory_mb=memory_mb, worker_cpus=ray_worker_cpus)
    raise UsageError(f"executor {kind!r}: choose one of {', '.join(EXECUTORS)}")


def connect_early(executor: Any) -> None:
    """Let an executor that joins a cluster do so now (a bad address is one line, before any run
    directory exists); the local executor has nothing to join."""
    connect = getattr(executor, "connect", None)
    if callable(connect):
        connect()


def executor_for(options: Any, *, concurrency: int | None = None) -> Any:
    """`make_executor` from a run's options (TaskOptions or one of its subclasses)."""
    return make_executor(options.executor, concurrency=concurrency or options.concurrency,
                         ray_address=options.ray_address, ray_worker_cpus=options.ray_worker_cpus)


def shared_pool(options: Any, *, runs_at_once: int) -> Any:
    """One executor sized for `runs_at_once` runs of `options.concurrency` rollouts each, already
    connected; each run takes a view with `.share()` and the caller closes the pool. The grid's
    cells then run at once across the cluster, while their run directories, meta-agents and
    gateway stay in this process."""
    pool = executor_for(options, concurrency=options.concurrency * runs_at_once)
    connect_early(pool)  # a bad cluster address is one line, before the experiment directory
    return pool


__all__ = ["EXECUTORS", "check_available", "check_ray_address", "connect_early", "executor_for", "make_executor"]
