"""Budgets: hard caps on what a run may spend, enforced by reserving before launching.

Rollouts are reserved per evaluation before any starts (so concurrency cannot overshoot).
Tokens and USD are reserved per model call at an upper bound (estimated prompt tokens plus
max_tokens) and settled to the real figure afterwards; a call that would not fit is refused.
Past the wall-clock deadline every model call is refused, so nothing is spent after it (work
in flight then ends quickly with that error instead of running on).
Everything here runs on one asyncio event loop, so a check-and-reserve is atomic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import ConfigDict, Field

from harnessopt.records import Record, Usage


class BudgetExceeded(RuntimeError):
    """A reservation that does not fit the remaining budget; the message says which cap."""


class Budget(Record):
    """Caps for one optimize run. None means no cap on that quantity. (Each field is also a CLI
    flag of `optimize` and `compare`: see options.py.)"""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    iterations: int = Field(default=5, ge=1, description="meta-agent iterations")
    rollouts: int | None = Field(default=400, ge=1, json_schema_extra={"flag": "--max-rollouts"},
                                 description="task rollouts for the whole search (spot-checks and full evaluations)")
    task_tokens: int | None = Field(default=None, ge=1, json_schema_extra={"flag": "--max-task-tokens"},
                                    description="task-model tokens for the search")
    task_usd: float | None = Field(default=None, gt=0, json_schema_extra={"flag": "--max-task-usd"},
                                   description="task-model USD for the search")
    meta_tokens: int | None = Field(default=None, ge=1, json_schema_extra={"flag": "--max-meta-tokens"},
                                    description="meta-model tokens")
    meta_usd: float | None = Field(default=None, gt=0, json_schema_extra={"flag": "--max-meta-usd"},
                                   description="meta-model USD")
    wall_clock_s: float | None = Field(default=None, gt=0, json_schema_extra={"flag": "--max-wall-clock"},
                                       description="seconds for the whole search")
    eval_wall_clock_s: float | None = Field(default=None, gt=0, json_schema_extra={"flag": "--eval-wall-clock"},
                                            description="seconds per evaluation; cut and scored on what finished")
    meta_steps_per_iteration: int = Field(default=12, ge=1, json_schema_extra={"flag": "--meta-steps"},
                                          description="meta-agent actions per iteration")


class Spend(Record):
    """What a run has spent so far (persisted in run.json so a resumed run continues the count)."""

    iterations: int = 0
    rollouts: int = 0
    task: Usage = Field(default_factory=Usage)
    meta: Usage = Field(default_factory=Usage)
    elapsed_s: float = 0.0


class BudgetTracker:
    def __init__(self, budget: Budget, spent: Spend | None = None, clock: Callable[[], float] | None = None):
        """`clock`: seconds the run has used so far (a run directory's clock spans a run's sessions,
        so a resumed run is not granted its wall-clock budget afresh); default: since now."""
        self.budget = budget
        self.spent = spent or Spend()
        self._started = time.monotonic() - self.spent.elapsed_s
        self._clock = clock
        self._reserved_rollouts = 0
        self._reserved_tokens = {"task": 0, "meta": 0}
        self._reserved_usd = {"task": 0.0, "meta": 0.0}

    # ------------------------------------------------------------------ time

    def elapsed_s(self) -> float:
        return self._clock() if self._clock is not None else time.monotonic() - self._started

    def snapshot(self) -> Spend:
        self.spent.elapsed_s = self.elapsed_s()
        return self.spent.model_copy(deep=True)

    def time_left_s(self) -> float | None:
        if self.budget.wall_clock_s is None:
            return None
        return max(0.0, self.budget.wall_clock_s - self.elapsed_s())

    # ------------------------------------------------------------------ rollouts

    def rollouts_left(self) -> int | None:
        if self.budget.rollouts is None:
            return None
        return self.budget.rollouts - self.spent.rollouts - self._reserved_rollouts

    def reserve_rollouts(self, n: int) -> None:
        left = self.rollouts_left()
        if left is not None and n > left:
            raise BudgetExceeded(f"needs {n} rollouts but only {left} of {self.budget.rollouts} are left")
        self._reserved_rollouts += n

    def settle_rollouts(self, reserved: int, used: int) -> None:
        self._reserved_rollouts -= reserved
        self.spent.rollouts += used

    # ------------------------------------------------------------------ tokens and USD per call

    def _caps(self, side: str) -> tuple[int | None, float | None, Usage]:
        if side == "task":
            return self.budget.task_tokens, self.budget.task_usd, self.spent.task
        return self.budget.meta_tokens, self.budget.meta_usd, self.spent.meta

    def reserve_call(self, side: str, tokens: int, usd: float = 0.0) -> None:
        left = self.time_left_s()
        if left is not None and left <= 0:  # past the deadline nothing more is spent
            raise BudgetExceeded(f"wall-clock budget used ({self.budget.wall_clock_s:g} s): no more {side} model calls")
        token_cap, usd_cap, used = self._caps(side)
        if token_cap is not None and used.tokens + self._reserved_tokens[side] + tokens > token_cap:
            raise BudgetExceeded(
                f"{side} token budget: a call needing up to {tokens} tokens does not fit "
                f"({used.tokens + self._reserved_tokens[side]} of {token_cap} used or reserved)"
            )
        if usd_cap is not None and used.cost_usd + self._reserved_usd[side] + usd > usd_cap:
            raise BudgetExceeded(
                f"{side} USD budget: a call costing up to ${usd:.4f} does not fit "
                f"(${used.cost_usd + self._reserved_usd[side]:.4f} of ${usd_cap:.2f} used or reserved)"
            )
        self._reserved_tokens[side] += tokens
        self._reserved_usd[side] += usd

    def settle_call(self, side: str, reserved_tokens: int, reserved_usd: float, actual: Usage) -> None:
        self._reserved_tokens[side] -= reserved_tokens
        self._reserved_usd[side] -= reserved_usd
        self._caps(side)[2].add(actual)

    # ------------------------------------------------------------------ overall

    def exhausted(self, *, new_iteration: bool = False) -> str | None:
        """Why the run must stop now (or, with new_iteration, may not start another), or None."""
        b, s = self.budget, self.spent
        if b.rollouts is not None and s.rollouts >= b.rollouts:
            return f"rollout budget used ({s.rollouts}/{b.rollouts})"
        if b.task_tokens is not None and s.task.tokens >= b.task_tokens:
            return "task token budget used"
        if b.task_usd is not None and s.task.cost_usd >= b.task_usd:
            return "task USD budget used"
        if b.meta_tokens is not None and s.meta.tokens >= b.meta_tokens:
            return "meta token budget used"
        if b.meta_usd is not None and s.meta.cost_usd >= b.meta_usd:
            return "meta USD budget used"
        left = self.time_left_s()
        if left is not None and left <= 0:
            return "wall-clock budget used"
        if new_iteration and s.iterations >= b.iterations:
            return f"iteration budget used ({s.iterations}/{b.iterations})"
        return None

    def describe(self, *, clock: bool = True) -> str:
        """One line of spend against caps. `clock=False` leaves the elapsed time out (the meta
        prompt: a prompt that changes with the clock would miss the meta-reply cache on resume)."""
        b, s = self.budget, self.spent

        def part(name: str, used: float, cap: float | None, fmt: str = "{:g}") -> str:
            return f"{name} {fmt.format(used)}/{fmt.format(cap) if cap is not None else 'unlimited'}"

        parts = [
            part("iterations", s.iterations, b.iterations),
            part("rollouts", s.rollouts, b.rollouts),
            part("task tokens", s.task.tokens, b.task_tokens),
            part("meta tokens", s.meta.tokens, b.meta_tokens),
        ]
        if b.task_usd is not None or s.task.cost_usd:
            parts.append(part("task $", s.task.cost_usd, b.task_usd, "{:.4f}"))
        if b.meta_usd is not None or s.meta.cost_usd:
            parts.append(part("meta $", s.meta.cost_usd, b.meta_usd, "{:.4f}"))
        if b.wall_clock_s is not None:
            parts.append(f"wall {self.elapsed_s():.0f}/{b.wall_clock_s:.0f} s" if clock else f"wall cap {b.wall_clock_s:.0f} s")
        return ", ".join(parts)
