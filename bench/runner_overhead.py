"""Runner overhead: rollouts/s through sandboxed workers vs calling the harness in process.

The model is an instant stub, so what is measured is the runner itself: IPC, worker reuse,
trace assembly. Run:  python bench/runner_overhead.py [--rollouts 400]
"""

from __future__ import annotations

import argparse
import asyncio
import time

from harnessopt.examples import ExampleIndex
from harnessopt.records import Example, ModelCall, Task, ToolCall
from harnessopt.runner import LocalProcessExecutor, RolloutJob
from harnessopt.worker.context import HarnessContext, TaskView

HARNESS = '''
async def run(task, ctx):
    shots = ctx.examples.similar(task.input, k=2)
    prompt = ctx.render("{% for s in shots %}{{ s.input }}: {{ s.target }}\\n{% endfor %}{{ q }}:", shots=shots, q=task.input)
    return (await ctx.complete(prompt, max_tokens=4)).strip()
'''
EXAMPLES = [Example(id=f"e{i}", input=f"example number {i} about topic {i % 7}", target=f"label{i % 7}")
            for i in range(200)]


class InstantBroker:
    def examples(self, key):
        return EXAMPLES, sorted({e.target for e in EXAMPLES})

    async def model_call(self, job, kind, args):
        return ModelCall(kind=kind, model=job.model, prompt=args.get("prompt"), response=" label1",
                         prompt_tokens=10, completion_tokens=1)

    async def tool_call(self, job, name, args):
        return ToolCall(name=name, args=args, result="ok")


def jobs(n: int) -> list[RolloutJob]:
    return [RolloutJob(job_id=f"j{i}", candidate_id="c", harness_source=HARNESS, harness_path="bench.py",
                       harness_hash="h", task=Task(id=f"t{i}", input=f"query {i} about topic {i % 7}"),
                       trial=0, model="stub", examples_key="k") for i in range(n)]


async def through_runner(n: int, concurrency: int) -> float:
    broker = InstantBroker()
    async with LocalProcessExecutor(concurrency) as executor:
        # Warm the pool (spawn + examples transfer) so the figure is the steady state.
        await asyncio.gather(*(executor.run(j, broker) for j in jobs(concurrency)))
        started = time.perf_counter()
        outs = await asyncio.gather(*(executor.run(j, broker) for j in jobs(n)))
        elapsed = time.perf_counter() - started
    assert all(o.status == "ok" for o in outs), [o.error for o in outs if o.error][:1]
    return elapsed


async def direct(n: int) -> float:
    namespace: dict = {}
    exec(compile(HARNESS, "bench.py", "exec"), namespace)
    run = namespace["run"]
    index = ExampleIndex(EXAMPLES)

    async def request(op, args):
        return " label1"

    ctx = HarnessContext(model="stub", labels=None, examples=index, request=request, notify=lambda op, args: None)
    started = time.perf_counter()
    for job in jobs(n):
        await run(TaskView(id=job.task.id, input=job.task.input), ctx)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rollouts", type=int, default=400)
    n = parser.parse_args().rollouts
    base = asyncio.run(direct(n))
    print(f"in-process direct call : {n / base:8.1f} rollouts/s  {1000 * base / n:6.2f} ms/rollout")
    for concurrency in (1, 8):
        t = asyncio.run(through_runner(n, concurrency))
        print(f"runner concurrency {concurrency:<3} : {n / t:8.1f} rollouts/s  {1000 * t / n:6.2f} ms/rollout"
              f"  overhead {1000 * (t - base) / n:6.2f} ms/rollout")


if __name__ == "__main__":
    main()
