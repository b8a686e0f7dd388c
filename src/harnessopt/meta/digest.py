"""The failure digest: failure clusters computed by code from a candidate's traces.

Shown to the meta-agent at the start of every iteration, so even a small model starts from what
went wrong instead of having to find it by paging through traces. Each rollout that scored below
1 gets one or more tags (the answer echoes the prompt, is not a label, is empty, an exception, a
timeout, a wrong number, a failing test, ...); tags become clusters with counts and one or two
verbatim examples. Facts about the harness's model calls (chat vs completion, prompt size) and the
task model (base vs chat) come with it: they are what a person reading the traces would notice.

What each feedback mode shows is decided in `meta/views.py`; this module only computes.
"""

from __future__ import annotations

import json
import re
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from harnessopt.records import RolloutTrace

ECHO_MIN_WORDS = 4        # an answer shorter than this is never called an echo
ECHO_SHARE = 0.6          # share of the answer's words that also occur in the prompt
LONG_ANSWER_CHARS = 80    # a classification answer longer than this "has extra text"


class _R(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ClusterExample(_R):
    task_id: str
    trial: int
    input: str
    answer: str | None
    detail: str  # scorer verdict or error line


class Cluster(_R):
    """One kind of failure: a stable key, a plain-words name, a count and examples."""

    key: str
    name: str
    count: int
    examples: list[ClusterExample] = Field(default_factory=list)


class Digest(_R):
    candidate: str
    rollouts: int
    failed: int
    score: float
    clusters: list[Cluster] = Field(default_factory=list)
    facts: list[str] = Field(default_factory=list)   # model-call facts read off the traces
    confusions: list[str] = Field(default_factory=list)  # "expected X, answered Y" (classification)

    @property
    def top(self) -> list[str]:
        return [c.key for c in self.clusters[:3]]


# --------------------------------------------------------------------------- tagging


def _prompt_text(t: RolloutTrace) -> str:
    if not t.model_calls:
        return ""
    call = t.model_calls[-1]
    if call.prompt is not None:
        return call.prompt
    return "\n".join(str(m.get("content", "")) for m in call.messages or [])


def echoes_prompt(t: RolloutTrace) -> bool:
    """The answer repeats or continues the prompt (or the task input) instead of answering it.

    A base model given a chat turn typically continues the prompt text: most words of its answer
    then come from the prompt. Short answers (a label, a number) are never called echoes.
    """
    answer = _words(t.answer or "")
    if len(answer) < ECHO_MIN_WORDS:
        return False
    source = set(_words(_prompt_text(t) + " " + t.task_input))
    return sum(w in source for w in answer) / len(answer) >= ECHO_SHARE


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", (text or "").lower())


def tags_of(t: RolloutTrace, *, labels: list[str] | None, task_shape: str,
            step_ceiling: int | None = None) -> list[str]:
    """Failure tags of one rollout (empty for a full score). An agent loop (a rollout that called
    tools) also gets the loop tags of `loop_tags`; `step_ceiling` is its candidate's apparent
    step cap (see `step_ceiling`)."""
    if t.score >= 1.0:
        return []
    tags: list[str] = []
    explanation = t.explanation or ""
    if t.status == "timeout":
        tags.append("timeout")
    elif t.status == "error" or t.error is not None:
        etype = t.error.type if t.error else "Error"
        tags.append(f"exception:{etype}")
    if any(c.error for c in t.model_calls):
        tags.append("model_call_error")
    if t.status == "ok":
        answer = (t.answer or "").strip()
        if not answer:
            tags.append("empty_answer")
        else:
            if echoes_prompt(t):
                tags.append("echo")
            if task_shape == "classification":
                if explanation.startswith("no label in answer"):
                    tags.append("not_a_label")
                elif "expected" in explanation:
                    tags.append("wrong_label")
                if len(answer) > LONG_ANSWER_CHARS or "\n" in answer:
                    tags.append("extra_text")
            elif task_shape == "math":
                if explanation.startswith("no number"):
                    tags.append("no_number")
                else:
                    tags.append("wrong_number")
            elif task_shape == "code":
                if "timed out" in explanation:
                    tags.append("test_timeout")
                elif "SyntaxError" in explanation or "IndentationError" in explanation:
                    tags.append("syntax_error")
                else:
                    tags.append("failing_test")
            else:
                tags.append("wrong_answer")
    if is_agent_loop(t):
        tags += loop_tags(t, step_ceiling)
    elif hit_step_cap(t):  # no tool call made, but the harness says it gave up at its cap
        tags.append("step_cap")
    return tags or ["low_score"]


# --------------------------------------------------------------------------- agent loops

STEP_CAP_LOG = re.compile(r"step (cap|limit)|max(imum)?[ _]steps|too many steps", re.IGNORECASE)
LOOP_SYNTAX = re.compile(r"^\s*(thought|action|action input|observation|final answer)\s*:|\{\s*\"(action|tool|thought)\"|```",
                         re.IGNORECASE | re.MULTILINE)
LISTING_TOOLS = re.compile(r"(^|\.)(list|ls|describe)$")
MIN_CEILING_STEPS = 4  # a loop this short is not called capped from call counts alone
MIN_AT_CEILING = 3     # rollouts that must share the largest call count before it counts as a cap


def _tools(t: RolloutTrace) -> list:
    """The rollout's own tool calls (retrievals of few-shot examples are not steps)."""
    return [c for c in t.tool_calls if not c.name.startswith("examples.")]


def is_multi_step(t: RolloutTrace) -> bool:
    return len(t.model_calls) > 1 or bool(_tools(t))


def is_agent_loop(t: RolloutTrace) -> bool:
    """A rollout that acted through tools of its own. Several model calls without a tool are
    samples or retries (a majority vote, a repair), whose fixed call count is not a step cap."""
    return bool(_tools(t))


def step_ceiling(traces: list[RolloutTrace]) -> int | None:
    """A fixed step cap shows as a ceiling: the largest number of model calls of a candidate's
    agent-loop rollouts, shared by at least MIN_AT_CEILING of them. None when there is no such ceiling."""
    counts = Counter(len(t.model_calls) for t in traces if is_agent_loop(t))
    if not counts:
        return None
    top = max(counts)
    return top if top >= MIN_CEILING_STEPS and counts[top] >= MIN_AT_CEILING else None


def hit_step_cap(t: RolloutTrace, ceiling: int | None = None) -> bool:
    """The harness logged a step cap, or the rollout reached its candidate's call ceiling."""
    if any(STEP_CAP_LOG.search(line.msg) for line in t.logs):
        return True
    return ceiling is not None and len(t.model_calls) >= ceiling


def _key(call) -> str:
    return call.name + " " + json.dumps(call.args, sort_keys=True, default=str)


def repeated_tool_calls(t: RolloutTrace) -> int:
    """Tool calls identical (name and arguments) to an earlier call of the same rollout."""
    seen: set[str] = set()
    repeats = 0
    for call in _tools(t):
        key = _key(call)
        repeats += key in seen
        seen.add(key)
    return repeats


def _model_text(call) -> str:
    if call.prompt is not None:
        return call.prompt
    return "\n".join(str(m.get("content", "")) for m in call.messages or [])


def ignored_tool_errors(t: RolloutTrace) -> int:
    """Failed tool calls the loop went past: the same call made again later, or (when calls carry
    times) an error no later model call was shown."""
    calls = _tools(t)
    ignored = 0
    for i, call in enumerate(calls):
        if call.error is None:
            continue
        if any(_key(later) == _key(call) for later in calls[i + 1:]):
            ignored += 1
            continue
        if call.started_at <= 0:
            continue
        after = [m for m in t.model_calls if m.started_at >= call.started_at]
        snippet = " ".join(call.error.split())[:40]
        if after and snippet and not any(snippet in " ".join(_model_text(m).split()) for m in after):
            ignored += 1
    return ignored


def answered_before_evidence(t: RolloutTrace) -> bool:
    """An agent rollout that answered without one successful tool call beyond listing files."""
    calls = _tools(t)
    if not calls or t.status != "ok":
        return False
    return not any(c.error is None and not LISTING_TOOLS.search(c.name) for c in calls)


def malformed_answer(t: RolloutTrace) -> bool:
    """The answer is not a bare value: loop syntax (Thought:/Action:/JSON/fences), several lines,
    more than LONG_ANSWER_CHARS, or the scorer found the value amid other text."""
    answer = (t.answer or "").strip()
    if not answer or t.status != "ok":
        return False
    return (bool(LOOP_SYNTAX.search(answer)) or "\n" in answer or len(answer) > LONG_ANSWER_CHARS
            or "also other text" in (t.explanation or ""))


def loop_tags(t: RolloutTrace, ceiling: int | None = None) -> list[str]:
    """Failure tags particular to agent loops."""
    tags = []
    if hit_step_cap(t, ceiling):
        tags.append("step_cap")
    if repeated_tool_calls(t):
        tags.append("repeated_tool_call")
    if ignored_tool_errors(t):
        tags.append("tool_error_ignored")
    if answered_before_evidence(t):
        tags.append("answer_before_evidence")
    if malformed_answer(t):
        tags.append("malformed_answer")
    return tags


_NAMES = {
    "timeout": "the rollout timed out",
    "model_call_error": "a model call failed",
    "empty_answer": "empty answer",
    "echo": "the answer echoes the prompt instead of answering",
    "not_a_label": "the answer is not one of the labels",
    "wrong_label": "a label, but the wrong one",
    "extra_text": "the answer has extra text (prose or several lines)",
    "no_number": "no number in the answer",
    "wrong_number": "wrong number",
    "syntax_error": "the code does not compile",
    "failing_test": "a test fails",
    "test_timeout": "the tests time out",
    "wrong_answer": "wrong answer",
    "low_score": "scored below 1",
    "step_cap": "the loop hit its step cap",
    "repeated_tool_call": "the same tool call was repeated",
    "tool_error_ignored": "a tool error was ignored (the call repeated, or the error never shown to the model)",
    "answer_before_evidence": "answered before reading any evidence (no successful tool call beyond listing)",
    "malformed_answer": "the answer is not a bare value (loop syntax, several lines or extra text)",
}


def cluster_name(key: str) -> str:
    if key.startswith("exception:"):
        return f"the harness raised {key.split(':', 1)[1]}"
    return _NAMES.get(key, key)


# --------------------------------------------------------------------------- the digest


def build_digest(traces: list[RolloutTrace], *, candidate: str, labels: list[str] | None,
                 task_shape: str, examples_per_cluster: int = 2) -> Digest:
    """Clusters of the failures in `traces` (one candidate's search-split rollouts)."""
    traces = sorted(traces, key=lambda t: (t.task_id, t.trial))
    counts: Counter[str] = Counter()
    members: dict[str, list[RolloutTrace]] = {}
    ceiling = step_ceiling(traces)
    for t in traces:
        for tag in tags_of(t, labels=labels, task_shape=task_shape, step_ceiling=ceiling):
            counts[tag] += 1
            members.setdefault(tag, []).append(t)
    clusters = []
    for key, n in counts.most_common():
        distinct = list({t.task_id: t for t in reversed(members[key])}.values())[::-1]  # one per task
        examples = [ClusterExample(task_id=t.task_id, trial=t.trial, input=_clip(t.task_input, 160),
                                   answer=None if t.answer is None else _clip(t.answer, 200),
                                   detail=_clip(_detail(t), 200))
                    for t in distinct[:examples_per_cluster]]
        clusters.append(Cluster(key=key, name=cluster_name(key), count=n, examples=examples))
    failed = sum(1 for t in traces if t.score < 1.0)
    score = sum(t.score for t in traces) / len(traces) if traces else 0.0
    return Digest(candidate=candidate, rollouts=len(traces), failed=failed, score=score,
                  clusters=clusters, facts=call_facts(traces), confusions=_confusions(traces))


def _detail(t: RolloutTrace) -> str:
    """The error's last line, or the scorer's verdict without the answer it quotes."""
    if t.error is not None:
        last = (t.error.message or "").strip().splitlines()
        return f"{t.error.type}: {last[-1] if last else ''}"
    verdict = t.explanation or ""
    return verdict.rsplit("; ", 1)[-1] if "; " in verdict else verdict


_CONFUSION = re.compile(r"matched label '(.+?)' \(.*?\); expected '(.+?)'")


def _confusions(traces: list[RolloutTrace], limit: int = 5) -> list[str]:
    pairs: Counter[tuple[str, str]] = Counter()
    for t in traces:
        m = _CONFUSION.match(t.explanation or "")
        if m and t.score < 1.0:
            pairs[(m.group(2), m.group(1))] += 1
    return [f"expected {want!r}, answered {got!r} ({n}x)" for (want, got), n in pairs.most_common(limit)]


def call_facts(traces: list[RolloutTrace]) -> list[str]:
    """What the harness asked the model, summed over rollouts (chat vs completion, sizes, tools)."""
    if not traces:
        return []
    kinds: Counter[str] = Counter()
    tools: Counter[str] = Counter()
    prompt_tokens, completion_tokens, calls = 0, 0, 0
    for t in traces:
        for c in t.model_calls:
            kinds[c.kind] += 1
            prompt_tokens += c.prompt_tokens
            completion_tokens += c.completion_tokens
            calls += 1
        for tool in t.tool_calls:
            tools[tool.name] += 1
    facts = []
    if calls:
        shown = ", ".join(f"{k} {n}" for k, n in kinds.most_common())
        facts.append(f"model calls: {calls} in {len(traces)} rollouts ({shown}); "
                     f"mean {prompt_tokens // calls} prompt + {completion_tokens // calls} generated tokens per call")
    else:
        facts.append("the harness made no model calls")
    if tools:
        facts.append("tool/context calls: " + ", ".join(f"{k} {n}" for k, n in tools.most_common(5)))
    loops = [t for t in traces if is_agent_loop(t)]
    if loops:
        steps = [len(t.model_calls) for t in loops]
        errors = sum(c.error is not None for t in loops for c in _tools(t))
        facts.append(f"agent loop: {len(loops)} rollouts with tool calls, {sum(steps) / len(steps):.1f} model calls on "
                     f"average (max {max(steps)}), {sum(len(_tools(t)) for t in loops) / len(loops):.1f} tool calls, "
                     f"{errors} tool errors")
    return facts


def _clip(text: str, n: int) -> str:
    text = str(text).replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 3] + "..."
