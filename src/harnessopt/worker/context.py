"""The context API (`ctx`) that harness code sees, as it exists inside a sandboxed worker.

Model and tool calls do not run here: each one is a request to the parent's broker, which
makes the call, records it in the trace and replies. So a harness cannot forge or hide a call
by patching this object; it only changes what it asks for. Rendering and example retrieval are
local (pure computation over data the harness is allowed to see: the train split).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2 import StrictUndefined

from harnessopt.examples import ExampleIndex
from harnessopt.records import Example
from harnessopt.worker.readonly import _ReadOnly
from harnessopt.worker.workspace import Workspace, ToolResult

# Parameters a harness may set on a model call. Anything else (api_base, api_key, ...) is
# refused: a harness chooses how to ask, never where the request goes or whose key pays.
ALLOWED_PARAMS = frozenset({"temperature", "max_tokens", "top_p", "seed", "stop", "response_format"})

_jinja = ImmutableSandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True)


class ContextCallError(RuntimeError):
    """A model or tool call made through ctx failed; the message says why."""


@dataclass(frozen=True)
class TaskView:
    """The task as a harness sees it: id, input and the benchmark's public extra fields."""

    id: str
    input: str
    extra: dict[str, Any] = field(default_factory=dict)


# A function that sends one request to the parent and awaits its reply.
Requester = Callable[[str, dict[str, Any]], Awaitable[Any]]
# A function that sends one fire-and-forget event (log line, local tool record) to the parent.
Notifier = Callable[[str, dict[str, Any]], None]


class Examples(_ReadOnly):
    """The labelled train split: for few-shot prompts and retrieval. Never search or test items,
    and never the task being run (when a train task is evaluated, its own example is left out)."""

    __slots__ = ("_index", "_notify", "_exclude")

    def __init__(self, index: ExampleIndex, notify: Notifier, exclude: str | None = None):
        self._init(_index=index, _notify=notify, _exclude=exclude)

    def similar(self, text: str, k: int = 8) -> list[Example]:
        started = time.perf_counter()
        found = self._index.similar(str(text), int(k), exclude_id=self._exclude)
        self._record("examples.similar", {"text": str(text)[:200], "k": k}, found, started)
        return found

    def sample(self, k: int = 8, seed: int = 0) -> list[Example]:
        started = time.perf_counter()
        found = self._index.sample(int(k), seed=seed, exclude_id=self._exclude)
        self._record("examples.sample", {"k": k, "seed": seed}, found, started)
        return found

    def all(self) -> list[Example]:
        return self._index.all(exclude_id=self._exclude)

    def __len__(self) -> int:
        return self._index.size(exclude_id=self._exclude)

    def _record(self, name: str, args: dict, found: list[Example], started: float) -> None:
        self._notify(
            "tool_record",
            {
                "name": name,
                "args": args,
                "result": [e.id for e in found],
                "latency_s": time.perf_counter() - started,
            },
        )


class HarnessContext(_ReadOnly):
    """`ctx`: everything a harness may use. See docs/HARNESS.md for the full contract."""

    __slots__ = ("model", "labels", "examples", "workspace", "_request", "_notify")

    def __init__(
        self,
        *,
        model: str,
        labels: list[str] | None,
        examples: ExampleIndex,
        request: Requester,
        notify: Notifier,
        task_id: str | None = None,
        workspace: Workspace | None = None,
    ):
        """`task_id`: the task being run; its own example (a train task's) is never shown.
        `workspace`: the task's files and tools (agentic benchmarks), else None."""
        self._init(model=model, labels=list(labels) if labels else None,
                   examples=Examples(examples, notify, exclude=task_id), workspace=workspace,
                   _request=request, _notify=notify)

    async def chat(self, messages: list[dict[str, Any]], **params: Any) -> str:
        """Chat completion. `messages` are {"role", "content"} dicts. Returns the reply text."""
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        return await self._request("chat", {"messages": messages, "params": _check_params(params)})

    async def complete(self, prompt: str, **params: Any) -> str:
        """Plain text completion (what base models need). Returns the generated text."""
        return await self._request("complete", {"prompt": str(prompt), "params": _check_params(params)})

    def render(self, template: str, **variables: Any) -> str:
        """Render a jinja2 template in a sandboxed environment (undefined names are errors)."""
        return _jinja.from_string(template).render(**variables)

    async def tool(self, name: str, **args: Any) -> Any:
        """Call a registered tool (e.g. "calculator", "python"); it runs outside this process."""
        return await self._request("tool", {"name": str(name), "args": args})

    def log(self, msg: Any) -> None:
        """Add a line to this rollout's trace (lines are cut at 10,000 characters)."""
        self._notify("log", {"msg": str(msg)[:10_000]})


def _check_params(params: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - ALLOWED_PARAMS)
    if unknown:
        raise ValueError(
            f"unknown model parameter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(ALLOWED_PARAMS))}"
        )
    if isinstance(params.get("stop"), str):
        params = {**params, "stop": [params["stop"]]}
    return params


__all__ = ["HarnessContext", "TaskView", "ContextCallError", "ALLOWED_PARAMS", "Workspace", "ToolResult"]
