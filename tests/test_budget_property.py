"""Budget caps hold under concurrency and faults (property-based, hypothesis).

For random budgets (rollouts, task tokens, task USD, meta tokens, wall clock), concurrency and
fault patterns (failing calls, latency, several concurrent calls per rollout, variable token
counts), a whole optimize run never spends more than its caps during the search. The spend is
checked against what the stub models actually served, not only against the run's own books.

Rollouts run through a fast in-process executor (the `Executor` seam): the property is about the
evaluator, broker and budget; tests/adversarial and test_kill_resume cover the real workers.
"""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from harnessopt.benchmark import Benchmark
from harnessopt.budget import Budget
from harnessopt.llm import TransientLLMError
from harnessopt.llm.gateway import _llm
from harnessopt.meta.llm_proposer import LLMProposer
from harnessopt.optimizer import OptimizeConfig, optimize_async
from harnessopt.records import LLMResponse, RolloutError, Usage
from harnessopt.runner import RolloutOutcome
from harnessopt.store import RunStore

MODEL = "openai/gpt-4o-mini"  # priced, so USD reservations are real upper bounds
N_SEARCH, N_TEST = 6, 3
SEED = 'async def run(task, ctx):\n    return (await ctx.complete("echo " + task.input)).strip()\n'


def _price(prompt_tokens: int, completion_tokens: int) -> float:
    p, c = _llm().cost_per_token(model=MODEL, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return float(p + c)


class Served:
    def __init__(self) -> None:
        self.search = Usage()
        self.meta = Usage()
        self.last_search_call = 0.0  # wall-clock time a search-task call was last *started*


class FaultyTaskModel:
    """Answers after a random delay, fails a fraction of calls, never exceeds max_tokens."""

    def __init__(self, rng: random.Random, fail: float, delay: float, served: Served):
        self.rng, self.fail, self.delay, self.served = rng, fail, delay, served

    async def complete(self, model, prompt, params=None, **_):
        verb, _, n = prompt.partition(" ")
        if int(n) < 50:  # a search-split task (test tasks are 50+)
            self.served.last_search_call = time.time()
        await asyncio.sleep(self.rng.uniform(0, self.delay))
        if self.rng.random() < self.fail:
            raise TransientLLMError(f"{model}: injected 503 - gave up", model=model)
        text = f" {int(n) * 2}" if verb == "double" else f" {n}"
        p_tok, c_tok = len(prompt) // 4 + 1, self.rng.randint(1, params.max_tokens)
        usage = Usage(calls=1, prompt_tokens=p_tok, completion_tokens=c_tok, cost_usd=_price(p_tok, c_tok))
        if int(n) < 50:
            self.served.search.add(usage)
        return LLMResponse(model=model, text=text, prompt_tokens=p_tok, completion_tokens=c_tok,
                           cost_usd=usage.cost_usd)

    chat = complete


class CyclingMetaModel:
    """A meta-agent that keeps writing, screening and evaluating candidates: it proposes when asked
    for a proposal and alternates screening and full evaluations when asked to choose."""

    def __init__(self, served: Served):
        self.served = served
        self.n = 0
        self.made = 0

    def supports_tools(self, model):
        return False

    async def chat(self, model, messages, params=None, **_):
        self.n += 1
        last = messages[-1]["content"]
        deciding = "Proposals ready" in last or "Next: full_eval" in last
        if not deciding:
            self.made += 1
            verb = "double" if self.made % 3 else "echo"
            text = (json.dumps({"action": "write", "predicted": 0.1, "hypothesis": f"variant {self.made}"})
                    + f'\n```python\n# variant {self.made}\nasync def run(task, ctx):\n'
                      f'    return (await ctx.complete("{verb} " + task.input)).strip()\n```')
        elif self.n % 2:
            text = json.dumps({"action": "screen", "candidates": [f"c{self.made:04d}"],
                               "task_ids": ["search-1", "search-2"], "trials": 2})
        else:
            text = json.dumps({"action": "full_eval", "candidate": f"c{self.made:04d}"})
        p_tok = len(json.dumps(messages)) // 4 + 1
        c_tok = min(params.max_tokens, 60)
        self.served.meta.add(Usage(calls=1, prompt_tokens=p_tok, completion_tokens=c_tok))
        return LLMResponse(model=model, text=text, prompt_tokens=p_tok, completion_tokens=c_tok)


class InProcessExecutor:
    """Plays a harness: 1-3 concurrent model calls through the broker, answer = first reply."""

    def __init__(self, rng: random.Random, calls_per_rollout: int):
        self.rng, self.calls = rng, calls_per_rollout

    async def run(self, job, broker):
        out = RolloutOutcome(started_at=time.time())
        verb = "double" if '"double ' in job.harness_source else "echo"
        k = self.rng.randint(1, self.calls)
        calls = await asyncio.gather(*(broker.model_call(job, "complete", {
            "prompt": f"{verb} {job.task.input}", "params": {"max_tokens": 16}}) for _ in range(k)))
        out.model_calls = list(calls)
        for c in calls:
            out.usage.add(Usage(calls=1, failed_calls=int(c.error is not None), prompt_tokens=c.prompt_tokens,
                                completion_tokens=c.completion_tokens, cost_usd=c.cost_usd))
        if calls[0].error:
            out.status, out.error = "error", RolloutError(type="ContextCallError", message=calls[0].error)
        else:
            out.answer = calls[0].response.strip()
        out.finished_at = time.time()
        return out

    async def close(self):
        pass


def _bench() -> Benchmark:
    def item(n, split):
        return {"id": f"{split}-{n}", "input": str(n), "target": str(2 * n)}

    return Benchmark.from_records("arith", train=[item(n, "train") for n in range(100, 104)],
                                  search=[item(n, "search") for n in range(1, N_SEARCH + 1)],
                                  test=[item(n, "test") for n in range(50, 50 + N_TEST)], scorer="exact")


budgets = st.fixed_dictionaries({
    "iterations": st.integers(1, 3),
    "rollouts": st.integers(2 * N_SEARCH, 60),
    "task_tokens": st.one_of(st.none(), st.integers(20, 1500)),
    "task_usd": st.one_of(st.none(), st.floats(2e-6, 1e-4)),
    "meta_tokens": st.one_of(st.none(), st.integers(500, 8000)),
    "wall_clock_s": st.one_of(st.none(), st.floats(0.2, 1.5)),
    "meta_steps_per_iteration": st.integers(1, 6),
})
faults = st.fixed_dictionaries({
    "fail": st.sampled_from([0.0, 0.1, 0.5]),
    "delay": st.sampled_from([0.0, 0.005, 0.03, 0.15]),
    "calls": st.integers(1, 3),
    "seed": st.integers(0, 10**6),
})


# Derandomized (the same examples on every run, no example database); no shrinking phase, so that
# a failure reports at once instead of spending minutes of CI time minimising it.
@settings(max_examples=30, deadline=None, derandomize=True, database=None, report_multiple_bugs=False,
          phases=[Phase.explicit, Phase.reuse, Phase.generate], suppress_health_check=[HealthCheck.too_slow])
@given(budget=budgets, concurrency=st.integers(1, 4), fault=faults)
def test_caps_are_never_exceeded(budget, concurrency, fault):
    rng = random.Random(fault["seed"])
    served = Served()
    cap = Budget(**budget)
    with tempfile.TemporaryDirectory() as tmp:
        seed = Path(tmp) / "seed.py"
        seed.write_text(SEED)
        config = OptimizeConfig(harness=str(seed), benchmark="arith", task_model=MODEL, meta_model="local/meta",
                                budget=cap, concurrency=concurrency, out=str(Path(tmp) / "runs"), max_tokens=16,
                                meta_max_tokens=200)
        proposer = LLMProposer(CyclingMetaModel(served), "local/meta", max_tokens=200)
        result = asyncio.run(optimize_async(
            config, proposer=proposer, gateway=FaultyTaskModel(rng, fault["fail"], fault["delay"], served),
            executor=InProcessExecutor(rng, fault["calls"]), benchmark=_bench()))
        spend = result.spend
        store = RunStore.open(result.run_dir)
        search_end = next(e.t for e in store.events() if e.kind == "search_finished")
        created = store.info()["created_at"]
        ledger = store.ledger()

    # Rollouts: the run's count, and what the ledger shows.
    assert spend.rollouts <= cap.rollouts
    assert sum(r.charged for r in ledger if r.split == "search") == spend.rollouts
    assert sum(r.tokens for r in ledger if r.kind == "meta") == spend.meta.tokens
    if not any(r.status == "cut" for r in ledger):  # a cut rollout's tokens are in no trace
        assert sum(r.tokens for r in ledger if r.split == "search") == spend.task.tokens
    # Tokens and USD: the run's books, and what the stub model actually served for search tasks.
    if cap.task_tokens is not None:
        assert spend.task.tokens <= cap.task_tokens
        assert served.search.tokens <= cap.task_tokens
    if cap.task_usd is not None:
        assert spend.task.cost_usd <= cap.task_usd + 1e-12
        assert served.search.cost_usd <= cap.task_usd + 1e-12
    assert served.search.tokens == spend.task.tokens  # books equal what was served
    if cap.meta_tokens is not None:
        assert spend.meta.tokens <= cap.meta_tokens and served.meta.tokens <= cap.meta_tokens
    # Wall clock (counted from the run directory's creation, just before the budget's clock
    # starts): no search model call starts after the deadline, and the search then ends promptly
    # (what was in flight fails fast; the slack only absorbs a loaded machine).
    if cap.wall_clock_s is not None:
        assert served.last_search_call == 0.0 or served.last_search_call - created <= cap.wall_clock_s + 0.05
        assert search_end - created <= cap.wall_clock_s + 2.0
    assert spend.iterations <= cap.iterations


def test_the_real_worker_pool_keeps_the_caps_too(tmp_path):
    """One fixed case through real sandboxed workers: the caps hold there as well."""
    from harnessopt.runner import LocalProcessExecutor
    from stubs import StubGateway

    seed = tmp_path / "seed.py"
    seed.write_text(SEED)
    cap = Budget(iterations=2, rollouts=20, task_tokens=60, meta_tokens=4000, meta_steps_per_iteration=3)
    served = Served()
    gateway = StubGateway(lambda prompt: " " + str(2 * int(prompt.split()[1])))
    config = OptimizeConfig(harness=str(seed), benchmark="arith", task_model="local/stub", meta_model="local/meta",
                            budget=cap, concurrency=3, out=str(tmp_path / "runs"), max_tokens=4)
    result = asyncio.run(optimize_async(config, proposer=LLMProposer(CyclingMetaModel(served), "local/meta"),
                                        gateway=gateway, executor=LocalProcessExecutor(3, kill_grace_s=0.5),
                                        benchmark=_bench()))
    assert result.spend.rollouts <= 20 and result.spend.task.tokens <= 60
    assert result.spend.meta.tokens <= 4000 and served.meta.tokens <= 4000


@pytest.fixture(autouse=True, scope="module")
def _litellm_loaded():
    _llm()  # import litellm once, outside the timed examples
