"""Ray executor: per-rollout overhead against the local executor, and throughput as workers grow.

The model is a stub with a fixed latency, answered by the driver's broker (as the real gateway
would be), so what is measured is the executor: job hand-off, the call round trips between the
Ray worker and the driver, trace return.

  overhead    one node (a Ray runtime started here), one rollout at a time, same rollouts through
              LocalProcessExecutor and RayExecutor: (Ray time - local time) / rollouts.
  scaling     a simulated 2-node cluster: two `ray start` processes on loopback, each with its own
              CPU resources; rollouts/s with 1, 2, 4, 8 workers spread over both nodes, against
              linear scaling of the 1-worker figure. The stub's latency is the bottleneck.
  driver      an instant stub, 8 workers: rollouts/s and the driver's CPU per rollout, the figure
              behind the throughput limit of one driver (docs/SCALE.md).
  node-loss   the same cluster under load; the second node is SIGKILLed mid-run: rollouts that
              were on it must finish elsewhere, none lost, no model call answered twice.

Run:  python bench/ray_overhead.py [--rollouts 200] [--latency-ms 50] [--scaling-latency-ms 250]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the loopback cluster helper

from harnessopt.records import Example, ModelCall, Task, ToolCall  # noqa: E402
from harnessopt.runner import LocalProcessExecutor, RolloutJob  # noqa: E402

HARNESS = '''
async def run(task, ctx):
    shots = ctx.examples.similar(task.input, k=2)
    prompt = ctx.render("{% for s in shots %}{{ s.input }}: {{ s.target }}\\n{% endfor %}{{ q }}:", shots=shots, q=task.input)
    return (await ctx.complete(prompt, max_tokens=4)).strip()
'''
FOUR_CALLS = '''
async def run(task, ctx):
    for i in range(4):
        answer = await ctx.complete(f"call {i}: {task.input}", max_tokens=4)
    return answer.strip()
'''
EXAMPLES = [Example(id=f"e{i}", input=f"example number {i} about topic {i % 7}", target=f"label{i % 7}")
            for i in range(200)]


class StubBroker:
    """A model that takes `latency_s` per call (any number at once), counting what it answers."""

    def __init__(self, latency_s: float):
        self.latency_s = latency_s
        self.calls = 0

    def examples(self, key):
        return EXAMPLES, sorted({e.target for e in EXAMPLES})

    async def model_call(self, job, kind, args):
        await asyncio.sleep(self.latency_s)
        self.calls += 1
        return ModelCall(kind=kind, model=job.model, prompt=args.get("prompt"), response=" label1",
                         prompt_tokens=10, completion_tokens=1)

    async def tool_call(self, job, name, args):
        return ToolCall(name=name, args=args, result="ok")


def jobs(n: int, prefix: str = "j", harness: str = HARNESS) -> list[RolloutJob]:
    return [RolloutJob(job_id=f"{prefix}{i}", candidate_id="c", harness_source=harness, harness_path="bench.py",
                       harness_hash="h", task=Task(id=f"t{i}", input=f"query {i} about topic {i % 7}"),
                       trial=0, model="stub", examples_key="k") for i in range(n)]


async def timed(executor, n: int, concurrency: int, latency_s: float, harness: str = HARNESS) -> tuple[float, list]:
    """Seconds for n rollouts, at most `concurrency` at once, after a warm-up round."""
    broker = StubBroker(latency_s)
    await asyncio.gather(*(executor.run(j, broker) for j in jobs(concurrency, "warm", harness)))
    gate = asyncio.Semaphore(concurrency)

    async def one(job):
        async with gate:
            return await executor.run(job, broker)

    started, cpu = time.perf_counter(), time.process_time()
    outs = await asyncio.gather(*(one(j) for j in jobs(n, "j", harness)))
    elapsed = time.perf_counter() - started
    timed.driver_cpu_ms = 1000 * (time.process_time() - cpu) / n  # this process's CPU per rollout
    bad = [o.error for o in outs if o.status != "ok"]
    assert not bad, bad[:1]
    return elapsed, outs


async def overhead(n: int, latency_s: float) -> None:
    from harnessopt.executors.ray_executor import RayExecutor

    async with LocalProcessExecutor(1) as local:
        t_local, _ = await timed(local, n, 1, latency_s)
    ray_executor = RayExecutor(1, local_cpus=2)
    try:
        await ray_executor.warm()
        t_ray, _ = await timed(ray_executor, n, 1, latency_s)
    finally:
        await ray_executor.close()
    print(f"stub latency {1000 * latency_s:.0f} ms, {n} rollouts one at a time")
    print(f"  local executor : {1000 * t_local / n:7.2f} ms/rollout")
    print(f"  ray executor   : {1000 * t_ray / n:7.2f} ms/rollout")
    print(f"  overhead       : {1000 * (t_ray - t_local) / n:7.2f} ms/rollout (goal: under 20)")


async def scaling(cluster, n: int, latency_s: float, workers: list[int]) -> None:
    from harnessopt.executors.ray_executor import RayExecutor

    print(f"\n2-node cluster on loopback, stub latency {1000 * latency_s:.0f} ms, {n} rollouts per point")
    base = None
    for w in workers:
        executor = RayExecutor(w, address=cluster.address)
        try:
            hosts = await executor.warm()
            elapsed, _ = await timed(executor, n, w, latency_s)
        finally:
            await executor.close()
        rate = n / elapsed
        base = base or rate / w
        nodes = len({h.node_id for h in hosts})
        print(f"  workers {w:<2} on {nodes} node(s): {rate:7.2f} rollouts/s  ({rate / (base * w):.2f} of linear; "
              f"stub bound {w / latency_s:.1f}/s; driver CPU {timed.driver_cpu_ms:.2f} ms/rollout)")
        await asyncio.sleep(1)  # the closed workers' CPUs return to the cluster


async def driver_limit(cluster, n: int, workers: int) -> None:
    """An instant stub: the driver and the cluster's CPUs are the bottleneck, not the model."""
    from harnessopt.executors.ray_executor import RayExecutor

    executor = RayExecutor(workers, address=cluster.address)
    print(f"\ninstant stub, {workers} workers, {n} rollouts")
    try:
        await executor.warm()
        for calls, harness in ((1, HARNESS), (4, FOUR_CALLS)):
            elapsed, _ = await timed(executor, n, workers, 0.0, harness)
            print(f"  {calls} model call(s) per rollout: {n / elapsed:6.1f} rollouts/s; driver CPU "
                  f"{timed.driver_cpu_ms:.2f} ms per rollout")
    finally:
        await executor.close()


