"""The sandboxed runner with a stub broker: failures become failed rollouts and the pool goes on."""

import asyncio
import os
import time

import pytest

from harnessopt.records import Example, ModelCall, Task, ToolCall
from harnessopt.runner import LocalProcessExecutor, RolloutJob


class StubBroker:
    def __init__(self):
        self.calls = []

    def examples(self, key):
        return [Example(id="e1", input="turn on the lights", target="lights_on"),
                Example(id="e2", input="play some jazz", target="play_music")], ["lights_on", "play_music"]

    async def model_call(self, job, kind, args):
        self.calls.append((kind, args))
        text = args.get("prompt") or args["messages"][-1]["content"]
        return ModelCall(kind=kind, model=job.model, prompt=args.get("prompt"), response=f"echo:{text}",
                         prompt_tokens=3, completion_tokens=2)

    async def tool_call(self, job, name, args):
        return ToolCall(name=name, args=args, result=f"{name} ok")


def job(source: str, timeout_s: float = 10.0, task_input: str = "hello", job_id: str = "j1") -> RolloutJob:
    return RolloutJob(job_id=job_id, candidate_id="c", harness_source=source, harness_path="h.py",
                      harness_hash="h", task=Task(id="t1", input=task_input), trial=0, model="stub",
                      timeout_s=timeout_s, examples_key="k")


def run_jobs(sources, concurrency=1, **kw):
    async def go():
        async with LocalProcessExecutor(concurrency, kill_grace_s=1.0) as ex:
            broker = StubBroker()
            outs = await asyncio.gather(*(ex.run(job(s, job_id=f"j{i}", **kw), broker) for i, s in enumerate(sources)))
            return outs, ex.spawned, broker
    return asyncio.run(go())


def test_answer_model_calls_logs_and_retrieval_are_recorded():
    src = '''
async def run(task, ctx):
    shots = ctx.examples.similar(task.input, k=1)
    ctx.log("got " + shots[0].target)
    print("to stdout")
    text = await ctx.complete(ctx.render("Q: {{ q }}", q=task.input), max_tokens=5, stop="\\n")
    tool = await ctx.tool("calculator", expression="1+1")
    return text + "|" + tool + "|" + ",".join(ctx.labels)
'''
    (out,), _, broker = run_jobs([src])
    assert out.status == "ok", out.error
    assert out.answer == "echo:Q: hello|calculator ok|lights_on,play_music"
    assert [c.kind for c in out.model_calls] == ["complete"]
    assert broker.calls[0][1]["params"] == {"max_tokens": 5, "stop": ["\n"]}
    assert out.logs[0].msg == "got lights_on"
    assert "to stdout" in out.stdout
    assert {t.name for t in out.tool_calls} == {"examples.similar", "calculator"}
    assert out.usage.prompt_tokens == 3 and out.usage.calls == 1


def test_raise_non_string_and_bad_params_are_failed_rollouts_and_the_worker_is_reused():
    sources = [
        "async def run(task, ctx):\n    raise KeyError('boom')\n",
        "async def run(task, ctx):\n    return 42\n",
        "async def run(task, ctx):\n    return await ctx.complete('x', api_base='http://evil')\n",
        "async def run(task, ctx):\n    return 'fine'\n",
    ]
    outs, spawned, _ = run_jobs(sources, concurrency=1)
    assert [o.status for o in outs] == ["error", "error", "error", "ok"]
    assert outs[0].error.type == "KeyError" and "boom" in outs[0].error.traceback
    assert "returned int, expected str" in outs[1].error.message
    assert "api_base" in outs[2].error.message
    assert spawned == 1  # one worker served all four


def test_cooperative_hang_times_out_in_the_worker():
    outs, _, _ = run_jobs(["import asyncio\nasync def run(task, ctx):\n    await asyncio.sleep(60)\n"], timeout_s=0.5)
    assert outs[0].status == "timeout" and "0.5" in outs[0].error.message


