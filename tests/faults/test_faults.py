"""Model faults from a fault-injecting OpenAI-compatible server on loopback (server.py).

Retries recover what is transient, give up with a one-line error on what is not, and what the
gateway (and a whole evaluation) accounts for equals what the server actually served.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from harnessopt.benchmark import Benchmark  # noqa: E402
from harnessopt.evaluation import evaluate_async  # noqa: E402
from harnessopt.harness import harness_from_source  # noqa: E402
from harnessopt.llm import Gateway, PermanentLLMError, TransientLLMError  # noqa: E402
from harnessopt.llm.gateway import _llm  # noqa: E402
from harnessopt.records import ModelParams  # noqa: E402
from server import PERMANENT, TRANSIENT, FaultServer  # noqa: E402

_llm()  # import litellm at collection, not inside the first (timed) test

MODEL = "openai/gpt-4o-mini"  # a known price, so USD accounting is checked too
KEY = "sk-faults-test-0123456789abcdef"
MESSAGES = [{"role": "user", "content": "classify this sentence please"}]
ATTEMPTS = 4


def gateway(server: FaultServer, **kw) -> Gateway:
    opts = dict(max_attempts=ATTEMPTS, base_delay_s=0.01, max_delay_s=0.1, timeout_s=0.5,
                api_base=server.api_base, api_key=KEY)
    opts.update(kw)
    return Gateway(**opts)


async def call(gw: Gateway, kind: str):
    if kind == "chat":
        return await gw.chat(MODEL, MESSAGES, ModelParams(max_tokens=8))
    return await gw.complete(MODEL, "classify this sentence please", ModelParams(max_tokens=8))


def price(prompt_tokens: int, completion_tokens: int) -> float:
    p, c = _llm().cost_per_token(model=MODEL, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
    return p + c


def assert_books_match(gw: Gateway, server: FaultServer) -> None:
    served = server.served
    assert gw.usage.prompt_tokens == served.prompt_tokens
    assert gw.usage.completion_tokens == served.completion_tokens
    assert gw.usage.calls - gw.usage.failed_calls == served.ok
    assert gw.usage.cost_usd == pytest.approx(price(served.prompt_tokens, served.completion_tokens), rel=1e-9, abs=1e-15)


# --------------------------------------------------------------------------- one fault, then fine


@pytest.mark.parametrize("kind", ["chat", "complete"])
@pytest.mark.parametrize("fault", TRANSIENT)
async def test_a_transient_fault_is_retried_and_recovered(fault, kind):
    with FaultServer([fault, "ok"], stall_s=1.0) as server:
        gw = gateway(server, timeout_s=0.3)
        resp = await call(gw, kind)
        assert resp.text == "ok" and resp.attempts == 2
        assert server.served.requests == 2
        assert_books_match(gw, server)


async def test_retry_after_is_honoured():
    with FaultServer(["429", "ok"], retry_after=0.4) as server:
        gw = gateway(server, base_delay_s=0.001, max_delay_s=5)
        started = time.perf_counter()
        resp = await call(gw, "chat")
        assert resp.attempts == 2 and time.perf_counter() - started >= 0.4
        assert_books_match(gw, server)


@pytest.mark.parametrize("fault", ["500", "503"])
async def test_a_burst_shorter_than_the_attempts_is_recovered(fault):
    with FaultServer([fault] * (ATTEMPTS - 1) + ["ok"]) as server:
        gw = gateway(server)
        resp = await call(gw, "chat")
        assert resp.attempts == ATTEMPTS
        assert_books_match(gw, server)


# --------------------------------------------------------------------------- give up clearly


CAUSES = {"429": "rate-limiting", "500": "unavailable", "502": "unavailable", "503": "unavailable",
          "reset": "connection", "timeout": "timing out", "malformed": "malformed", "empty": "without any choice",
          "truncated": "connection"}


@pytest.mark.parametrize("fault", TRANSIENT)
async def test_a_fault_that_outlasts_the_retries_gives_up_with_one_clear_line(fault):
    with FaultServer([fault] * ATTEMPTS, stall_s=1.0) as server:
        gw = gateway(server, timeout_s=0.3)
        with pytest.raises(TransientLLMError) as info:
            await call(gw, "chat")
        text = str(info.value)
        assert "\n" not in text and text.startswith(MODEL)
        assert f"gave up after {ATTEMPTS} attempt(s)" in text and CAUSES[fault] in text, text
        assert KEY not in text
        assert server.served.requests == ATTEMPTS and server.served.ok == 0
        assert gw.usage.failed_calls == 1 and gw.usage.tokens == 0 and gw.usage.cost_usd == 0
        assert_books_match(gw, server)


HINTS = {"400": "rejected the request", "401": "API key", "404": "model name"}


@pytest.mark.parametrize("fault", PERMANENT)
async def test_a_permanent_fault_fails_at_once(fault):
    with FaultServer([fault]) as server:
        gw = gateway(server)
        with pytest.raises(PermanentLLMError) as info:
            await call(gw, "chat")
        text = str(info.value)
        assert info.value.attempts == 1 and server.served.requests == 1
        assert "\n" not in text and HINTS[fault] in text and KEY not in text, text
        assert_books_match(gw, server)


# --------------------------------------------------------------------------- mixed, concurrent


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_faults_under_concurrency_account_exactly(seed):
    rng = random.Random(seed)
    pattern = [rng.choice(["ok"] * 6 + list(TRANSIENT) + ["length"]) for _ in range(400)]
    # A response the server sent after the client gave up would be served but never seen (a real
    # provider bills it too): the client's timeout is kept well above a normal answer's latency.
    with FaultServer(lambda n: pattern[n % len(pattern)], stall_s=2.0) as server:
        gw = gateway(server, timeout_s=1.0, max_attempts=3)
        outcomes = await asyncio.gather(*(call(gw, "chat" if i % 2 else "complete") for i in range(40)),
                                        return_exceptions=True)
        ok = [o for o in outcomes if not isinstance(o, BaseException)]
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        assert all(isinstance(f, TransientLLMError) for f in failed), failed
        assert len(ok) == server.served.ok and len(ok) > 0
        # (an attempt can die before the server sees it, e.g. a reset at connect: not more requests than attempts)
        assert sum(o.attempts for o in ok) + sum(f.attempts for f in failed) >= server.served.requests
        assert sum(o.prompt_tokens + o.completion_tokens for o in ok) == server.served.tokens
        assert_books_match(gw, server)


# --------------------------------------------------------------------------- a whole evaluation


HARNESS = '''
async def run(task, ctx):
    first = await ctx.complete("label: " + task.input, max_tokens=4)
    try:
        second = await ctx.chat([{"role": "user", "content": "again " + task.input}], max_tokens=4)
    except Exception as exc:  # a model call that gave up is a ContextCallError the harness may catch
        ctx.log(f"second call failed: {exc}")
        second = ""
    return first.strip() + second.strip()
'''


def bench() -> Benchmark:
    items = [{"id": f"q{i}", "input": f"sentence number {i}", "target": "okok"} for i in range(12)]
    return Benchmark.from_records("faulty", train=items[:2], search=items[2:4], test=items[4:], scorer="exact")


async def test_an_evaluation_through_faults_goes_on_and_its_spend_matches_the_server(tmp_path):
    rng = random.Random(7)
    pattern = [rng.choice(["ok"] * 4 + ["429", "500", "503", "reset", "malformed", "empty", "truncated", "400"])
               for _ in range(200)]
    with FaultServer(lambda n: pattern[n % len(pattern)]) as server:
        gw = gateway(server, max_attempts=3)
        result = await evaluate_async(harness_from_source(HARNESS, "faulty.py"), bench(), split="test", trials=2,
                                      task_model=MODEL, out=tmp_path, gateway=gw, concurrency=3, timeout_s=30)
        from harnessopt.store import RunStore

        traces = RunStore.open(result.run_dir).rollouts(result.candidate_id)
        assert len(traces) == result.n_rollouts == 16  # every rollout finished, faults or not
        calls = [c for t in traces for c in t.model_calls]
        failed = [c for c in calls if c.error]
        assert failed and all("\n" not in c.error and c.error.startswith(MODEL) for c in failed)
        assert any(t.status == "ok" for t in traces)
        # What the traces, the evaluation and the gateway say was spent is what the server served.
        assert sum(c.prompt_tokens + c.completion_tokens for c in calls) == server.served.tokens
        assert result.usage.tokens == server.served.tokens
        assert result.usage.cost_usd == pytest.approx(price(server.served.prompt_tokens, server.served.completion_tokens))
        assert_books_match(gw, server)
        ledger = RunStore.open(result.run_dir).ledger()
        assert ledger[-1].tokens == server.served.tokens
