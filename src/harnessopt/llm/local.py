"""The embedded models (``local/...``), run in-process by llama.cpp.

Which models exist, where their weights come from and how each one chats is in
:mod:`harnessopt.llm.registry`; assembling and verifying the GGUF is :mod:`harnessopt.llm.model_files`.
``HARNESSOPT_LOCAL_GGUF`` runs another GGUF file under the name ``local/gemma-3-270m``.

Why the gateway calls this module directly instead of routing it through a litellm ``CustomLLM``:

* ``complete`` must be real text completion (Gemma is a base model with no chat template).
  litellm's ``text_completion`` turns a prompt into a chat message for every provider but
  OpenAI's, so a custom provider would only ever see chat messages and lose the raw prompt.
* Grammar-constrained decoding needs the JSON schema or GBNF (and a cached compiled grammar) to
  reach llama.cpp untouched; litellm validates and filters provider params on the way.
* There is nothing for litellm to add here: no HTTP, no keys, no prices, no retries.

Concurrency: each model is loaded lazily, once per process, and owns a lock (a llama.cpp context
is not thread-safe). Every generation of every model runs in ONE shared worker thread: llama.cpp
threads wait on spinning barriers, so two models generating at once on a small machine each use
every core and slow each other far more than 2x (bench/local_models.py measures it). Queued calls
wait in that thread's queue, off the event loop and its default executor.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harnessopt.llm import llama_setup
from harnessopt.llm.local_format import (
    GEMMA_STOPS,
    Constraint,
    constraint_of,
    format_gemma_chat,
    plain_messages,
)
from harnessopt.llm.model_files import ensure_model_file
from harnessopt.llm.registry import (
    LOCAL_MODEL,
    LOCAL_MODELS,
    LocalModelError,
    LocalModelSpec,
    is_local_model,
    local_spec,
)
from harnessopt.records import ModelParams

__all__ = [
    "DEFAULT_MAX_TOKENS", "GGUF_ENV", "LOCAL_MODEL", "LocalModel", "LocalModelError", "LocalResult",
    "acomplete", "achat", "format_gemma_chat", "get_local_model", "is_local_model", "model_path",
]

#: Generated tokens when the caller gives no ``max_tokens`` (a base model rarely stops by itself).
DEFAULT_MAX_TOKENS = 256
#: Environment variable naming another GGUF file to run as ``local/gemma-3-270m``.
GGUF_ENV = "HARNESSOPT_LOCAL_GGUF"

# llama.cpp sampling knobs a caller may pass through ``ModelParams.extra``; other keys
# (api_base, ...) mean nothing in-process and are ignored.
_LLAMA_EXTRA_KEYS = {
    "top_k", "min_p", "typical_p", "repeat_penalty", "frequency_penalty", "presence_penalty",
    "logit_bias", "mirostat_mode", "mirostat_tau", "mirostat_eta",
}


@dataclass
class LocalResult:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str | None


def model_path(model: str = LOCAL_MODEL) -> Path:
    """The verified GGUF file of ``model``, assembled from its part packages on first use."""
    spec = local_spec(model)
    override = os.environ.get(GGUF_ENV)
    if override and model == LOCAL_MODEL:
        path = Path(override).expanduser()
        if not path.is_file():
            raise LocalModelError(f"{GGUF_ENV}={override} is not a file")
        return path
    return ensure_model_file(spec)


class LocalModel:
    """One loaded GGUF. Thread-safe: its generations are serialised by its own lock."""

    def __init__(self, spec: LocalModelSpec, path: Path) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise LocalModelError(f"package llama-cpp-python is missing; {spec.install_hint}") from exc
        llama_setup.quiet_llama_logs(llama_cpp)
        t0 = time.perf_counter()
        self.extra_buffer_types = llama_setup.use_extra_buffer_types()
        with llama_setup.model_params(use_extra_bufts=self.extra_buffer_types):
            self.llama = llama_cpp.Llama(model_path=str(path), n_ctx=spec.context_size,
                                         n_threads=llama_setup.n_threads(), verbose=False)
        self.load_s = time.perf_counter() - t0
        self.spec = spec
        self.path = path
        self.n_ctx = spec.context_size
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}
        self._chat_formatter: Any = None
        if spec.chat_template == "gguf":
            self._chat_formatter = self._gguf_chat_formatter()

    def _gguf_chat_formatter(self) -> Any:
        """The chat template stored in the GGUF, as llama-cpp-python's own chat handler renders it."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise LocalModelError(f"{self.spec.name}: the GGUF carries no chat template")
        model = self.llama._model
        eos, bos = self.llama.token_eos(), self.llama.token_bos()
        return Jinja2ChatFormatter(template=template,
                                   eos_token=model.token_get_text(eos) if eos != -1 else "",
                                   bos_token=model.token_get_text(bos) if bos != -1 else "")

    # -- grammars
    def grammar_for(self, constraint: Constraint | dict[str, Any] | bool) -> Any:
        """The compiled llama.cpp grammar for a constraint (cached: compiling is not free)."""
        if not isinstance(constraint, Constraint):  # a bare schema, or True for any JSON
            fmt = {"type": "json_object"} if constraint is True else {"type": "json_object", "schema": constraint}
            constraint = constraint_of(fmt)
        grammar = self._grammars.get(constraint.key)
        if grammar is None:
            from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

            try:
                if constraint.kind == "json":
                    grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
                elif constraint.kind == "schema":
                    grammar = LlamaGrammar.from_json_schema(constraint.text, verbose=False)
                else:
                    grammar = LlamaGrammar.from_string(constraint.text, verbose=False)
            except Exception as exc:  # the converters raise plain exceptions on odd input
                raise LocalModelError(f"cannot compile the JSON schema to a grammar: {exc}") from exc
            self._check_grammar(grammar, constraint)
            self._grammars[constraint.key] = grammar
        return grammar

    def _check_grammar(self, grammar: Any, constraint: Constraint) -> None:
        """Parse the grammar once against this model's vocabulary before any generation uses it.

        llama-cpp-python does not check GBNF: a grammar llama.cpp cannot parse becomes a NULL
        sampler and the first generation segfaults the whole process.
        """
        import llama_cpp

        with llama_setup.captured_llama_errors() as errors:
            sampler = llama_cpp.llama_sampler_init_grammar(
                self.llama._model.vocab, grammar._grammar.encode("utf-8"), grammar._root.encode("utf-8"))
        if not sampler:
            what = "GBNF grammar" if constraint.kind == "gbnf" else "grammar made from the JSON schema"
            why = "; ".join(errors[-2:]) or "llama.cpp rejected it"
            raise LocalModelError(f"cannot compile the {what}: {why} (llama.cpp printed where on stderr)")
        llama_cpp.llama_sampler_free(sampler)

    # -- chat formatting
    def render_chat(self, messages: list[dict[str, Any]]) -> tuple[str, list[str]]:
        """The prompt text for ``messages`` in this model's chat format, and its stop strings."""
        if self._chat_formatter is None:
            return format_gemma_chat(messages), list(GEMMA_STOPS)
        rendered = self._chat_formatter(messages=plain_messages(messages))
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
        return rendered.prompt, [s for s in stop if s]

    # -- generation
    def _generate(self, prompt: str | list[int], params: ModelParams | None,
                  response_format: dict[str, Any] | None, extra_stop: list[str]) -> LocalResult:
        params = params or ModelParams()
        kwargs: dict[str, Any] = dict(self.spec.sampling)  # model defaults; the caller's values win
        kwargs.update({
            "max_tokens": params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS,
            "stop": list(params.stop or []) + extra_stop,
        })
        for name in ("temperature", "top_p", "seed"):
            if getattr(params, name) is not None:
                kwargs[name] = getattr(params, name)
        kwargs.update({k: v for k, v in params.extra.items() if k in _LLAMA_EXTRA_KEYS})
        constraint = constraint_of(response_format)
        with self._lock:
            if constraint is not None:
                kwargs["grammar"] = self.grammar_for(constraint)
            try:
                out = self.llama.create_completion(prompt, **kwargs)
            except ValueError as exc:  # "Requested tokens (...) exceed context window of ..."
                hint = ": shorten the prompt" if "context window" in str(exc) else ""
                raise LocalModelError(f"{exc}{hint}") from exc
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return LocalResult(text=choice.get("text") or "", prompt_tokens=int(usage.get("prompt_tokens", 0)),
                           completion_tokens=int(usage.get("completion_tokens", 0)),
                           finish_reason=choice.get("finish_reason"))

    def complete(self, prompt: str, params: ModelParams | None = None, *,
                 response_format: dict[str, Any] | None = None) -> LocalResult:
        """Raw text completion: the prompt goes to the model as is, no template."""
        return self._generate(prompt, params, response_format, [])

    def chat(self, messages: list[dict[str, Any]], params: ModelParams | None = None, *,
             response_format: dict[str, Any] | None = None) -> LocalResult:
        prompt, stops = self._chat_prompt(messages)
        result = self._generate(prompt, params, response_format, stops)
        if constraint_of(response_format) is None:
            result.text = result.text.strip()
        return result

    def _chat_prompt(self, messages: list[dict[str, Any]]) -> tuple[str | list[int], list[str]]:
        """What a chat sends to llama.cpp, and its stop strings. With a GGUF template the tokens, as
        llama-cpp-python's chat handler makes them: the template wrote any BOS itself and its special
        tokens (<|im_start|>) must parse as such. Otherwise the text, which llama.cpp tokenizes with a BOS."""
        text, stops = self.render_chat(messages)
        if self._chat_formatter is not None:
            return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True), stops
        return text, stops

    def option_logprobs(self, messages: list[dict[str, Any]], options: list[str]) -> list[float]:
        """Log-probability of each option's first token as the reply's first token (one forward pass,
        no sampling): how a judge's choice between "A" and "B" is read without its sampling noise, and
        compared across both orders to take out a position bias."""
        import numpy as np

        prompt, _ = self._chat_prompt(messages)
        with self._lock:
            tokens = prompt if isinstance(prompt, list) else self.llama.tokenize(prompt.encode("utf-8"), special=True)
            if len(tokens) >= self.n_ctx:
                raise LocalModelError(f"the prompt has {len(tokens)} tokens, over the context of {self.n_ctx}: shorten it")
            self.llama.reset()
            self.llama.eval(tokens)
            # Without logits_all (which would cost memory on every call) llama-cpp-python keeps no
            # scores after eval(); the context still holds the last position's logits.
            logits = np.array(np.ctypeslib.as_array(self.llama._ctx.get_logits(), shape=(self.llama.n_vocab(),)),
                              dtype=np.float64)
        top = logits.max()
        log_total = top + np.log(np.exp(logits - top).sum())
        firsts = [self.llama.tokenize(option.encode("utf-8"), add_bos=False, special=False)[0] for option in options]
        return [float(logits[t] - log_total) for t in firsts]


