"""Model-call errors: the error classes, which provider failures are worth retrying, one-line
messages with a hint, and scrubbing of API keys out of every message.

Errors are :class:`LLMError` subclasses whose message is one line naming the model, what went
wrong and what to do. API keys never appear in them: messages are scrubbed of the gateway's key,
of key-like environment variable values and of key-shaped tokens, and the provider exception is
not chained (it may quote the key).
"""

from __future__ import annotations

import asyncio
import email.utils
import os
import re
import time
from typing import Any

from harnessopt.errors import UserError
from harnessopt.llm.registry import LOCAL_MODEL

_litellm: Any = None


def _llm() -> Any:
    """Import litellm lazily (it is slow to import) with the offline cost map."""
    global _litellm
    if _litellm is None:
        import litellm  # harnessopt/__init__ set LITELLM_LOCAL_MODEL_COST_MAP: no price-list fetch

        litellm.suppress_debug_info = True  # no "Provider List: ..." banners on errors
        _litellm = litellm
    return _litellm


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


class EmptyResponse(Exception):
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
    if isinstance(exc, (EmptyResponse, asyncio.TimeoutError, TimeoutError, ConnectionError)):
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
    if isinstance(exc, EmptyResponse):
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
                f"'anthropic/', 'ollama/', or the embedded model '{LOCAL_MODEL}'"
            )
        return "the provider rejected the request: check the parameters and messages"
    return "unexpected failure: see the message above"


def wrap_error(model: str, exc: BaseException, attempts: int, secrets: list[str]) -> LLMError:
    """The one-line, key-free LLMError for a provider failure that ended a call."""
    transient = _is_transient(exc)
    status = _status_of(exc)
    name = type(exc).__name__.lstrip("_")
    if not transient and _missing_key(exc):
        name, status = "MissingAPIKey", None
    where = f" (HTTP {status})" if status else ""
    message = f"{model}: {name}{where}: {_detail(exc)} - {_hint(model, exc, transient, attempts, keyed=bool(secrets))}"
    message = _redact(message, secrets)
    cls = TransientLLMError if transient else PermanentLLMError
    return cls(message, model=model, status_code=status, attempts=attempts, kind=name)


is_transient = _is_transient
error_detail = _detail
