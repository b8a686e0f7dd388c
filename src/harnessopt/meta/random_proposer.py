"""Random search over harness patterns: the control arm for LLM meta-agents.

Each iteration composes 1 to `max_patterns` distinct patterns that apply to the benchmark's
task shape, each with random parameters, on top of the champion, and fully evaluates the
result. It acts only through the workbench actions an LLM meta-agent uses (`apply_pattern`, one
per pattern, each on the candidate the previous one made; then `full_eval`), so budgets, ledger,
events and transcripts are the same kind, and an LLM proposer can be compared with it at the
same budget: `--meta-model random`.

Why compose: on a base model some moves only pay together (a few-shot prompt helps only in
completion mode; either alone scores like the naive chat harness), and a hill-climber that
applies one pattern per iteration never sees the first step pay off.

Draws are seeded by the run seed and the iteration number. A pattern that would not change the
harness is redrawn, and so is a composition whose code equals an earlier candidate's.
"""

from __future__ import annotations

import random

from harnessopt import events as E
from harnessopt.harness import source_hash
from harnessopt.meta import actions as A
from harnessopt.meta.workbench import Workbench
from harnessopt.patterns import PatternError, applicable, apply_pattern


class RandomProposer:
    """Apply 1-3 random applicable patterns with random params to the champion, then full_eval."""

    name = "random"

    def __init__(self, seed: int = 0, max_patterns: int = 3, max_draws: int = 25):
        self.seed = seed
        self.max_patterns = max_patterns
        self.max_draws = max_draws

    def rng(self, iteration: int) -> random.Random:
        return random.Random(f"harnessopt-random-proposer:{self.seed}:{iteration}")  # str seeds: sha512, stable

    def draw(self, wb: Workbench, rng: random.Random) -> list[A.ApplyPattern]:
        """A composition of distinct patterns that yields new code, or [] after max_draws tries."""
        shape = wb.benchmark.spec.task_shape
        patterns = applicable(shape)
        seen = {c.meta.harness_hash for c in wb.candidates.values()}
        for n in range(1, self.max_draws + 1):
            want = rng.randint(1, min(self.max_patterns, len(patterns)))
            source, steps = wb.candidates[wb.state.champion].source, []
            for pattern in rng.sample(patterns, len(patterns)):
                if len(steps) == want:
                    break
                params = pattern.sample(rng, shape)
                try:
                    source = apply_pattern(source, pattern.name, params, shape).source  # dry run
                except PatternError:
                    continue  # no change, or params that do not fit this shape
                steps.append((pattern.name, params))
            if steps and source_hash(source) not in seen:
                names = " + ".join(name for name, _ in steps)
                return [A.ApplyPattern(name=name, params=params, rationale=f"random draw {n}, pattern {i + 1}/{len(steps)}",
                                       hypothesis=f"random search: {names}, random params")
                        for i, (name, params) in enumerate(steps)]
        return []

    async def run_iteration(self, wb: Workbench) -> None:
        transcript: list[dict[str, str]] = [{"role": "system", "content": f"random proposer, seed {self.seed}"}]
        plan = self.draw(wb, self.rng(wb.state.iteration))
        if not plan:
            wb.event(E.MetaStopped(reason=f"no pattern composition gave new code in {self.max_draws} draws"))
            return
        parent = wb.state.champion
        for step, action in enumerate(plan):
            wb.last_created = None
            await self._step(wb, action.model_copy(update={"parent": parent}), step, transcript)
            if wb.last_created is None or wb.candidates[wb.last_created].harness is None:
                return
            parent = wb.last_created
        left = wb.budget.rollouts_left()
        needed = wb.evaluator.rollouts_needed(wb.candidates[parent].harness, wb.search_tasks, wb.trials)
        if left is not None and needed > left:
            wb.event(E.MetaStopped(reason=f"a full evaluation of {parent} needs {needed} rollouts, {left} left"))
            return
        await self._step(wb, A.FullEval(candidate=parent, rationale="random search evaluates every proposal fully"),
                         len(plan), transcript)

    async def _step(self, wb: Workbench, action: A._Action, step: int, transcript: list[dict[str, str]]) -> str:
        observation = await wb.execute(action)
        wb.event(E.ActionTaken(step=step, action=action.action, rationale=action.rationale,
                               args=action.model_dump(exclude={"action", "rationale", "code"}),
                               observation=observation[:400]))
        transcript += [{"role": "assistant", "content": action.model_dump_json()},
                       {"role": "user", "content": observation}]
        wb.store.write_transcript(wb.state.iteration, transcript)
        return observation
