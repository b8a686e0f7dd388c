"""An optimize run on Ray, as a process the Ray tests can SIGKILL and resume.

    python ray_optimize_driver.py ROOT CALL_LOG new|resume RAY_ADDRESS

Stub task model (doubles or echoes a number) and a scripted meta model, both appending every call
they answer to CALL_LOG; rollouts run with `executor="ray"` on the cluster at RAY_ADDRESS. The run
directory is ROOT/run; the result goes to ROOT/result.json.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import sys
from pathlib import Path

SEED = 'async def run(task, ctx):\n    return (await ctx.complete("echo " + task.input)).strip()\n'
GOOD = 'async def run(task, ctx):\n    return (await ctx.complete("double " + task.input)).strip()\n'
META_SCRIPT = {  # iteration -> the meta-agent's replies, step by step
    1: [json.dumps({"action": "write", "predicted": 0.5, "hypothesis": "double"}) + "\n```python\n" + GOOD + "```",
        {"action": "full_eval", "candidate": "c0001"},
        {"action": "finish", "note": "doubling fixed it"}],
}


def log_call(path: str, record: dict) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (json.dumps(record) + "\n").encode())
    finally:
        os.close(fd)


def main(root: str, call_log: str, mode: str, address: str) -> None:
    from harnessopt.benchmark import Benchmark
    from harnessopt.budget import Budget
    from harnessopt.meta.llm_proposer import LLMProposer
    from harnessopt.meta.protocol import ProtocolSettings
    from harnessopt.optimizer import OptimizeConfig, optimize_async
    from harnessopt.records import LLMResponse

    def item(n, split):
        return {"id": f"{split}-{n}", "input": str(n), "target": str(2 * n)}

    bench = Benchmark.from_records("arith", train=[item(n, "train") for n in range(100, 104)],
                                   search=[item(n, "search") for n in range(1, 9)],
                                   test=[item(n, "test") for n in range(50, 54)], scorer="exact")

    class TaskModel:
        usage = None

        async def complete(self, model, prompt, params=None, **_):
            log_call(call_log, {"pid": os.getpid(), "kind": "task", "prompt": prompt, "seed": params.seed})
            await asyncio.sleep(0.05)  # a model that takes a moment: kills land mid-rollout
            verb, _, n = prompt.partition(" ")
            return LLMResponse(model=model, text=f" {int(n) * 2}" if verb == "double" else f" {n}",
                               prompt_tokens=2, completion_tokens=1)

        chat = complete

    class MetaModel:
        def supports_tools(self, model):
            return False

        async def chat(self, model, messages, params=None, **kwargs):
            it, step = divmod(params.seed % 1000, 100)
            request = {"model": model, "messages": messages, "params": params.model_dump(), **kwargs}
            key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
            log_call(call_log, {"pid": os.getpid(), "kind": "meta", "it": it, "step": step, "key": key})
            script = META_SCRIPT.get(it, [])
            reply = script[step] if step < len(script) else {"action": "finish"}
            return LLMResponse(model=model, text=reply if isinstance(reply, str) else json.dumps(reply),
                               prompt_tokens=50, completion_tokens=10)

    config = OptimizeConfig(harness=str(Path(root) / "seed.py"), benchmark="arith", task_model="local/stub",
                            meta_model="local/meta-stub", budget=Budget(iterations=1, rollouts=400), timeout_s=20,
                            concurrency=2, out=root, executor="ray", ray_address=address)
    if mode == "new":
        Path(config.harness).write_text(SEED)
    proposer = LLMProposer(MetaModel(), "local/meta-stub", temperature=0.0, max_tokens=200,
                           settings=ProtocolSettings(proposals=1))
    print("READY", flush=True)
    result = asyncio.run(optimize_async(
        config if mode == "new" else None, resume=str(Path(root) / "run") if mode == "resume" else None,
        proposer=proposer, gateway=TaskModel(), benchmark=bench, run_id="run"))
    Path(root, "result.json").write_text(result.model_dump_json(indent=1))


if __name__ == "__main__":
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    main(*sys.argv[1:5])
