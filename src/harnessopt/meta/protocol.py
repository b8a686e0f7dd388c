"""One iteration of the proposal protocol: propose, screen, promote. Shared by every proposer.

    1. brief    code builds what the proposer starts from: the failure digest of the champion
                (per feedback mode), the memory table of every candidate tried and what it scored,
                the notebook, the champion's code and a menu of concrete moves;
    2. propose  the proposer makes up to `proposals` new candidates (menu picks, a whole file, or
                search/replace edits). A proposal must be new code: repeats are refused;
    3. evaluate by the evaluation policy: `meta` lets the proposer choose spot-checks and full
                evaluations, `ladder` spot-checks every proposal on the same tasks and fully
                evaluates the best one if it beats the champion there, `always-full` fully
                evaluates every proposal. Only a full evaluation can promote.

The proposers (an LLM, random search, scripted doubles) differ only in how they choose; the
brief, the menu, the screening and the budget are the same, so arms compare fairly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import Field

from harnessopt import events as E
from harnessopt.budget import BudgetExceeded
from harnessopt.meta.menu import Move, build_menu
from harnessopt.meta.workbench import ActionError, Candidate, Workbench
from harnessopt.patterns import PatternError
from harnessopt.options import EvalPolicy, MenuOrder, ProposalMode
from harnessopt.records import Record



class ProtocolSettings(Record):
    proposals: int = Field(default=3, ge=1, le=8, description="new candidates per iteration")
    screen_tasks: int = Field(default=6, ge=1, le=50, description="tasks per screening spot-check")
    eval_policy: EvalPolicy = "meta"
    inspect_steps: int = Field(default=2, ge=0, le=10, description="trace-reading steps before proposing")
    # LLM proposers: the menu kept in its seeded shuffle ("shuffled"), or ordered by the failure
    # clusters each move addresses, saying which ("digest"; not in feedback mode `scores`, which shows
    # no clusters). "digest" did not help Qwen 1.5B on home_intents (docs/EXPERIMENTS.md).
    menu_order: MenuOrder = "shuffled"
    # LLM proposers: pick menu moves or write code ("compose"), or choose `pool_size` of the random
    # control's draws ("rank"; meta/draws.py, meta/ranking.py).
    proposal_mode: ProposalMode = "compose"
    pool_size: int = Field(default=9, ge=1, le=24, description="drawn candidates to choose among (rank)")

    def without_judgement(self) -> ProtocolSettings:
        """For controls that choose without a model: policy `meta` needs a chooser, so the ladder decides."""
        return self.model_copy(update={"eval_policy": "ladder"}) if self.eval_policy == "meta" else self


@dataclass
class IterationPlan:
    """What one iteration starts from and what it has made so far."""

    settings: ProtocolSettings
    menu: list[Move]
    screen_task_ids: list[str]
    made: list[Candidate] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    used_moves: set[int] = field(default_factory=set)  # menu numbers already in this iteration's proposals

    def open_moves(self) -> list[int]:
        """Menu numbers a next proposal may pick: each move once per iteration, so a batch of
        proposals cannot collapse onto one move (building on a proposal goes through its id)."""
        return [m.number for m in self.menu if m.number not in self.used_moves]

    def check_moves(self, numbers: list[int]) -> None:
        used = sorted(set(numbers) & self.used_moves)
        if used:
            raise PatternError(f"move(s) {', '.join(map(str, used))} are already in this iteration's proposals: pick "
                               "other moves (or name that proposal as \"parent\" to build on it)")

    @property
    def wanted(self) -> int:
        return self.settings.proposals - len(self.made)

    def runnable(self) -> list[Candidate]:
        return [c for c in self.made if c.harness is not None]


class Proposer(Protocol):
    """Anything that drives a Workbench for one iteration (an LLM, random search, a script)."""

    name: str

    async def run_iteration(self, wb: Workbench) -> None: ...


class Chooser(Protocol):
    name: str

    async def propose(self, wb: Workbench, plan: IterationPlan) -> None: ...

    async def decide(self, wb: Workbench, plan: IterationPlan) -> bool:
        """Choose spot-checks and full evaluations (policy `meta`); False hands over to the ladder."""
        ...


def plan_iteration(wb: Workbench, settings: ProtocolSettings, rng: random.Random) -> IterationPlan:
    champion = wb.candidates[wb.state.champion]
    seen = {c.meta.harness_hash for c in wb.candidates.values()}
    menu = build_menu(champion.source, wb.benchmark.spec.task_shape, seen_hashes=seen, rng=rng)
    return IterationPlan(settings=settings, menu=menu, screen_task_ids=wb.screen_tasks(settings.screen_tasks))


async def run_iteration(wb: Workbench, chooser: Chooser, settings: ProtocolSettings, rng: random.Random) -> None:
    plan = plan_iteration(wb, settings, rng)
    try:
        await chooser.propose(wb, plan)
    except BudgetExceeded as exc:
        wb.event(E.MetaStopped(reason=str(exc)))
    if not plan.runnable():
        reason = "; ".join(plan.refusals[-3:]) or "the proposer made no runnable candidate"
        wb.event(E.NoCandidate(reason=reason))
        wb.add_note(f"no runnable candidate this iteration ({reason[:200]})")
        return
    try:
        if settings.eval_policy == "always-full":
            await always_full(wb, plan)
        elif settings.eval_policy == "ladder" or not await chooser.decide(wb, plan):
            await ladder(wb, plan)
    except BudgetExceeded as exc:
        wb.event(E.MetaStopped(reason=str(exc)))
    wb.add_note(summary_line(wb, plan))


async def always_full(wb: Workbench, plan: IterationPlan) -> None:
    for c in plan.runnable():
        if not fits(wb, c):
            wb.event(E.EvaluationSkipped(candidates=[c.id], reason="not enough rollouts left for a full evaluation"))
            continue
        wb.event(E.EvaluationChosen(candidates=[c.id], choice="full", policy="always-full",
                                    rationale="every proposal is fully evaluated"))
        await wb.full_eval(c.id, note="always-full policy")


async def ladder(wb: Workbench, plan: IterationPlan) -> None:
    """Spot-check every unscreened proposal on the same tasks; fully evaluate the best if it beats
    the champion on them (Meta-Harness's and OpenEvolve's fixed cascade)."""
    todo = [c for c in plan.runnable() if not c.spots and c.full_eval is None]
    left = wb.budget.rollouts_left()
    if left is not None:  # screen as many proposals as the budget allows, in proposal order
        fit = max(0, left // max(1, len(plan.screen_task_ids)))
        if fit < len(todo):
            wb.event(E.EvaluationSkipped(candidates=[c.id for c in todo[fit:]],
                                         reason=f"{left} rollouts left: not enough to screen them too"))
            todo = todo[:fit]
    if todo:
        try:
            await wb.screen([c.id for c in todo], plan.screen_task_ids, 1,
                            rationale="ladder: screen every proposal on the same tasks")
        except ActionError as exc:
            wb.event(E.EvaluationSkipped(candidates=[c.id for c in todo], reason=str(exc)))
            return
    screened = [c for c in plan.runnable() if c.spots and c.full_eval is None]
    if not screened:
        return
    best = max(screened, key=lambda c: (c.spots[-1].score, -plan.made.index(c)))
    spot = best.spots[-1]
    champion = spot.champion_score if spot.champion_score is not None else 0.0
    if spot.score <= champion:
        wb.event(E.EvaluationChosen(candidates=[best.id], choice="stop", policy="ladder",
                                    rationale=f"best screen {spot.score:.2f} does not beat the champion's {champion:.2f} "
                                              "on the same tasks"))
        return
    if not fits(wb, best):
        wb.event(E.EvaluationSkipped(candidates=[best.id], reason="not enough rollouts left for a full evaluation"))
        return
    wb.event(E.EvaluationChosen(candidates=[best.id], choice="full", policy="ladder",
                                rationale=f"best screen {spot.score:.2f} beats the champion's {champion:.2f} on the same tasks"))
    await wb.full_eval(best.id, note="ladder: best screen beat the champion")


def fits(wb: Workbench, c: Candidate) -> bool:
    left = wb.budget.rollouts_left()
    need = wb.evaluator.rollouts_needed(c.harness, wb.search_tasks, wb.trials)
    return left is None or need <= left


def summary_line(wb: Workbench, plan: IterationPlan) -> str:
    parts = [f"{c.id} [{c.moves or c.meta.origin}] {wb.result_text(c)}" for c in plan.made]
    return f"proposed {len(plan.made)}: " + "; ".join(parts) + f". Champion {wb.state.champion}."
