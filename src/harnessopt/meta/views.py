"""What the meta-agent is shown of rollouts, per feedback mode. The only place modes differ.

- `traces`:  everything: prompts, responses, tool calls, logs, output, errors, scorer verdicts.
- `summary`: one line per rollout: outcome and error type (no text the model or harness produced).
- `scores`:  per-task scores only. No trace text, error message or model output ever appears.
"""

from __future__ import annotations

import re
from typing import Literal

from harnessopt.meta.digest import Digest, is_multi_step
from harnessopt.records import RolloutTrace

FeedbackMode = Literal["traces", "summary", "scores"]
FEEDBACK_MODES: tuple[str, ...] = ("traces", "summary", "scores")
PAGE_CHARS = 3000


class FeedbackView:
    def __init__(self, mode: FeedbackMode):
        if mode not in FEEDBACK_MODES:
            raise ValueError(f"unknown feedback mode {mode!r}; use one of {', '.join(FEEDBACK_MODES)}")
        self.mode = mode

    # ------------------------------------------------------------------ per-rollout lines

    def line(self, t: RolloutTrace) -> str:
        head = f"{t.task_id} trial {t.trial}: score {t.score:.2f}"
        if self.mode == "scores":
            return head
        outcome = "pass" if t.score >= 1.0 else ("partial" if t.score > 0 else "fail")
        if t.status != "ok":
            outcome = t.status
        error = f", error {t.error.type}" if t.error else ""
        head = f"{head} ({outcome}{error})"
        if self.mode == "summary":
            return head
        answer = _clip(t.answer if t.answer is not None else "<no answer>", 120)
        detail = f" answer={answer!r}"
        if t.explanation:
            detail += f" scorer: {_clip(t.explanation, 160)}"
        if t.error:
            detail += f" | {t.error.type}: {_clip(t.error.message, 160)}"
        return head + detail

    def failures(self, traces: list[RolloutTrace], limit: int = 40) -> str:
        failed = [t for t in traces if t.score < 1.0]
        if not traces:
            return "no search-split rollouts yet for this candidate; spot_check or full_eval it first"
        if not failed:
            return f"no failures: all {len(traces)} rollouts scored 1.0"
        lines = [self.line(t) for t in sorted(failed, key=lambda t: (t.score, t.task_id, t.trial))[:limit]]
        more = f"\n... and {len(failed) - limit} more" if len(failed) > limit else ""
        return f"{len(failed)} of {len(traces)} rollouts below 1.0:\n" + "\n".join(lines) + more

    # ------------------------------------------------------------------ the failure digest

    def digest(self, d: Digest) -> str:
        """traces: clusters with counts and verbatim examples, plus call facts; summary: cluster
        names and counts; scores: the score alone."""
        head = f"{d.candidate}: mean score {d.score:.3f} over {d.rollouts} search rollouts; {d.failed} scored below 1"
        if self.mode == "scores" or not d.rollouts:
            return head
        lines = [head]
        for c in d.clusters:
            lines.append(f"- {c.name}: {c.count}/{d.rollouts}")
            if self.mode == "traces":
                for e in c.examples:
                    answer = "<no answer>" if e.answer is None else repr(e.answer)
                    lines.append(f"    e.g. {e.task_id}: input {e.input!r} -> answer {answer}"
                                 + (f" ({e.detail})" if e.detail else ""))
        if self.mode == "traces":
            lines += [f"- confusion: {c}" for c in d.confusions]
            lines += [f"fact: {f}" for f in d.facts]
        return "\n".join(lines)

    def digest_line(self, d: Digest | None) -> str:
        """One line for the memory table: what still fails after a change (not in scores mode)."""
        if d is None or self.mode == "scores" or not d.rollouts:
            return ""
        if not d.clusters:
            return "no failures"
        return "; ".join(f"{c.key} {c.count}/{d.rollouts}" for c in d.clusters[:3])

    # ------------------------------------------------------------------ one trace, paged

    def trace_pages(self, t: RolloutTrace) -> list[str]:
        if self.mode != "traces":
            return [self.line(t) + f"\n(feedback mode '{self.mode}': trace text is not shown)"]
        if is_multi_step(t):
            return step_pages(t)
        text = render_trace(t)
        return [text[i:i + PAGE_CHARS] for i in range(0, len(text), PAGE_CHARS)] or [""]

    # ------------------------------------------------------------------ search

    def search(self, traces: list[RolloutTrace], pattern: str, limit: int = 30) -> str:
        if self.mode == "scores":
            return "feedback mode 'scores': trace text cannot be searched; use list_failures for scores"
        try:
            rx = re.compile(pattern, re.IGNORECASE)
        except re.error:
            rx = re.compile(re.escape(pattern), re.IGNORECASE)
        hits = []
        for t in traces:
            text = render_trace(t) if self.mode == "traces" else self.line(t)
            for line in text.splitlines():
                if rx.search(line):
                    hits.append(f"{t.candidate_id} {t.task_id} trial {t.trial}: {_clip(line.strip(), 200)}")
                    break
        if not hits:
            return f"no rollout matches {pattern!r}"
        more = f"\n... and {len(hits) - limit} more" if len(hits) > limit else ""
        return f"{len(hits)} rollouts match:\n" + "\n".join(hits[:limit]) + more