def test_busy_loop_is_killed_by_the_parent_and_the_pool_recovers():
    async def go():
        async with LocalProcessExecutor(1, kill_grace_s=0.5) as ex:
            broker = StubBroker()
            started = time.monotonic()
            hung = await ex.run(job("async def run(task, ctx):\n    while True:\n        pass\n", timeout_s=0.5), broker)
            elapsed = time.monotonic() - started
            after = await ex.run(job("async def run(task, ctx):\n    return 'ok'\n", job_id="j2"), broker)
            return hung, elapsed, after, ex.spawned
    hung, elapsed, after, spawned = asyncio.run(go())
    assert hung.status == "timeout" and "killed" in hung.error.message
    assert elapsed < 5
    assert after.status == "ok" and spawned == 2


def test_os_exit_is_a_failed_rollout():
    outs, _, _ = run_jobs(["import os\nasync def run(task, ctx):\n    os._exit(3)\n"])
    assert outs[0].status == "error" and outs[0].error.type == "WorkerDied"
    assert "code 3" in outs[0].error.message


def test_sys_exit_is_caught_in_the_worker():
    outs, spawned, _ = run_jobs(["import sys\nasync def run(task, ctx):\n    sys.exit(1)\n",
                                 "async def run(task, ctx):\n    return 'ok'\n"])
    assert outs[0].status == "error" and outs[0].error.type == "SystemExit"
    assert outs[1].status == "ok" and spawned == 1


def test_worker_environment_has_no_api_keys_and_a_scratch_cwd(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    src = "import os, json\nasync def run(task, ctx):\n    return json.dumps([sorted(os.environ), os.getcwd()])\n"
    outs, _, _ = run_jobs([src])
    import json
    env_names, cwd = json.loads(outs[0].answer)
    assert "OPENAI_API_KEY" not in env_names
    assert "sk-secret-value" not in outs[0].answer
    assert "rollout-" in cwd and cwd != os.getcwd()


def test_concurrent_rollouts_run_in_parallel_workers():
    src = "import time, os\nasync def run(task, ctx):\n    a = time.time()\n    time.sleep(1.5)\n    return f'{a} {time.time()} {os.getpid()}'\n"
    outs, spawned, _ = run_jobs([src] * 3, concurrency=3)
    spans = [tuple(map(float, o.answer.split()[:2])) for o in outs]
    pids = {o.answer.split()[2] for o in outs}
    assert spawned == 3 and len(pids) == 3
    # every pair of rollouts overlapped in time: they ran side by side, not one after another
    assert all(a0 < b1 and b0 < a1 for (a0, a1) in spans for (b0, b1) in spans)


def test_memory_bomb_fails_the_rollout():
    src = "async def run(task, ctx):\n    x = bytearray(8 * 1024 ** 3)\n    return 'no'\n"
    outs, _, _ = run_jobs([src])
    assert outs[0].status == "error" and outs[0].error.type == "MemoryError"


def test_a_train_task_never_sees_its_own_example():
    # `eval --split train`: the task is one of the train examples; ctx.examples must leave it out.
    src = '''
async def run(task, ctx):
    seen = [e.id for e in ctx.examples.similar(task.input, k=5) + ctx.examples.sample(5) + ctx.examples.all()]
    return ",".join(sorted(set(seen))) + "|" + str(len(ctx.examples))
'''
    async def go():
        async with LocalProcessExecutor(1, kill_grace_s=1.0) as ex:
            broker = StubBroker()
            own = RolloutJob(**{**job(src).model_dump(), "task": Task(id="e1", input="turn on the lights")})
            other = job(src, task_input="turn on the lights", job_id="j2")  # a test task: sees every example
            return await ex.run(own, broker), await ex.run(other, broker)
    own, other = asyncio.run(go())
    assert own.status == "ok", own.error
    assert own.answer == "e2|1"
    assert other.answer == "e1,e2|2"
    assert [t.result for t in own.tool_calls if t.name == "examples.similar"] == [["e2"]]
