"""The one path for model calls a budget pays for: estimate -> reserve -> (cache) -> call -> settle.

Both the task side (a rollout's calls, served by the evaluator's broker) and the meta side (the
meta-agent's calls) go through :func:`metered_call`. It knows nothing of run directories or
budgets: it takes a :class:`Meter` (``BudgetTracker`` is one) and optionally a
:class:`ResponseCache` (``DirectoryCache`` keeps one JSON file per request in a folder, so a
resumed run replays a response instead of paying for it again).

A reservation is an upper bound (prompt characters / 2 plus ``max_tokens``, priced by litellm's
table) taken before the call, so concurrent calls can never overshoot a cap; it is settled with
the real usage afterwards, failed calls included. A cached response is settled with the usage it
recorded: replaying a run rebuilds the same spend.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ValidationError

from harnessopt.llm.errors import _llm
from harnessopt.llm.registry import is_local_model
from harnessopt.records import LLMResponse, ModelParams, Usage

#: Tokens reserved for the answer when a call gives no ``max_tokens`` (the local default too).
DEFAULT_MAX_TOKENS = 256


class Meter(Protocol):
    """Reserves before a call and settles after it (``harnessopt.budget.BudgetTracker``)."""

    def reserve_call(self, side: str, tokens: int, usd: float = 0.0) -> None: ...

    def settle_call(self, side: str, reserved_tokens: int, reserved_usd: float, actual: Usage) -> None: ...


class ResponseCache(Protocol):
    def get(self, key: str) -> LLMResponse | None: ...

    def put(self, key: str, response: LLMResponse) -> None: ...


class DirectoryCache:
    """One ``<key>.json`` per response in ``folder``, written atomically. A damaged file is a miss."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str) -> LLMResponse | None:
        path = self.folder / f"{key}.json"
        try:
            return LLMResponse.model_validate_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, ValidationError):  # missing, truncated or foreign: call again
            return None

    def put(self, key: str, response: LLMResponse) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{key}.json"
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(response.model_dump_json())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class CallRequest(BaseModel):
    """Everything that decides a model's answer: what the cache key and the estimate are made of."""

    kind: Literal["chat", "complete"]
    model: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    params: ModelParams = ModelParams()
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None

    def cache_key(self) -> str:
        identity: dict[str, Any] = {"model": self.model, "params": self.params.model_dump()}
        if self.kind == "chat":
            identity["messages"] = self.messages
        else:
            identity["prompt"] = self.prompt
        if self.tools:
            identity["tools"] = self.tools
        if self.response_format:
            identity["response_format"] = self.response_format
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()

    def prompt_text(self) -> str:
        return json.dumps(self.messages if self.kind == "chat" else self.prompt)


def estimate_call(model: str, prompt_text: str, max_tokens: int) -> tuple[int, float]:
    """An upper bound on a call's tokens and USD, reserved before it is made."""
    prompt_tokens = len(prompt_text) // 2 + 16  # tokens are rarely shorter than 2 characters
    tokens = prompt_tokens + max_tokens
    if is_local_model(model):
        return tokens, 0.0
    try:
        p_cost, c_cost = _llm().cost_per_token(model=model, prompt_tokens=prompt_tokens,
                                               completion_tokens=max_tokens)
        usd = float(p_cost + c_cost)
    except Exception:  # noqa: BLE001 - no price known (unlisted model)
        usd = 0.0
    return tokens, usd


async def send(gateway: Any, request: CallRequest) -> LLMResponse:
    """Make the call through ``gateway`` (a Gateway or anything with its chat/complete)."""
    kwargs: dict[str, Any] = {}
    if request.tools:
        kwargs["tools"] = request.tools
    if request.response_format is not None:
        kwargs["response_format"] = request.response_format
    if request.kind == "chat":
        return await gateway.chat(request.model, list(request.messages or []), request.params, **kwargs)
    return await gateway.complete(request.model, request.prompt or "", request.params, **kwargs)


def usage_of(response: LLMResponse | None) -> Usage:
    if response is None:
        return Usage(calls=1, failed_calls=1)
    return Usage(calls=1, prompt_tokens=response.prompt_tokens, completion_tokens=response.completion_tokens,
                 cost_usd=response.cost_usd)


async def metered_call(gateway: Any, request: CallRequest, *, meter: Meter | None = None, side: str = "task",
                       cache: ResponseCache | None = None) -> LLMResponse:
    """Reserve an upper bound on ``meter`` (BudgetExceeded propagates, nothing reserved), answer from
    ``cache`` or the gateway, store a fresh answer in ``cache``, and settle what was really used
    (a failed call as one failed call). Gateway errors propagate after settling."""
    tokens, usd = estimate_call(request.model, request.prompt_text(),
                                request.params.max_tokens or DEFAULT_MAX_TOKENS)
    if meter is not None:
        meter.reserve_call(side, tokens, usd)
    response: LLMResponse | None = None
    try:
        key = request.cache_key() if cache is not None else ""
        response = cache.get(key) if cache is not None else None
        if response is None:
            response = await send(gateway, request)
            if cache is not None:
                cache.put(key, response)
    finally:
        if meter is not None:
            meter.settle_call(side, tokens, usd, usage_of(response))
    return response
