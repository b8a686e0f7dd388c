"""Check a model string before a run starts, so a bad one costs seconds and one line, not a run.

For an embedded model: that it exists, that llama-cpp-python and its part packages are installed
and that its GGUF is assembled and verified (once; later runs only read a marker). For a remote
model: that litellm can route the string and the API key is there. For a local server
(``ollama/...``, or any model with an ``api_base``): that something answers at the endpoint
within about two seconds.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

from harnessopt.llm.errors import PermanentLLMError, _llm
from harnessopt.llm.gateway import Gateway
from harnessopt.llm.registry import (
    LOCAL_MODEL,
    LOCAL_MODELS,
    LocalModelError,
    is_local_model,
)

#: Seconds a local server gets to accept a connection and answer an HTTP request.
ENDPOINT_TIMEOUT_S = 2.0
_OLLAMA_PROVIDERS = ("ollama", "ollama_chat")
_OLLAMA_DEFAULT = "http://localhost:11434"


def _preflight_local(model: str) -> None:
    from harnessopt.llm import local  # llama.cpp itself is not imported here

    spec = LOCAL_MODELS.get(model)
    if spec is None:
        raise PermanentLLMError(f"{model}: unknown embedded model; the embedded models are {', '.join(LOCAL_MODELS)} "
                                "(other models: any litellm string such as openai/gpt-4o-mini)",
                                model=model, kind="UnknownModel")
    if importlib.util.find_spec("llama_cpp") is None:
        raise PermanentLLMError(f"{model}: the embedded model is not installed (llama-cpp-python is missing); "
                                f"{spec.install_hint} (or pick a litellm model string)",
                                model=model, kind="MissingExtra")
    try:
        local.model_path(model)  # assembles and verifies the GGUF the first time
    except LocalModelError as exc:
        raise PermanentLLMError(str(exc) if str(exc).startswith(model) else f"{model}: {exc}",
                                model=model, kind=type(exc).__name__) from None


def local_endpoint(model: str, api_base: str | None) -> str | None:
    """The URL of the server a call to ``model`` will reach, when that server is the user's own."""
    if api_base:
        return api_base
    if model.split("/", 1)[0] in _OLLAMA_PROVIDERS:
        return os.environ.get("OLLAMA_API_BASE") or _OLLAMA_DEFAULT
    return None


def endpoint_problem(url: str, timeout_s: float = ENDPOINT_TIMEOUT_S) -> str | None:
    """Why nothing answers HTTP at ``url`` (None when something does, whatever the status)."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if not parts.hostname:
        return "not a URL"
    secure = parts.scheme == "https"
    try:
        port = parts.port or (443 if secure else 80)
    except ValueError:
        return "bad port"
    conn_cls = http.client.HTTPSConnection if secure else http.client.HTTPConnection
    kwargs: dict[str, Any] = {"timeout": timeout_s}
    if secure:  # only liveness matters here: a self-signed certificate still answers
        kwargs["context"] = ssl._create_unverified_context()
    conn = conn_cls(parts.hostname, port, **kwargs)
    try:
        conn.request("GET", parts.path or "/")
        conn.getresponse().read(0)
    except ConnectionRefusedError:
        return "connection refused"
    except (socket.timeout, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    except socket.gaierror:
        return f"unknown host {parts.hostname}"
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"[:120]
    finally:
        conn.close()
    return None


def check_endpoint(model: str, api_base: str | None) -> None:
    url = local_endpoint(model, api_base)
    if url is None:
        return
    problem = endpoint_problem(url)
    if problem is None:
        return
    if api_base:
        fix = "start the server, or fix api_base"
    else:
        fix = "start it with `ollama serve`, or set OLLAMA_API_BASE to where it runs"
    raise PermanentLLMError(f"{model}: no server answers at {url} ({problem}); {fix}",
                            model=model, kind="Unreachable")


def preflight(model: str, *, api_key: str | None = None, api_base: str | None = None) -> None:
    """Raise PermanentLLMError, whose one-line message names what is wrong and the fix, for an
    unknown or uninstalled embedded model, a string litellm cannot route, a missing API key
    (skipped when the caller supplies a key or an api_base of its own), or a local server
    that does not answer."""
    if not isinstance(model, str) or not model.strip():
        raise PermanentLLMError(f"{model!r}: empty model string; pass e.g. {LOCAL_MODEL} or openai/gpt-4o-mini",
                                model=str(model), kind="UnknownModel")
    if is_local_model(model):
        _preflight_local(model)
        return
    litellm = _llm()
    try:
        litellm.get_llm_provider(model=model, api_base=api_base)
    except Exception:  # noqa: BLE001 - litellm raises BadRequestError for strings it cannot route
        raise PermanentLLMError(
            f"{model}: unknown model string; use a litellm provider prefix such as openai/gpt-4o-mini, "
            f"anthropic/claude-3-5-haiku-latest, ollama/llama3, or the embedded model {LOCAL_MODEL}",
            model=model, kind="UnknownModel") from None
    check_endpoint(model, api_base)
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
            f"or use the embedded model {LOCAL_MODEL}", model=model, kind="MissingAPIKey")


def preflight_gateway(gateway: Any, model: str) -> None:
    """`preflight` for a model a Gateway (or the default one, gateway None) will call; other
    gateway objects (test doubles, custom routers) are trusted to know their models."""
    if gateway is None:
        preflight(model)
    elif isinstance(gateway, Gateway):
        preflight(model, api_key=gateway._api_key, api_base=gateway.api_base)
