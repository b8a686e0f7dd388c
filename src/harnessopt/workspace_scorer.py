"""The `workspace` scorer (agentic benchmarks): the answer, or a check script on the final files.

A task with a hidden `check` field changes files: the check (Python) runs in a sandbox whose
working directory holds the workspace as the rollout left it (the task's files plus the changes
its worker reported), and the task scores 1 when it exits 0. Any other task is scored on its
answer: equal to the target after trimming quotes, backticks, a final period, case and extra
spaces, or, for a numeric target, the same number (commas and `$` ignored, within `abs_tol`).
Only the value counts as an answer: "The code is E42" for E42 scores 0 and says so.
"""

from __future__ import annotations

import re
from typing import Any

from harnessopt.records import LabelledTask, Score, WorkspaceChanges
from harnessopt.scorers import register

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def clean_answer(text: str) -> str:
    """The answer as compared: trimmed of quotes, backticks and a final period, lowercased."""
    text = " ".join(str(text).split())
    for _ in range(2):
        text = text.strip().strip("`'\"").strip().rstrip(".").strip()
    return text.lower()


def answer_matches(answer: str, target: str, abs_tol: float = 0.005) -> tuple[bool, str]:
    got, want = clean_answer(answer), clean_answer(target)
    if got == want:
        return True, "exact match"
    if _NUMBER.fullmatch(want):
        number = got.replace(",", "").replace("$", "").strip()
        if _NUMBER.fullmatch(number) and abs(float(number) - float(want)) <= abs_tol:
            return True, f"same number ({number})"
    shown = got if len(got) <= 80 else got[:77] + "..."
    if want and re.search(rf"(?<![\w.]){re.escape(want)}(?![\w])", got):
        return False, f"the answer holds {want!r} but also other text; give only the value (got {shown!r})"
    return False, f"expected {want!r}, got {shown!r}"


def _tail(text: str, lines: int = 6, chars: int = 500) -> str:
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    out = " | ".join(kept)
    return out if len(out) <= chars else "..." + out[-chars:]


@register("workspace")
def workspace(answer: str, task: LabelledTask, *, hidden: dict[str, Any] | None = None,
              workspace: WorkspaceChanges | None = None, check_field: str = "check", timeout_s: float = 20.0,
              abs_tol: float = 0.005, **_: Any) -> Score:
    """Check script on the final workspace when the task has one, else the answer (see above)."""
    check = (hidden or {}).get(check_field)
    if not check:
        ok, why = answer_matches(answer, task.target, abs_tol)
        return Score(value=float(ok), explanation=why)
    from harnessopt.benchmark.workspace import final_state
    from harnessopt.workspace_tools import run_in_workspace

    files = final_state(task.workspace, workspace)
    result = run_in_workspace(files, "python", str(check), timeout_s=timeout_s)
    note = f" (files not sent back: {', '.join(workspace.omitted[:5])})" if workspace and workspace.omitted else ""
    if result.timed_out:
        return Score(value=0.0, explanation=f"check timed out after {timeout_s:g} s{note}")
    if result.exit_code == 0:
        return Score(value=1.0, explanation="check passed on the final workspace")
    detail = _tail(result.stderr) or _tail(result.stdout) or "no output"
    return Score(value=0.0, explanation=f"check failed on the final workspace (exit {result.exit_code}): {detail}{note}")
