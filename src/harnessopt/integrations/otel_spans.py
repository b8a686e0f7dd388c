"""One rollout trace as an OpenTelemetry span tree, in the GenAI semantic conventions.

    invoke_agent <candidate>                 the rollout: task, answer, score, status, token totals
      chat <model> | text_completion <model>   one span per model call; the prompt and the response
                                               are its event gen_ai.client.inference.operation.details
                                               (gen_ai.input.messages, gen_ai.output.messages)
      execute_tool <tool>                      one span per tool call: its arguments and result

The rollout span also carries one `harnessopt.log` event per log line and, when the rollout
failed, an `exception` event (type, message, traceback). Attribute names follow the GenAI
conventions (gen_ai.operation.name, gen_ai.provider.name, gen_ai.request.model,
gen_ai.request.temperature/max_tokens/top_p/seed/stop_sequences, gen_ai.usage.input_tokens/
output_tokens, gen_ai.agent.name, gen_ai.tool.name, error.type); what the conventions have no
name for is under `harnessopt.*`.

Spans are made after the fact from the times the trace recorded. Model and tool calls record their
start; tool calls of traces written before tool starts were recorded are laid end to end from the
rollout's start in the order they were made (marked `harnessopt.start_estimated`). Ids are derived from the run and
the rollout, so exporting a run twice yields the same trace ids (a backend shows one trace, not
two copies). Every text is scrubbed of key-shaped tokens (redaction.py) and cut at MAX_TEXT.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from harnessopt.integrations.redaction import scrub, scrub_value
from harnessopt.records import ModelCall, RolloutTrace, ToolCall

MAX_TEXT = 64_000  # characters of one prompt, response or tool result kept in a span
DETAILS_EVENT = "gen_ai.client.inference.operation.details"
# litellm provider prefixes -> the conventions' well-known gen_ai.provider.name values
_PROVIDERS = {
    "openai": "openai", "text-completion-openai": "openai", "anthropic": "anthropic", "bedrock": "aws.bedrock",
    "azure": "azure.ai.openai", "azure_ai": "azure.ai.inference", "gemini": "gcp.gemini",
    "vertex_ai": "gcp.vertex_ai", "groq": "groq", "mistral": "mistral_ai", "xai": "x_ai", "deepseek": "deepseek",
    "perplexity": "perplexity", "cohere": "cohere", "watsonx": "ibm.watsonx.ai", "local": "llama_cpp",
}


class DerivedIds(IdGenerator):
    """Trace and span ids drawn from a generator seeded per rollout (`start`): stable across exports."""

    def __init__(self) -> None:
        self._rng = random.Random(0)

    def start(self, *identity: object) -> None:
        digest = hashlib.sha256("\x1f".join(map(str, identity)).encode("utf-8")).digest()
        self._rng = random.Random(int.from_bytes(digest[:16], "big"))

    def generate_trace_id(self) -> int:
        return self._rng.getrandbits(128) or 1

    def generate_span_id(self) -> int:
        return self._rng.getrandbits(64) or 1


def provider_name(model: str) -> str:
    """gen_ai.provider.name for a litellm model string ("openai/gpt-4o-mini" -> "openai")."""
    prefix, _, rest = model.partition("/")
    if rest:
        return _PROVIDERS.get(prefix, prefix)
    bare = model.lower()
    if bare.startswith(("gpt-", "o1", "o3", "o4", "chatgpt")):
        return "openai"
    if bare.startswith("claude"):
        return "anthropic"
    if bare.startswith("gemini"):
        return "gcp.gemini"
    return "unknown"


def request_model(model: str) -> str:
    """gen_ai.request.model: the model's own name, without litellm's provider prefix."""
    prefix, _, rest = model.partition("/")
    return rest if rest and prefix in _PROVIDERS else model


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = scrub(text)
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"...[{len(text) - MAX_TEXT} more characters]"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _messages(call: ModelCall) -> list[dict[str, Any]]:
    """The call's input in the conventions' message shape (role + parts)."""
    if call.kind == "complete":
        return [{"role": "user", "parts": [{"type": "text", "content": _text(call.prompt or "")}]}]
    out = []
    for m in call.messages or []:
        content = m.get("content", "")
        out.append({"role": str(m.get("role", "user")), "parts": [{"type": "text", "content": _text(content)}]})
    return out


def _model_call_span(tracer: Tracer, parent: Any, call: ModelCall, fallback_start: float) -> None:
    operation = "chat" if call.kind == "chat" else "text_completion"
    name = request_model(call.model)
    start = call.started_at or fallback_start
    p = call.params
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": operation, "gen_ai.provider.name": provider_name(call.model),
        "gen_ai.request.model": name, "gen_ai.usage.input_tokens": call.prompt_tokens,
        "gen_ai.usage.output_tokens": call.completion_tokens, "harnessopt.model": call.model,
        "harnessopt.cost_usd": call.cost_usd,
    }
    for key, value in (("temperature", p.temperature), ("max_tokens", p.max_tokens), ("top_p", p.top_p),
                       ("seed", p.seed)):
        if value is not None:
            attributes[f"gen_ai.request.{key}"] = value
    if p.stop:
        attributes["gen_ai.request.stop_sequences"] = [scrub(s) for s in p.stop]
    if call.error is None:
        attributes["gen_ai.response.model"] = name
    # The embedded model runs in this process: INTERNAL, as the conventions allow; providers: CLIENT.
    kind = SpanKind.INTERNAL if call.model.startswith("local/") else SpanKind.CLIENT
    span = tracer.start_span(f"{operation} {name}", context=parent, kind=kind, attributes=attributes,
                             start_time=_ns(start))
    output = [] if call.response is None else [{
        "role": "assistant", "parts": [{"type": "text", "content": _text(call.response)}],
        "finish_reason": "unknown",  # not recorded by the gateway
    }]
    span.add_event(DETAILS_EVENT, {"gen_ai.operation.name": operation,
                                   "gen_ai.input.messages": json.dumps(_messages(call), ensure_ascii=False),
                                   "gen_ai.output.messages": json.dumps(output, ensure_ascii=False)},
                   timestamp=_ns(start + call.latency_s))
    if call.error is not None:
        span.set_attribute("error.type", "ModelCallError")
        span.set_status(Status(StatusCode.ERROR, _text(call.error)[:1000]))
    span.end(end_time=_ns(start + call.latency_s))


def _tool_call_span(tracer: Tracer, parent: Any, tool: ToolCall, start: float, estimated: bool) -> None:
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool.name, "gen_ai.tool.type": "function",
        "gen_ai.tool.call.arguments": _text(scrub_value(tool.args)), "harnessopt.start_estimated": estimated,
    }
    if tool.result is not None:
        attributes["gen_ai.tool.call.result"] = _text(scrub_value(tool.result))
    span = tracer.start_span(f"execute_tool {tool.name}", context=parent, kind=SpanKind.INTERNAL,
                             attributes=attributes, start_time=_ns(start))
    if tool.error is not None:
        span.set_attribute("error.type", tool.error.split(":", 1)[0][:100] or "ToolError")
        span.set_status(Status(StatusCode.ERROR, _text(tool.error)[:1000]))
    span.end(end_time=_ns(start + tool.latency_s))


def emit_rollout(tracer: Tracer, ids: DerivedIds, rollout: RolloutTrace, *, run_id: str) -> None:
    """Emit one rollout's span tree through `tracer` (whose provider uses `ids`)."""
    ids.start(run_id, rollout.candidate_id, rollout.task_id, rollout.trial, rollout.cache_key)
    starts = [c.started_at for c in rollout.model_calls if c.started_at]
    begin = rollout.started_at or min(starts, default=0.0)
    end = max(rollout.finished_at, begin + rollout.wall_s,
              max((c.started_at + c.latency_s for c in rollout.model_calls), default=begin))
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": rollout.candidate_id,
        "gen_ai.agent.id": rollout.harness_hash, "gen_ai.provider.name": provider_name(rollout.model),
        "gen_ai.request.model": request_model(rollout.model),
        "gen_ai.usage.input_tokens": rollout.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": rollout.usage.completion_tokens,
        "harnessopt.run_id": run_id, "harnessopt.candidate": rollout.candidate_id,
        "harnessopt.task.id": rollout.task_id, "harnessopt.task.input": _text(rollout.task_input),
        "harnessopt.trial": rollout.trial, "harnessopt.split": rollout.split, "harnessopt.status": rollout.status,
        "harnessopt.score": rollout.score, "harnessopt.explanation": _text(rollout.explanation),
        "harnessopt.cost_usd": rollout.usage.cost_usd, "harnessopt.model": rollout.model,
        "harnessopt.cache_key": rollout.cache_key,
    }
    if rollout.answer is not None:
        attributes["harnessopt.answer"] = _text(rollout.answer)
    if rollout.reused_from:
        attributes["harnessopt.reused_from"] = rollout.reused_from
    root = tracer.start_span(f"invoke_agent {rollout.candidate_id}", kind=SpanKind.INTERNAL,
                             attributes=attributes, start_time=_ns(begin))
    parent = otel_trace.set_span_in_context(root)
    for call in rollout.model_calls:
        _model_call_span(tracer, parent, call, begin)
    cursor = begin
    for tool in rollout.tool_calls:
        recorded = getattr(tool, "started_at", 0.0) or 0.0  # exact when the trace records it
        start = recorded or cursor
        _tool_call_span(tracer, parent, tool, start, estimated=not recorded)
        cursor = start + tool.latency_s
    for line in rollout.logs:
        root.add_event("harnessopt.log", {"message": _text(line.msg)}, timestamp=_ns(line.t))
    if rollout.status != "ok":
        error = rollout.error
        root.set_attribute("error.type", error.type if error else rollout.status)
        if error is not None:
            root.add_event("exception", {"exception.type": error.type, "exception.message": _text(error.message),
                                         "exception.stacktrace": _text(error.traceback or "")},
                           timestamp=_ns(end))
        root.set_status(Status(StatusCode.ERROR, _text(error.message if error else rollout.status)[:1000]))
    root.end(end_time=_ns(end))
