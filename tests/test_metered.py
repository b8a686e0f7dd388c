"""The one metered-call path (estimate -> reserve -> cache -> call -> settle) with a stub gateway."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from harnessopt.budget import Budget, BudgetExceeded, BudgetTracker
from harnessopt.llm import CallRequest, DirectoryCache, PermanentLLMError, estimate_call, metered_call
from harnessopt.records import LLMResponse, ModelParams

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello " * 20}]


class RecordingGateway:
    """Answers every call; records what it saw and what the budget had reserved meanwhile."""

    def __init__(self, tracker: BudgetTracker | None = None, fail: bool = False):
        self.tracker = tracker
        self.fail = fail
        self.calls: list[dict] = []

    async def chat(self, model, messages, params=None, **kwargs):
        return await self._answer(model, params, messages=messages, **kwargs)

    async def complete(self, model, prompt, params=None, **kwargs):
        return await self._answer(model, params, prompt=prompt, **kwargs)

    async def _answer(self, model, params, **seen):
        reserved = dict(self.tracker._reserved_tokens) if self.tracker else None
        self.calls.append({"model": model, "params": params, "reserved": reserved, **seen})
        await asyncio.sleep(0)
        if self.fail:
            raise PermanentLLMError(f"{model}: refused", model=model)
        return LLMResponse(model=model, text="ok", prompt_tokens=30, completion_tokens=5, latency_s=0.01,
                           cost_usd=0.002, cost_known=True)


def chat_request(**kw) -> CallRequest:
    return CallRequest(kind="chat", model=kw.pop("model", "openai/gpt-4o-mini"), messages=MESSAGES,
                       params=kw.pop("params", ModelParams(temperature=0.7, max_tokens=100, seed=3)), **kw)


def test_reserves_an_upper_bound_during_the_call_and_settles_the_real_usage():
    tracker = BudgetTracker(Budget(meta_tokens=10_000, meta_usd=1.0))
    gw = RecordingGateway(tracker)
    request = chat_request()
    tokens, usd = estimate_call(request.model, request.prompt_text(), 100)
    assert tokens == len(json.dumps(MESSAGES)) // 2 + 16 + 100 and usd > 0  # gpt-4o-mini has a price
    resp = asyncio.run(metered_call(gw, request, meter=tracker, side="meta"))
    assert resp.text == "ok"
    assert gw.calls[0]["reserved"] == {"task": 0, "meta": tokens}  # reserved while the call ran
    assert tracker._reserved_tokens == {"task": 0, "meta": 0} and tracker._reserved_usd["meta"] == pytest.approx(0)
    spent = tracker.spent.meta
    assert (spent.calls, spent.prompt_tokens, spent.completion_tokens, spent.cost_usd) == (1, 30, 5, 0.002)
    assert tracker.spent.task.calls == 0


def test_a_call_that_does_not_fit_is_refused_before_the_gateway_is_called():
    tracker = BudgetTracker(Budget(task_tokens=50))
    gw = RecordingGateway(tracker)
    with pytest.raises(BudgetExceeded, match="task token budget"):
        asyncio.run(metered_call(gw, chat_request(), meter=tracker, side="task"))
    assert gw.calls == [] and tracker._reserved_tokens["task"] == 0 and tracker.spent.task.calls == 0


def test_a_failed_call_is_settled_as_one_failed_call_and_propagates():
    tracker = BudgetTracker(Budget())
    with pytest.raises(PermanentLLMError, match="refused"):
        asyncio.run(metered_call(RecordingGateway(tracker, fail=True), chat_request(), meter=tracker, side="task"))
    assert (tracker.spent.task.calls, tracker.spent.task.failed_calls, tracker.spent.task.tokens) == (1, 1, 0)
    assert tracker._reserved_tokens["task"] == 0


def test_cache_hits_replay_without_calling_and_charge_the_recorded_usage(tmp_path):
    tracker = BudgetTracker(Budget())
    gw = RecordingGateway()
    cache = DirectoryCache(tmp_path / "meta_cache")
    fmt = {"type": "json_object", "schema": {"type": "object"}}
    first = asyncio.run(metered_call(gw, chat_request(response_format=fmt), meter=tracker, side="meta", cache=cache))
    again = asyncio.run(metered_call(gw, chat_request(response_format=fmt), meter=tracker, side="meta", cache=cache))
    assert len(gw.calls) == 1 and again == first
    assert gw.calls[0]["response_format"] == fmt and "tools" not in gw.calls[0]
    assert tracker.spent.meta.calls == 2 and tracker.spent.meta.prompt_tokens == 60  # a replay rebuilds spend
    # Anything that changes the answer changes the key: another seed is a miss.
    other = chat_request(params=ModelParams(temperature=0.7, max_tokens=100, seed=4), response_format=fmt)
    asyncio.run(metered_call(gw, other, cache=cache))
    assert len(gw.calls) == 2 and len(list((tmp_path / "meta_cache").glob("*.json"))) == 2


def test_a_damaged_cache_file_is_a_miss_and_is_rewritten(tmp_path):
    gw = RecordingGateway()
    cache = DirectoryCache(tmp_path)
    request = chat_request()
    (tmp_path / f"{request.cache_key()}.json").write_text('{"model": "x", "te')
    asyncio.run(metered_call(gw, request, cache=cache))
    assert len(gw.calls) == 1 and cache.get(request.cache_key()).text == "ok"
    assert [p.name for p in tmp_path.iterdir()] == [f"{request.cache_key()}.json"]  # no temp file left


def test_cache_key_matches_the_layout_earlier_runs_wrote():
    """Run directories written before the metered path keep replaying (resume pays nothing twice)."""
    params = ModelParams(temperature=0.7, max_tokens=400, seed=100)
    fmt = {"type": "json_object", "schema": {"type": "object"}}
    old = {"model": "local/qwen2.5-coder-1.5b", "messages": MESSAGES, "params": params.model_dump(),
           "response_format": fmt}
    expected = hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()
    request = CallRequest(kind="chat", model="local/qwen2.5-coder-1.5b", messages=MESSAGES, params=params,
                          response_format=fmt)
    assert request.cache_key() == expected


def test_complete_requests_and_local_models_cost_nothing():
    gw = RecordingGateway()
    request = CallRequest(kind="complete", model="local/gemma-3-270m", prompt="Review: fine\nSentiment:",
                          params=ModelParams(max_tokens=4))
    assert estimate_call("local/gemma-3-270m", request.prompt_text(), 4)[1] == 0.0
    resp = asyncio.run(metered_call(gw, request))
    assert resp.text == "ok" and gw.calls[0]["prompt"] == "Review: fine\nSentiment:"
    assert "response_format" not in gw.calls[0]
