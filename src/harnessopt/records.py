"""Pydantic records shared across module borders: one record type per concept.

Everything that crosses a module border (and everything written to the run directory) is one of
these, so the run directory is plain JSON a person can read and a later version can validate.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SplitName = Literal["train", "search", "test"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- tasks and examples


class Task(Record):
    """What a harness sees of one benchmark item: never the expected answer.

    `workspace` (agentic benchmarks) maps relative paths to file contents: the worker writes
    them into the rollout's scratch directory, where the harness reaches them through
    `ctx.workspace`'s tools."""

    id: str
    input: str
    extra: dict[str, Any] = Field(default_factory=dict)
    workspace: dict[str, str] | None = None


class LabelledTask(Task):
    """A task with its expected answer. Lives in the parent process only (scorers, store)."""

    target: str

    def public(self) -> Task:
        return Task(id=self.id, input=self.input, extra=self.extra, workspace=self.workspace)


class Example(Record):
    """One labelled item of the train split; harnesses may read these (few-shot, retrieval)."""

    id: str
    input: str
    target: str
    extra: dict[str, Any] = Field(default_factory=dict)


class Score(Record):
    """A scorer's verdict on one answer: value in [0, 1] and a short human explanation."""

    value: float = Field(ge=0.0, le=1.0)
    explanation: str = ""
    # Set when the scorer raised (Benchmark.score catches it): the 0 is then no verdict, and the
    # rollout counts as a scorer error, not as a wrong answer.
    error: str | None = None


# --------------------------------------------------------------------------- model calls


DEFAULT_MAX_TOKENS = 256  # a model call's max_tokens when neither the run nor the harness sets one


class ModelParams(Record):
    """Sampling parameters of one model call. Unknown provider-specific keys go in `extra`."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


class LLMResponse(Record):
    """What the gateway returns for one successful call, with its accounting."""

    model: str
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cost_known: bool = True
    finish_reason: str | None = None
    attempts: int = 1
    # Native tool calls (meta-agent side), as returned by the provider, already JSON-decoded.
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)


class Usage(Record):
    """Running totals for a set of calls (a gateway, a rollout, an evaluation)."""

    calls: int = 0
    failed_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.failed_calls += other.failed_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd


class ModelCall(Record):
    """One model call made on behalf of a rollout, as recorded by the parent's broker."""

    kind: Literal["chat", "complete"]
    model: str
    messages: list[dict[str, Any]] | None = None
    prompt: str | None = None
    params: ModelParams = Field(default_factory=ModelParams)
    response: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None
    started_at: float = 0.0


class ToolCall(Record):
    """One call of a registered tool (or a context service such as example retrieval)."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)
    result: Any = None
    error: str | None = None
    latency_s: float = 0.0
    started_at: float = 0.0  # wall clock; orders tool calls among model calls in a multi-step trace


class WorkspaceChanges(Record):
    """What a rollout left changed in its task's workspace, as the worker saw it at the end.

    The scorer rebuilds the final state from the task's files plus these (a check script runs on
    it); `omitted` lists files that changed but were not sent (binary, symlinks, over the cap)."""

    changed: dict[str, str] = Field(default_factory=dict)
    deleted: list[str] = Field(default_factory=list)
    omitted: list[str] = Field(default_factory=list)


class LogLine(Record):
    t: float
    msg: str


class RolloutError(Record):
    type: str
    message: str
    traceback: str | None = None


RolloutStatus = Literal["ok", "error", "timeout"]


class RolloutTrace(Record):
    """The full record of one harness run on one task (one trial). One JSON file on disk."""

    cache_key: str
    candidate_id: str
    task_id: str
    task_input: str
    task_extra: dict[str, Any] = Field(default_factory=dict)
    trial: int
    split: SplitName
    harness_hash: str
    model: str
    params: ModelParams = Field(default_factory=ModelParams)
    model_calls: list[ModelCall] = Field(default_factory=list)
    tool_calls: list[ToolCall] = Field(default_factory=list)
    logs: list[LogLine] = Field(default_factory=list)
    stdout: str = ""
    stderr: str = ""
    answer: str | None = None
    error: RolloutError | None = None
    status: RolloutStatus = "ok"
    workspace_changes: WorkspaceChanges | None = None  # agentic tasks: files the rollout changed
    score: float = 0.0
    explanation: str = ""
    started_at: float = 0.0
    finished_at: float = 0.0
    wall_s: float = 0.0
    usage: Usage = Field(default_factory=Usage)
    # Set when this trace was copied from an identical earlier rollout instead of being paid again.
    reused_from: str | None = None


# --------------------------------------------------------------------------- evaluations


class TaskResult(Record):
    """Per-task aggregate over trials, as shown in summaries and used by paired statistics."""

    task_id: str
    scores: list[float]
    errors: int = 0

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else 0.0


class EvalResult(Record):
    """The outcome of evaluating one harness on one split of one benchmark."""

    run_dir: str
    candidate_id: str
    harness_path: str
    harness_hash: str
    benchmark: str
    split: SplitName
    model: str
    n_tasks: int
    trials: int
    score: float
    ci_low: float
    ci_high: float
    n_rollouts: int
    n_errors: int  # rollouts that ended in an error (scorer errors included)
    n_timeouts: int
    n_scorer_errors: int = 0  # the scorer raised, or returned something other than a score in [0, 1]
    errors_sample: list[str] = Field(default_factory=list)  # the first few distinct errors, one line each
    n_cached: int = 0  # rollouts copied from identical code under another candidate
    charged: int = 0  # rollouts this evaluation paid for (the budget's count)
    reused: int = 0  # (task, trial) pairs it was served without paying: this run had already run them
    status: str = "ok"  # ok | cut (stopped at its wall-clock limit) | "<n> failed"
    usage: Usage = Field(default_factory=Usage)  # of the rollouts it paid for
    wall_s: float = 0.0
    tasks: list[TaskResult] = Field(default_factory=list)
