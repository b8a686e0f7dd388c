"""What one rollout may ask of the parent, and the checks on everything its worker sends back.

A worker runs untrusted code, so the parent treats its messages as input: every call counts
against per-rollout limits (a refused call is an error the harness may catch), and every event
and result is checked field by field before it enters the trace.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from harnessopt.records import LogLine, RolloutError, ToolCall, WorkspaceChanges

if TYPE_CHECKING:
    from harnessopt.runner import RolloutOutcome

# What one rollout may ask of the parent. A harness that exceeds these gets an error reply (a
# ContextCallError it may catch), the parent's memory and the trace stay bounded.
MAX_CALLS_PER_ROLLOUT = 1000  # model + tool calls
MAX_CONCURRENT_CALLS = 16  # in flight at once for one rollout
MAX_REQUEST_CHARS = 1_000_000  # one call's prompt/messages/tool arguments, as JSON
MAX_LOG_CHARS = 1_000_000  # all log lines of one rollout together
MAX_TOOL_RECORDS = 10_000
MAX_ANSWER_CHARS = 1_000_000
MAX_CAPTURE_CHARS = 64 * 1024  # stdout / stderr characters kept, each
MAX_WORKSPACE_CHANGE_CHARS = 1_000_000  # changed workspace files sent back at the end, together


class CallLimits:
    """Per-rollout limits on what a harness may ask of the parent (see MAX_* above)."""

    def __init__(self) -> None:
        self.calls = 0
        self.refusals = 0
        self.log_chars = 0
        self.slots = asyncio.Semaphore(MAX_CONCURRENT_CALLS)

    def refusal(self, op: Any, args: Any) -> str | None:
        if not isinstance(args, dict):
            return f"malformed {op} call"
        self.calls += 1
        reason = None
        if self.calls > MAX_CALLS_PER_ROLLOUT:
            reason = f"a rollout may make at most {MAX_CALLS_PER_ROLLOUT} model/tool calls"
        else:
            try:
                size = len(json.dumps(args, ensure_ascii=False, default=str))
            except (TypeError, ValueError):
                size = MAX_REQUEST_CHARS + 1
            if size > MAX_REQUEST_CHARS:
                reason = (f"the request is {size:,} characters; one call may carry at most {MAX_REQUEST_CHARS:,} "
                          "(shorten the prompt)")
        self.refusals += reason is not None
        return reason


def record_event(out: RolloutOutcome, msg: dict, limits: CallLimits | None = None) -> None:
    args = msg.get("args") or {}
    if msg.get("op") == "log":
        text = str(args.get("msg", ""))[:10_000]
        if limits is not None:
            limits.log_chars += len(text)
            if limits.log_chars > MAX_LOG_CHARS:
                return
        if len(out.logs) < 10_000:
            out.logs.append(LogLine(t=time.time(), msg=text))
    elif msg.get("op") == "tool_record":
        if len(out.tool_calls) < MAX_TOOL_RECORDS:
            out.tool_calls.append(ToolCall.model_validate(args))


def apply_done(out: RolloutOutcome, msg: dict) -> bool:
    """Take the worker's result, checking every field (the worker runs untrusted code).
    Returns whether the worker asked to be retired."""
    answer, status, error = msg.get("answer"), msg.get("status", "error"), msg.get("error")
    if status not in ("ok", "error", "timeout"):
        raise ValueError(f"unknown status {str(status)[:40]!r}")
    if answer is not None and not isinstance(answer, str):
        raise ValueError(f"answer is {type(answer).__name__}, not text")
    if answer is not None and len(answer) > MAX_ANSWER_CHARS:
        raise ValueError(f"answer of {len(answer):,} characters")
    out.answer = answer
    out.status = status
    out.error = RolloutError.model_validate(error) if error else None
    if out.error is not None:
        out.error.message = out.error.message[:4000]
        out.error.traceback = out.error.traceback[-8000:] if out.error.traceback else None
    out.stdout = str(msg.get("stdout", ""))[: 2 * MAX_CAPTURE_CHARS]
    out.stderr = str(msg.get("stderr", ""))[: 2 * MAX_CAPTURE_CHARS]
    if out.status == "ok" and out.answer is None:
        raise ValueError("status ok without an answer")
    if msg.get("workspace") is not None:
        out.workspace_changes = checked_changes(msg["workspace"])
    return bool(msg.get("retire"))


def checked_changes(raw: Any) -> WorkspaceChanges:
    """A worker's workspace manifest, validated and held to MAX_WORKSPACE_CHANGE_CHARS (what does
    not fit is listed as omitted, so a check on it fails instead of the parent filling up)."""
    changes = WorkspaceChanges.model_validate(raw)
    kept: dict[str, str] = {}
    total = 0
    for path, text in changes.changed.items():
        total += len(path) + len(text)
        if total > MAX_WORKSPACE_CHANGE_CHARS:
            changes.omitted.append(path)
        else:
            kept[path] = text
    changes.changed = kept
    changes.deleted = [str(p)[:1000] for p in changes.deleted[:MAX_TOOL_RECORDS]]
    changes.omitted = [str(p)[:1000] for p in changes.omitted[:MAX_TOOL_RECORDS]]
    return changes
