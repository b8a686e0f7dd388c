"""The meta-agent's workbench: carries out one validated action and returns the observation.

Holds the run's search state (candidates, evaluations, champion) and enforces the framework's
rules: only search-split tasks are reachable, spot-checks never promote, promotion needs a full
evaluation with a paired win over the champion that clears the noise, budgets are reserved
before anything launches. It does not choose anything; proposers (an LLM, a script, random
search) choose the actions.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field
from typing import Callable

from harnessopt import events as E
from harnessopt.acceptance import PromotionDecision, decide_promotion
from harnessopt.benchmark import Benchmark
from harnessopt.budget import BudgetExceeded, BudgetTracker
from harnessopt.evaluation import Evaluator
from harnessopt.harness import HarnessError, HarnessFile, harness_from_source, source_hash
from harnessopt.meta import actions as A
from harnessopt.meta.inspection import ActionError, InspectionActions
from harnessopt.meta.views import FeedbackView
from harnessopt.patterns import PatternError, apply_pattern, describe_patterns
from harnessopt.records import EvalResult, LabelledTask
from harnessopt.store import CandidateMeta, LedgerRow, RunStore

MAX_OBSERVATION_CHARS = 6000


@dataclass
class SpotResult:
    task_ids: list[str]
    trials: int
    score: float
    champion_score: float | None  # the champion's mean on the same tasks, when it has them


@dataclass
class Candidate:
    id: str
    meta: CandidateMeta
    source: str
    harness: HarnessFile | None  # None when the code failed validation (kept, never run)
    full_eval: EvalResult | None = None
    spots: list[SpotResult] = field(default_factory=list)
    moves: str = ""                 # pattern moves that made it (menu picks), for the memory table
    predicted: float | None = None  # the proposer's predicted change of the search score
    decision: str = ""              # promoted / rejected / not fully evaluated


@dataclass
class SearchState:
    champion: str = ""
    noise_floor: float = 0.0
    iteration: int = 0
    notebook: list[str] = field(default_factory=list)
    promotions: list[str] = field(default_factory=list)


class Workbench(InspectionActions):
    def __init__(self, *, store: RunStore, evaluator: Evaluator, benchmark: Benchmark,
                 budget: BudgetTracker, view: FeedbackView, search_tasks: list[LabelledTask],
                 trials: int = 1, seed: int = 0, on_event: Callable[[E.Event], None] | None = None,
                 promotion_confidence: float = 0.95):
        self.store = store
        self.evaluator = evaluator
        self.benchmark = benchmark
        self.budget = budget
        self.view = view
        self.search_tasks = search_tasks
        self.search_ids = {t.id: t for t in search_tasks}
        self.trials = trials
        self.seed = seed
        self.promotion_confidence = promotion_confidence
        self.candidates: dict[str, Candidate] = {}
        self.state = SearchState()
        self.on_event = on_event or (lambda event: None)
        self._next_id = 0
        self.last_created: str | None = None  # the candidate the last write/edit/apply action made

    # ------------------------------------------------------------------ events

    def event(self, event: E.Event) -> None:
        if "iter" not in event.model_fields_set:
            event = event.model_copy(update={"iter": self.state.iteration})
        self.store.append_event(event)
        self.on_event(event)

    # ------------------------------------------------------------------ candidates

    def add_candidate(self, source: str, *, parent: str | None, hypothesis: str, origin: str, moves: str = "",
                      predicted: float | None = None) -> Candidate:
        cid = f"c{self._next_id:04d}"
        self._next_id += 1
        findings: list[str] = []
        harness: HarnessFile | None = None
        try:
            harness = harness_from_source(source, f"candidates/{cid}/harness.py")
        except HarnessError as exc:
            findings.append(f"invalid: {exc}")
        else:
            findings.extend(self.gaming_flags(source))
        parent_source = self.candidates[parent].source if parent in self.candidates else ""
        diff = "".join(difflib.unified_diff(
            parent_source.splitlines(keepends=True), source.splitlines(keepends=True),
            fromfile=parent or "/dev/null", tofile=cid,
        ))
        meta = CandidateMeta(id=cid, parent=parent, harness_hash=source_hash(source), hypothesis=hypothesis,
                             moves=moves, predicted=predicted,
                             diff=diff, findings=findings, origin=origin)
        self.store.add_candidate(source, meta)  # (a resume finds it stored already)
        candidate = Candidate(id=cid, meta=meta, source=source, harness=harness)
        self.candidates[cid] = candidate
        self.last_created = cid
        self.event(E.CandidateCreated(candidate=cid, parent=parent, hypothesis=hypothesis, findings=findings,
                                      origin=origin))
        return candidate

    def gaming_flags(self, source: str) -> list[str]:
        """String literals that match search-split task ids, inputs or (non-label) targets."""
        try:
            literals = {n.value.strip() for n in ast.walk(ast.parse(source))
                        if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        except SyntaxError:
            return []
        flags = []
        ids = sorted(literals & set(self.search_ids))
        if ids:
            flags.append(f"gaming: literal(s) equal to search task ids: {', '.join(ids[:5])}")
        inputs = [t.id for t in self.search_tasks if len(t.input) >= 12 and t.input.strip() in literals]
        if inputs:
            flags.append(f"gaming: literal(s) equal to the input of search tasks {', '.join(inputs[:5])}")
        labels = set(self.benchmark.labels or [])
        targets = {t.target.strip() for t in self.search_tasks} - labels
        hits = sorted(literals & {t for t in targets if t})
        if len(hits) >= 3:
            flags.append(f"gaming: {len(hits)} literals equal search-split answers (e.g. {', '.join(hits[:3])})")
        return flags

    def candidate(self, cid: str | None) -> Candidate:
        cid = cid or self.state.champion
        if cid not in self.candidates:
            known = ", ".join(list(self.candidates)[-8:]) or "none"
            raise ActionError(f"unknown candidate {cid!r}; known: {known}")
        return self.candidates[cid]

    def runnable(self, cid: str) -> Candidate:
        c = self.candidate(cid)
        if c.harness is None:
            raise ActionError(f"candidate {cid} cannot run: {c.meta.findings[0]}")
        return c

    # ------------------------------------------------------------------ evaluations

    async def full_eval(self, cid: str, *, note: str = "") -> tuple[EvalResult, PromotionDecision | None]:
        c = self.runnable(cid)
        result = await self.evaluator.evaluate(c.harness, c.id, self.search_tasks, trials=self.trials,
                                               split="search", wall_clock_s=self.eval_wall_clock_s())
        decision = None
        champion = self.candidates.get(self.state.champion)
        first, c.full_eval = c.full_eval is None, result
        if champion is None or champion.id == c.id or champion.full_eval is None:
            verdict = "baseline" if first and not self.state.promotions else "champion"
        else:
            blocked = next((f for f in c.meta.findings if f.startswith("gaming")), None)
            decision = decide_promotion(result, champion.full_eval, noise_floor=self.state.noise_floor,
                                        seed=self.seed, blocked=blocked, confidence=self.promotion_confidence)
            self.event(E.PromotionDecided(candidate=c.id, champion=champion.id, **decision.model_dump()))
            verdict = "promoted" if decision.promote else "rejected"
            c.decision = verdict
            note = f"{note} | {decision.reason}" if note else decision.reason
        self.store.append_ledger(LedgerRow.for_eval(result, kind="full", decision=verdict, iteration=self.state.iteration,
                                                    parent=c.meta.parent or "", note=note))
        if decision is not None and decision.promote:
            self.promote(c.id, reason=decision.reason)
        return result, decision

    def eval_wall_clock_s(self) -> float | None:
        """An evaluation stops at its own limit or when the run's wall-clock budget ends."""
        limits = [x for x in (self.budget.budget.eval_wall_clock_s, self.budget.time_left_s()) if x is not None]
        return max(1.0, min(limits)) if limits else None

    def promote(self, cid: str, reason: str) -> None:
        previous = self.state.champion
        self.state.champion = cid
        self.state.promotions.append(cid)
        self.event(E.Promoted(candidate=cid, previous=previous, reason=reason))

    def charge_text(self, cid: str, n_tasks: int, trials: int) -> str:
        c = self.candidates.get(cid)
        if c is None or c.harness is None:
            return "n/a"
        tasks = self.search_tasks if n_tasks == len(self.search_tasks) else self.search_tasks[:n_tasks]
        return str(self.evaluator.rollouts_needed(c.harness, tasks, trials))

    # ------------------------------------------------------------------ actions

    async def execute(self, action: A._Action) -> str:
        """Carry out one action; impossible actions come back as an error observation."""
        handler = getattr(self, f"_do_{action.action}")
        try:
            text = await handler(action)
        except (ActionError, BudgetExceeded) as exc:
            text = f"error: {exc}"
        if len(text) > MAX_OBSERVATION_CHARS:
            text = text[:MAX_OBSERVATION_CHARS] + f"\n[... cut at {MAX_OBSERVATION_CHARS} characters]"
        return text + "\n" + self.budget_line()

    def budget_line(self) -> str:
        left = self.budget.rollouts_left()
        return (f"[budget] {self.budget.describe(clock=False)}; rollouts left: {left if left is not None else 'unlimited'}. "
                f"A spot-check costs 1 rollout per task per trial; a full_eval costs up to "
                f"{len(self.search_tasks) * self.trials} ({len(self.search_tasks)} search tasks x {self.trials} trials), "
                f"less for code already evaluated.")

    async def _do_write_harness(self, a: A.WriteHarness) -> str:
        parent = self.candidate(a.parent).id
        return self._proposed(self.add_candidate(a.code, parent=parent, hypothesis=a.hypothesis, origin="write_harness"))

    async def _do_edit_harness(self, a: A.EditHarness) -> str:
        parent = self.candidate(a.parent)
        if not a.search:
            raise ActionError("edit_harness needs a non-empty `search` snippet copied from the parent's code")
        count = parent.source.count(a.search)
        if count != 1:
            where = "does not occur" if count == 0 else f"occurs {count} times"
            raise ActionError(f"the search text {where} in {parent.id}; copy one exact, unique snippet (read_harness shows the code)")
        source = parent.source.replace(a.search, a.replace, 1)
        return self._proposed(self.add_candidate(source, parent=parent.id, hypothesis=a.hypothesis, origin="edit_harness"))

    async def _do_list_patterns(self, a: A.ListPatterns) -> str:
        champion = self.candidates.get(self.state.champion)
        return describe_patterns(self.benchmark.spec.task_shape, champion.source if champion else None)

    async def _do_apply_pattern(self, a: A.ApplyPattern) -> str:
        parent = self.candidate(a.parent)
        try:
            result = apply_pattern(parent.source, a.name, a.params, self.benchmark.spec.task_shape)
        except PatternError as exc:
            raise ActionError(str(exc)) from None
        return self._proposed(self.add_candidate(result.source, parent=parent.id, origin=f"apply_pattern:{a.name}",
                                                 hypothesis=f"{a.hypothesis.strip()} [{result.note}]"))

    def _proposed(self, c: Candidate) -> str:
        if c.harness is None:
            return f"created {c.id}, but it cannot run: {c.meta.findings[0]}"
        flags = f"\nstatic-check findings: {'; '.join(c.meta.findings)}" if c.meta.findings else ""
        return (f"created candidate {c.id} (parent {c.meta.parent}).{flags}\n"
                f"spot_check it on chosen tasks, or full_eval it (costs {self.charge_text(c.id, len(self.search_tasks), self.trials)} rollouts).")

    # ------------------------------------------------------------------ the proposal protocol

    def propose(self, source: str, *, parent: str, hypothesis: str, origin: str, moves: str = "",
                predicted: float | None = None) -> Candidate:
        """A new candidate from a proposal; code equal to an existing candidate's is refused.

        Refusing repeats is how the loop enforces memory for a model that does not use it well: a
        proposal must be new code, and the refusal names the candidate it repeats and its score.
        """
        digest = source_hash(source)
        for c in self.candidates.values():
            if c.meta.harness_hash == digest:
                raise ActionError(f"that code is already candidate {c.id} ({self.result_text(c)}); "
                                  "propose a different change")
        c = self.add_candidate(source, parent=parent, hypothesis=hypothesis, origin=origin, moves=moves,
                               predicted=predicted)
        c.moves, c.predicted = moves, predicted
        return c

    def result_text(self, c: Candidate) -> str:
        parts = []
        if c.full_eval is not None:
            parts.append(f"full {c.full_eval.score:.3f}" + (f", {c.decision}" if c.decision else ""))
        for s in c.spots[-1:]:
            vs = f" vs champion {s.champion_score:.2f}" if s.champion_score is not None else ""
            parts.append(f"spot {s.score:.2f} on {len(s.task_ids)} tasks{vs}")
        if c.harness is None:
            parts.append("cannot run")
        return ", ".join(parts) or "not evaluated"

    async def screen(self, cids: list[str], task_ids: list[str], trials: int = 1,
                     rationale: str = "") -> list[tuple[Candidate, SpotResult]]:
        """Spot-check each candidate on the same tasks; compare with the champion on those tasks."""
        tasks = [self._check_task(t) for t in dict.fromkeys(task_ids)]
        ids = [t.id for t in tasks]
        needed = sum(self.evaluator.rollouts_needed(self.runnable(cid).harness, tasks, trials) for cid in cids)
        left = self.budget.rollouts_left()
        if left is not None and needed > left:
            raise ActionError(f"screening {len(cids)} candidate(s) on {len(tasks)} tasks x {trials} needs {needed} "
                              f"rollouts; {left} left: screen fewer, or on fewer tasks")
        champion = self.champion_mean_on(tasks)
        out = []
        for cid in dict.fromkeys(cids):
            c = self.runnable(cid)
            result = await self.evaluator.evaluate(c.harness, c.id, tasks, trials=trials, split="search",
                                                   wall_clock_s=self.eval_wall_clock_s())
            spot = SpotResult(task_ids=ids, trials=trials, score=result.score, champion_score=champion)
            c.spots.append(spot)
            self.store.append_ledger(LedgerRow.for_eval(result, kind="spot", decision="spot",
                                                        iteration=self.state.iteration, parent=c.meta.parent or "",
                                                        note=rationale[:200]))
            self.event(E.SpotChecked(candidate=c.id, champion=self.state.champion, task_ids=ids, trials=trials,
                                     score=result.score, champion_score=champion))
            out.append((c, spot))
        return out

    def screen_tasks(self, k: int, rng_seed: int = 0) -> list[str]:
        """Default screening tasks: the champion's failures first (what a change must fix), then one
        or two it passes (what a change must not break), in a seeded order."""
        import random

        rng = random.Random(f"screen:{self.seed}:{self.state.iteration}:{rng_seed}")
        mine = {t.task_id: t.score for t in self._search_rollouts(self.state.champion) if t.trial == 0}
        failed = [t for t in self.search_ids if mine.get(t, 0.0) < 1.0]
        passed = [t for t in self.search_ids if mine.get(t, 0.0) >= 1.0]
        rng.shuffle(failed)
        rng.shuffle(passed)
        keep_passed = min(len(passed), max(1, k // 3)) if failed else min(len(passed), k)
        chosen = failed[: k - keep_passed] + passed[:keep_passed]
        return chosen[:k] or list(self.search_ids)[:k]

    def _check_task(self, task_id: str) -> LabelledTask:
        if task_id in self.search_ids:
            return self.search_ids[task_id]
        try:
            split = self.benchmark.split_of(task_id)
        except Exception:  # noqa: BLE001 - unknown id
            split = None
        if split == "test":
            raise ActionError(f"task {task_id} is in the held-out test split, which the meta-agent cannot use")
        raise ActionError(f"unknown search task {task_id!r}; search task ids look like {', '.join(list(self.search_ids)[:3])}")

    async def _do_spot_check(self, a: A.SpotCheck) -> str:
        c = self.runnable(a.candidate)
        tasks = [self._check_task(t) for t in dict.fromkeys(a.task_ids)]
        result = await self.evaluator.evaluate(c.harness, c.id, tasks, trials=a.trials, split="search",
                                               wall_clock_s=self.eval_wall_clock_s())
        self.store.append_ledger(LedgerRow.for_eval(result, kind="spot", decision="spot", iteration=self.state.iteration,
                                                    parent=c.meta.parent or "", note=a.rationale[:200]))
        self.event(E.SpotChecked(candidate=c.id, champion=self.state.champion, task_ids=[t.id for t in tasks],
                                 trials=a.trials, score=result.score, champion_score=self.champion_mean_on(tasks)))
        traces = [t for t in self._search_rollouts(c.id) if t.task_id in {x.id for x in tasks} and t.trial < a.trials]
        lines = [self.view.line(t) for t in traces]
        return (f"spot-check of {c.id} on {len(tasks)} task(s) x {a.trials}: mean {result.score:.3f} "
                "(informs only; promotion needs full_eval)\n" + "\n".join(lines))

    async def _do_full_eval(self, a: A.FullEval) -> str:
        c = self.runnable(a.candidate)
        if c.full_eval is not None:  # nothing changed since: the result stands, nothing is charged
            r = c.full_eval
            return (f"cached: {c.id} was already fully evaluated (score {r.score:.3f} on {r.n_tasks} tasks); "
                    f"nothing charged. Champion: {self.state.champion}")
        before = self.state.champion
        result, decision = await self.full_eval(c.id, note=a.rationale[:200])
        text = (f"full evaluation of {c.id} on {result.n_tasks} search tasks x {result.trials}: "
                f"score {result.score:.3f} (95% CI {result.ci_low:.3f}-{result.ci_high:.3f}), "
                f"{result.n_errors} errors, {result.n_timeouts} timeouts")
        if decision is not None:
            text += f"\nvs champion: {decision.reason}"
        if self.state.champion != before:
            text += f"\nchampion is now {self.state.champion} (was {before})"
        else:
            text += f"\nchampion unchanged: {self.state.champion}"
        return text

    async def _do_note(self, a: A.Note) -> str:
        self.add_note(a.text)
        return "noted"

    async def _do_finish(self, a: A.Finish) -> str:
        if a.note:
            self.add_note(a.note)
        return "iteration finished"

    def add_note(self, text: str) -> None:
        self.state.notebook.append(f"- iter {self.state.iteration}: {text.strip()}")
        self.store.write_notebook(self.state.notebook)

    def champion_mean_on(self, tasks: list[LabelledTask]) -> float | None:
        """The champion's full-evaluation mean on these tasks (what a spot-check compares with)."""
        champion = self.candidates.get(self.state.champion)
        per_task = {t.task_id: t.mean for t in champion.full_eval.tasks} if champion and champion.full_eval else {}
        scores = [per_task[t.id] for t in tasks if t.id in per_task]
        return sum(scores) / len(scores) if scores else None
