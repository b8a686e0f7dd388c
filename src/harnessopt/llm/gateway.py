"""The model gateway: one async entry point for every model call, with retries and accounting.

Remote models go through litellm (any litellm model string: ``openai/...``, ``anthropic/...``,
``ollama/...``, ``openai/<name>`` plus ``api_base`` for an OpenAI-compatible server). The embedded
model (``local/...``) is served in-process by :mod:`harnessopt.llm.local` (see its docstring for
why it does not go through litellm). The API and the returned :class:`LLMResponse` are the same.

Retries (tenacity) cover transient failures only: rate limits (429), 5xx, timeouts, dropped
connections, empty/malformed responses. Waits double from ``base_delay_s`` with jitter, capped at
``max_delay_s``; a ``Retry-After`` header (seconds or HTTP date) sets the wait instead, also capped
at ``max_delay_s``. litellm's and the OpenAI client's own retries are turned off so that every
attempt is ours and counted. Permanent failures (auth, unknown model, bad request, context too
long, permission) fail at once.

Errors (:mod:`harnessopt.llm.errors`) are :class:`LLMError` subclasses whose message is one
line naming the model, what went wrong and what to do, with API keys scrubbed out. Checking a
model before a run is :mod:`harnessopt.llm.preflight`; metering calls against a budget is
:mod:`harnessopt.llm.metered`.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from harnessopt.llm import local
from harnessopt.llm.errors import (  # noqa: F401 - _llm and retry_after_s are re-exported for callers
    EmptyResponse,
    LLMError,
    PermanentLLMError,
    TransientLLMError,
    _llm,
    error_detail,
    is_transient,
    retry_after_s,
    wrap_error,
)
from harnessopt.llm.registry import is_local_model
from harnessopt.records import LLMResponse, ModelParams, Usage

_mcp_broken: bool | None = None


def _mcp_handler_broken() -> bool:
    """Whether litellm's MCP tool bridge fails to import (it needs the optional `mcp` package).

    litellm imports that bridge on every call that carries ``tools``; without ``mcp`` installed
    the import error surfaces as an APIConnectionError. We never pass MCP tools, so skip it.
    """
    global _mcp_broken
    if _mcp_broken is None:
        _llm()
        try:
            import litellm.responses.mcp.chat_completions_handler  # noqa: F401
        except Exception:
            _mcp_broken = True
        else:
            _mcp_broken = False
    return _mcp_broken


# --------------------------------------------------------------------------- the gateway


class _Wait:
    """tenacity wait: Retry-After when the error carries one, else exponential backoff + jitter."""

    def __init__(self, base: float, cap: float) -> None:
        self.base = base
        self.cap = cap

    def __call__(self, retry_state: Any) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        hinted = retry_after_s(exc) if exc is not None else None
        if hinted is not None:
            return min(hinted, self.cap)
        ceiling = min(self.cap, self.base * (2 ** (retry_state.attempt_number - 1)))
        return ceiling * (0.5 + random.random() / 2)  # "equal jitter": never ~0, never in step


class Gateway:
    """Async gateway over litellm plus the embedded model.

    ``usage`` holds running totals over every call made through this gateway (successful and
    failed); failed calls add to ``calls`` and ``failed_calls`` but carry no tokens or cost.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 6,
        base_delay_s: float = 1.0,
        max_delay_s: float = 60.0,
        timeout_s: float = 120.0,
        api_base: str | None = None,
        api_key: str | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.timeout_s = timeout_s
        self.api_base = api_base
        self._api_key = api_key
        self.usage = Usage()
        self._usage_lock = threading.Lock()

    def __repr__(self) -> str:  # never show the key
        return (
            f"Gateway(max_attempts={self.max_attempts}, api_base={self.api_base!r}, "
            f"api_key={'***' if self._api_key else None})"
        )

    # ------------------------------------------------------------------ public API

    async def chat(
        self,
        model: str,
        messages: list[dict],
        params: ModelParams | None = None,
        *,
        tools: list[dict] | None = None,
        response_format: dict | None = None,
    ) -> LLMResponse:
        params = params or ModelParams()
        if is_local_model(model):
            if tools:
                self._count_failure()
                raise PermanentLLMError(
                    f"{model}: the embedded model has no native tool calling - pass "
                    "response_format={'type': 'json_object', 'schema': ...} instead "
                    "(check Gateway.supports_tools first)",
                    model=model,
                    kind="UnsupportedParams",
                )
            return await self._local_call(
                model, local.achat(model, messages, params, response_format=response_format)
            )
        self._remote_format_ok(model, response_format)
        kwargs = self._kwargs(model, params)
        kwargs["messages"] = messages
        if tools:
            kwargs["tools"] = tools
            if _mcp_handler_broken():
                kwargs["_skip_mcp_handler"] = True
        if response_format:
            kwargs["response_format"] = response_format
        return await self._remote_call(model, "chat", kwargs, params)

    async def complete(
        self,
        model: str,
        prompt: str,
        params: ModelParams | None = None,
        *,
        response_format: dict | None = None,
    ) -> LLMResponse:
        """Text completion (no chat template): what base models need.

        For ``openai/<name>`` litellm calls the native ``/v1/completions`` endpoint (vLLM,
        llama.cpp server, ...); providers without a completion endpoint get the prompt as one
        user message.
        """
        params = params or ModelParams()
        if is_local_model(model):
            return await self._local_call(
                model, local.acomplete(model, prompt, params, response_format=response_format)
            )
        self._remote_format_ok(model, response_format)
        kwargs = self._kwargs(model, params)
        kwargs["prompt"] = prompt
        if response_format:
            kwargs["response_format"] = response_format
        return await self._remote_call(model, "complete", kwargs, params)

    def supports_tools(self, model: str) -> bool:
        """Whether litellm knows the model to support native function calling."""
        if is_local_model(model):
            return False
        try:
            return bool(_llm().supports_function_calling(model=model))
        except Exception:
            return False

    def _remote_format_ok(self, model: str, response_format: dict | None) -> None:
        if response_format and response_format.get("type") == "grammar":
            self._count_failure()
            raise PermanentLLMError(
                f"{model}: response_format type 'grammar' (GBNF) works with embedded local/... models "
                "only; pass a JSON schema ({'type': 'json_schema', ...}) to a remote model",
                model=model, kind="UnsupportedParams")

    # ------------------------------------------------------------------ accounting

    def _count_success(self, resp: LLMResponse) -> None:
        with self._usage_lock:
            self.usage.calls += 1
            self.usage.prompt_tokens += resp.prompt_tokens
            self.usage.completion_tokens += resp.completion_tokens
            self.usage.cost_usd += resp.cost_usd

    def _count_failure(self) -> None:
        with self._usage_lock:
            self.usage.calls += 1
            self.usage.failed_calls += 1

    # ------------------------------------------------------------------ local model

    async def _local_call(self, model: str, coro: Any) -> LLMResponse:
        t0 = time.perf_counter()
        try:
            result = await coro
        except local.LocalModelError as exc:
            self._count_failure()
            raise PermanentLLMError(f"{model}: {exc}", model=model, kind="LocalModelError") from None
        except Exception as exc:  # llama.cpp failures are not worth retrying
            self._count_failure()
            raise PermanentLLMError(
                f"{model}: embedded model failed: {type(exc).__name__}: {error_detail(exc)}",
                model=model,
                kind=type(exc).__name__,
            ) from None
        resp = LLMResponse(
            model=model,
            text=result.text,
            prompt_tokens=result.prompt_tokens,
            completion_tokens=result.completion_tokens,
            latency_s=time.perf_counter() - t0,
            cost_usd=0.0,
            cost_known=True,
            finish_reason=result.finish_reason,
            attempts=1,
        )
        self._count_success(resp)
        return resp

    # ------------------------------------------------------------------ remote models

    def _kwargs(self, model: str, params: ModelParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model": model,
            "timeout": self.timeout_s,
            "num_retries": 0,  # our retries only (this also sets the OpenAI client's to 0)
            "max_retries": 0,
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self._api_key:
            kwargs["api_key"] = self._api_key
        for name in ("temperature", "max_tokens", "top_p", "seed", "stop"):
            value = getattr(params, name)
            if value is not None:
                kwargs[name] = value
        kwargs.update(params.extra)
        return kwargs

    def _secrets(self, kwargs: dict[str, Any]) -> list[str]:
        return [s for s in (self._api_key, kwargs.get("api_key")) if isinstance(s, str) and s]

    async def _remote_call(
        self, model: str, kind: str, kwargs: dict[str, Any], params: ModelParams
    ) -> LLMResponse:
        litellm = _llm()
        fn = litellm.acompletion if kind == "chat" else litellm.atext_completion
        attempts = 0
        t0 = time.perf_counter()

        async def attempt() -> Any:
            nonlocal attempts
            attempts += 1
            # Safety net over litellm's own timeout (some providers ignore it).
            async with asyncio.timeout(self.timeout_s + 5.0):
                raw = await fn(**kwargs)
            if not getattr(raw, "choices", None):
                raise EmptyResponse("the provider returned no choices")
            return raw

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_Wait(self.base_delay_s, self.max_delay_s),
            retry=retry_if_exception(is_transient),
            reraise=True,
        )
        try:
            raw = await retrying(attempt)
        except Exception as exc:
            self._count_failure()
            raise self._wrap(model, exc, attempts, kwargs) from None
        latency = time.perf_counter() - t0
        resp = self._response(model, kind, raw, latency, attempts)
        self._count_success(resp)
        return resp

    def _wrap(
        self, model: str, exc: BaseException, attempts: int, kwargs: dict[str, Any]
    ) -> LLMError:
        return wrap_error(model, exc, attempts, self._secrets(kwargs))

    def _response(
        self, model: str, kind: str, raw: Any, latency: float, attempts: int
    ) -> LLMResponse:
        choice = raw.choices[0]
        tool_calls: list[dict[str, Any]] = []
        if kind == "chat":
            message = getattr(choice, "message", None)
            text = getattr(message, "content", None) or ""
            for call in getattr(message, "tool_calls", None) or []:
                tool_calls.append(_decode_tool_call(call))
        else:
            text = getattr(choice, "text", None) or ""
        usage = getattr(raw, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        cost, known = _cost(raw, kind)
        return LLMResponse(
            model=model,
            text=text,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            latency_s=latency,
            cost_usd=cost,
            cost_known=known,
            finish_reason=getattr(choice, "finish_reason", None),
            attempts=attempts,
            tool_calls=tool_calls,
        )


def _decode_tool_call(call: Any) -> dict[str, Any]:
    function = getattr(call, "function", None)
    if function is None and isinstance(call, dict):
        function = call.get("function") or {}
    get = (lambda k: function.get(k)) if isinstance(function, dict) else (
        lambda k: getattr(function, k, None)
    )
    raw_args = get("arguments")
    if isinstance(raw_args, dict):
        arguments: Any = raw_args
    else:
        try:
            arguments = json.loads(raw_args) if raw_args else {}
        except (TypeError, ValueError):
            arguments = {"_raw": raw_args}
    call_id = call.get("id") if isinstance(call, dict) else getattr(call, "id", None)
    return {"name": get("name"), "arguments": arguments, "id": call_id}


def _cost(raw: Any, kind: str) -> tuple[float, bool]:
    litellm = _llm()
    try:
        call_type = "acompletion" if kind == "chat" else "atext_completion"
        cost = litellm.completion_cost(completion_response=raw, call_type=call_type)
    except Exception:
        return 0.0, False
    if cost is None:
        return 0.0, False
    return float(cost), True
