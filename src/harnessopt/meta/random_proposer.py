"""Random search over the move menu: the control arm for LLM proposers.

It runs the same proposal protocol as the LLM proposer (meta/protocol.py): the same menu of
moves, the same refusal of repeated code, the same screening and the same budgets. Only the
choice differs: each proposal is 1 to `max_patterns` menu moves drawn uniformly, applied to a
parent drawn uniformly from the champion and the candidates whose last screen beat it. With the
evaluation policy `meta` (which needs a chooser) it falls back to the ladder. So "does the LLM
beat random?" asks exactly whether its choices beat uniform ones.

`ProtocolSettings(proposals=1, eval_policy="always-full")` reproduces the earlier control: one
random composition per iteration, fully evaluated.

Why compose: on a base model some moves only pay together (a few-shot prompt helps only in
completion mode; either alone scores like the naive chat harness).

Draws are seeded by the run seed and the iteration number.
"""

from __future__ import annotations

import json
import random

from harnessopt import events as E
from harnessopt.meta.draws import draw_once, iteration_rng
from harnessopt.meta.menu import compose
from harnessopt.meta.protocol import IterationPlan, ProtocolSettings, run_iteration
from harnessopt.meta.workbench import ActionError, Workbench
from harnessopt.patterns import PatternError


class RandomProposer:
    """Uniform picks from the move menu, through the shared protocol."""

    name = "random"

    def __init__(self, seed: int = 0, *, settings: ProtocolSettings | None = None, max_patterns: int = 3,
                 max_draws: int = 25):
        self.seed = seed
        self.settings = (settings or ProtocolSettings(eval_policy="ladder")).without_judgement()
        self.max_patterns = max_patterns
        self.max_draws = max_draws

    def rng(self, iteration: int) -> random.Random:
        return iteration_rng(self.seed, iteration)

    async def run_iteration(self, wb: Workbench) -> None:
        self._rng = self.rng(wb.state.iteration)
        await run_iteration(wb, self, self.settings, self._rng)

    async def propose(self, wb: Workbench, plan: IterationPlan) -> None:
        transcript = [{"role": "system", "content": f"random proposer, seed {self.seed}"}]
        shape = wb.benchmark.spec.task_shape
        for draw in range(1, self.max_draws + 1):
            open_moves = plan.open_moves()
            if len(plan.runnable()) >= self.settings.proposals or not open_moves:
                break
            parent, picks = draw_once(wb, open_moves, self._rng, self.max_patterns)
            header = {"action": "propose", "moves": picks, "parent": parent.id, "predicted": 0.0,
                      "hypothesis": f"random search, draw {draw}"}
            try:
                steps, source = compose(parent.source, plan.menu, picks, shape)
                moves = " + ".join(s.label() for s in steps)
                c = wb.propose(source, parent=parent.id, hypothesis=f"random search: {moves}", origin="propose",
                               moves=moves)
            except (ActionError, PatternError) as exc:
                observation = f"refused: {exc}"
            else:
                plan.made.append(c)
                plan.used_moves |= set(picks)
                observation = f"created {c.id} ({moves}, parent {parent.id})"
            wb.event(E.ActionTaken(step=draw, action="propose", rationale=str(header["hypothesis"]),
                                   args={k: v for k, v in header.items() if k != "action"}, observation=observation[:400]))
            transcript += [{"role": "assistant", "content": json.dumps(header)}, {"role": "user", "content": observation}]
        wb.store.write_transcript(wb.state.iteration, transcript)

    async def decide(self, wb: Workbench, plan: IterationPlan) -> bool:
        return False