async def node_loss(cluster, second_node, n: int, latency_s: float, workers: int) -> None:
    from harnessopt.executors.ray_executor import RayExecutor

    print(f"\nnode loss: {n} rollouts on {workers} workers over 2 nodes; the second node is SIGKILLed after 1 s")
    executor = RayExecutor(workers, address=cluster.address)
    broker = StubBroker(latency_s)
    try:
        hosts = await executor.warm()
        per_node = {}
        for h in hosts:
            per_node[h.node_id] = per_node.get(h.node_id, 0) + 1
        gate = asyncio.Semaphore(workers)

        async def one(job):
            async with gate:
                return await executor.run(job, broker)

        started = time.perf_counter()
        run = asyncio.gather(*(one(j) for j in jobs(n)))
        await asyncio.sleep(1.0)
        await asyncio.to_thread(cluster.lose_node, second_node)
        outs = await run
        elapsed = time.perf_counter() - started
    finally:
        await executor.close()
    ok = sum(o.status == "ok" for o in outs)
    restarted = sum(any("lost attempt" in line.msg for line in o.logs) for o in outs)
    print(f"  workers per node before the loss: {sorted(per_node.values())}")
    print(f"  rollouts ok {ok}/{n}, failed {n - ok}, restarted elsewhere {restarted}, workers lost {executor.hosts_lost}")
    print(f"  model calls answered {broker.calls} for {n} rollouts (calls replayed {executor.calls_replayed}); "
          f"{elapsed:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="stub latency for the overhead figure")
    parser.add_argument("--scaling-rollouts", type=int, default=120)
    parser.add_argument("--scaling-latency-ms", type=float, default=250.0)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: overhead,scaling,driver,node-loss")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    from ray_cluster import LoopbackCluster

    cluster = LoopbackCluster()
    os.environ.update(cluster.env)  # loopback and the cluster's token, set before Ray is first imported
    if "overhead" not in skip:
        asyncio.run(overhead(args.rollouts, args.latency_ms / 1000))
    if {"scaling", "driver", "node-loss"} <= skip:
        return
    try:
        cluster.start_head(cpus=4)
        second = cluster.add_node(cpus=4)
        if "scaling" not in skip:
            asyncio.run(scaling(cluster, args.scaling_rollouts, args.scaling_latency_ms / 1000,
                                [int(w) for w in args.workers.split(",")]))
        if "driver" not in skip:
            asyncio.run(driver_limit(cluster, 400, workers=8))
        if "node-loss" not in skip:
            asyncio.run(node_loss(cluster, second, 60, args.scaling_latency_ms / 1000, workers=8))
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