def render_trace(t: RolloutTrace) -> str:
    out = [
        f"rollout {t.candidate_id} / {t.task_id} / trial {t.trial}: status {t.status}, score {t.score:.2f}",
        f"scorer: {t.explanation}" if t.explanation else "",
        f"input: {t.task_input}",
    ]
    for i, call in enumerate(t.model_calls, 1):
        out.append(f"--- model call {i} ({call.kind}, {call.latency_s:.2f} s, "
                   f"{call.prompt_tokens}+{call.completion_tokens} tokens, params {call.params.model_dump(exclude_none=True, exclude={'extra'})})")
        if call.prompt is not None:
            out.append(f"prompt:\n{call.prompt}")
        for m in call.messages or []:
            out.append(f"[{m.get('role')}] {m.get('content')}")
        out.append(f"response: {call.response!r}" if call.error is None else f"error: {call.error}")
    for tool in t.tool_calls:
        result = tool.error if tool.error else _clip(str(tool.result), 400)
        out.append(f"--- tool {tool.name}({_clip(str(tool.args), 200)}) -> {result}")
    for log in t.logs:
        out.append(f"log: {log.msg}")
    if t.stdout:
        out.append(f"stdout:\n{t.stdout}")
    if t.stderr:
        out.append(f"stderr:\n{t.stderr}")
    if t.error:
        out.append(f"error: {t.error.type}: {t.error.message}")
        if t.error.traceback:
            out.append(t.error.traceback)
    out.append(f"answer: {t.answer!r}")
    return "\n".join(x for x in out if x)


# --------------------------------------------------------------------------- agent loops, step by step

STEP_OUTPUT_CHARS = 1500  # one tool output or model message within a step


def trace_steps(t: RolloutTrace) -> list[str]:
    """A multi-step rollout as steps in time order: each model call with only the messages that
    are new since the previous call (an agent's conversation repeats its history every turn),
    and each tool call with its arguments, clipped output and error."""
    events = sorted([(m.started_at, 0, i) for i, m in enumerate(t.model_calls)]
                    + [(c.started_at or float("inf"), 1, i) for i, c in enumerate(t.tool_calls)])
    steps, prompt, before, reply = [], "", [], None
    for n, (_, kind, i) in enumerate(events, 1):
        if kind == 0:
            call = t.model_calls[i]
            lines = [f"step {n}: model call ({call.kind}, {call.latency_s:.1f} s, "
                     f"{call.prompt_tokens}+{call.completion_tokens} tokens)"]
            if call.prompt is not None:
                repeated = bool(prompt) and call.prompt.startswith(prompt)
                lines.append(("(prompt as before, then:)\n" if repeated else "prompt:\n")
                             + _cut(call.prompt[len(prompt):] if repeated else call.prompt, STEP_OUTPUT_CHARS))
                prompt = call.prompt
            messages = call.messages or []
            same = 0
            while same < min(len(messages), len(before)) and messages[same] == before[same]:
                same += 1
            if (same == len(before) and reply is not None and len(messages) > same
                    and messages[same].get("role") == "assistant" and messages[same].get("content") == reply):
                same += 1  # the previous reply, sent back as the assistant's turn
            if same:
                lines.append(f"(the first {same} messages as in the previous model call)")
            lines += [f"[{m.get('role')}] {_cut(str(m.get('content')), STEP_OUTPUT_CHARS)}" for m in messages[same:]]
            before, reply = messages, call.response
            lines.append(f"response: {_cut(call.response or '', STEP_OUTPUT_CHARS)}" if call.error is None
                         else f"error: {call.error}")
        else:
            tool = t.tool_calls[i]
            result = f"ERROR: {tool.error}" if tool.error else _cut(str(tool.result), STEP_OUTPUT_CHARS)
            lines = [f"step {n}: tool {tool.name}({_clip(str(tool.args), 300)})", f"-> {result}"]
        steps.append("\n".join(lines))
    return steps


def step_pages(t: RolloutTrace, limit: int = PAGE_CHARS) -> list[str]:
    """Pages of whole steps (a step longer than a page is cut across pages), each headed by the
    steps it holds; the first page starts with the rollout's outcome, the last ends with it."""
    head = "\n".join(x for x in [
        f"rollout {t.candidate_id} / {t.task_id} / trial {t.trial}: status {t.status}, score {t.score:.2f}, "
        f"{len(t.model_calls)} model calls, {len(t.tool_calls)} tool calls",
        f"scorer: {t.explanation}" if t.explanation else "", f"input: {t.task_input}"] if x)
    tail = [f"log: {line.msg}" for line in t.logs]
    if t.error:
        tail.append(f"error: {t.error.type}: {t.error.message}")
    tail.append(f"answer: {t.answer!r}")
    steps = trace_steps(t)
    blocks = [(0, head)] + [(n, s) for n, s in enumerate(steps, 1)] + [(len(steps) + 1, "\n".join(tail))]
    pages: list[tuple[list[int], str]] = []
    for n, block in blocks:
        for part in [block[i:i + limit] for i in range(0, len(block), limit)] or [""]:
            if pages and len(pages[-1][1]) + len(part) + 2 <= limit:
                pages[-1][0].append(n)
                pages[-1] = (pages[-1][0], pages[-1][1] + "\n\n" + part)
            else:
                pages.append(([n], part))
    out = []
    for ns, text in pages:
        inner = [n for n in ns if 1 <= n <= len(steps)]
        label = f"steps {min(inner)}-{max(inner)} of {len(steps)}" if inner else f"{len(steps)} steps"
        out.append(f"({label})\n{text}")
    return out


def _cut(text: str, n: int) -> str:
    """Head and tail of a long text (newlines kept)."""
    if len(text) <= n:
        return text
    return f"{text[: n * 2 // 3]}\n[... {len(text) - n} characters cut ...]\n{text[-(n // 3):]}"


def _clip(text: str, n: int) -> str:
    text = str(text).replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 3] + "..."