_models: dict[str, LocalModel] = {}
_failed: dict[str, LocalModelError] = {}  # a model that cannot load is not re-hashed on every call
_load_locks: dict[str, threading.Lock] = {name: threading.Lock() for name in LOCAL_MODELS}


@atexit.register
def _close_models() -> None:
    """Free llama.cpp memory before interpreter teardown (``Llama.__del__`` fails that late)."""
    for name in list(_models):
        instance = _models.pop(name, None)
        with contextlib.suppress(Exception):
            instance.llama.close()


def get_local_model(model: str = LOCAL_MODEL) -> LocalModel:
    """The process-wide instance for ``model`` (loaded on first call, once; other models are not
    held up while it loads)."""
    spec = local_spec(model)
    instance = _models.get(model)
    if instance is None:
        with _load_locks[model]:
            instance = _models.get(model)
            if instance is None:
                if model in _failed:
                    raise _failed[model]
                try:
                    instance = LocalModel(spec, model_path(model))
                except LocalModelError as exc:
                    _failed[model] = exc
                    raise
                _models[model] = instance
    return instance


def loaded_models() -> list[str]:
    return list(_models)


# One worker thread runs every generation of every model (see the module docstring).
_executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="harnessopt-llama")


async def _in_thread(fn: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(_executor, fn)


async def acomplete(model: str, prompt: str, params: ModelParams | None = None, *,
                    response_format: dict[str, Any] | None = None) -> LocalResult:
    return await _in_thread(lambda: get_local_model(model).complete(prompt, params, response_format=response_format))


async def achat(model: str, messages: list[dict[str, Any]], params: ModelParams | None = None, *,
                response_format: dict[str, Any] | None = None) -> LocalResult:
    return await _in_thread(lambda: get_local_model(model).chat(messages, params, response_format=response_format))
