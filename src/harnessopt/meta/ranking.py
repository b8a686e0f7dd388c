"""Proposal mode `rank`: the meta model chooses among the random control's draws.

Ranking is easier than generating for a small model (issue evidence: Qwen 1.5B picks useful
moves when they are small and concrete, and fails at inventing whole rewrites). Each iteration
the loop draws a pool of proposals with the control's own generator (meta/draws.py), shows the
model the digest, the memory table and the pool, and asks for one reply: which `proposals` of
them to try, best first. The ladder then screens them like any other proposals.

What the comparison with the control then measures: both arms propose draws from the same
generator, and the pool's first round is exactly the control's proposals, so the arms differ
only in which draws are tried. A model that picks by position (1, 2, 3) is the control. A reply
that cannot be used twice falls back to the pool's order, and is counted as an invalid output.
"""

from __future__ import annotations

from harnessopt.meta import actions as A
from harnessopt.meta.draws import Draw, describe_pool, draw_pool, iteration_rng, rank_pool_by_digest, what_it_does
from harnessopt.meta.llm_proposer import HEADER_TOKENS, LLMProposer, memory_table, model_line
from harnessopt.meta.protocol import IterationPlan, ProtocolSettings, run_iteration
from harnessopt.meta.workbench import ActionError, Workbench
from harnessopt.patterns import applicable

RANK_REPLIES = 2  # tries for a usable reply before the pool's own order decides
GREEDY_PROPOSER = "greedy"  # the --meta-model value of the control without a model (GreedyProposer)


def chosen_draws(picks: list[int], pool: list[Draw], k: int) -> tuple[list[Draw], int]:
    """The first k distinct picks that name pool draws, filled up in pool order; (draws, how
    many of them the model chose)."""
    by_number = {d.number: d for d in pool}
    chosen = [by_number[n] for n in dict.fromkeys(picks) if n in by_number][:k]
    own = len(chosen)
    chosen += [d for d in pool if d not in chosen][: k - own]
    return chosen, own


class RankingProposer(LLMProposer):
    """An LLM meta-agent that ranks drawn proposals instead of composing or writing them."""

    async def run_iteration(self, wb: Workbench) -> None:
        self._rng = iteration_rng(self.seed, wb.state.iteration)  # the control's generator: same menu, same draws
        await run_iteration(wb, self, self.settings, self._rng)

    async def propose(self, wb: Workbench, plan: IterationPlan) -> None:
        pool = draw_pool(wb, plan, self._rng, size=self.settings.pool_size)
        if not pool:
            plan.refusals.append("no new draws: every composition the menu offers is already a candidate")
            return
        k = min(self.settings.proposals, len(pool))
        pool = self._start_rank(wb, pool, k)
        action = await self._choose(wb, plan, pool, k)
        chosen, own = chosen_draws(action.picks if action else [], pool, k)
        why = action.hypothesis if action and own else "the pool's order (no usable choice)"
        made = []
        for d in chosen:
            try:
                c = wb.propose(d.source, parent=d.parent, hypothesis=f"ranked {d.number} of {len(pool)}: {why}"[:400],
                               origin="propose", moves=d.label)
            except ActionError as exc:  # cannot happen for a fresh pool; kept as a refusal, not a crash
                plan.refusals.append(str(exc))
                continue
            plan.made.append(c)
            made.append(f"{c.id} = draw {d.number} ({d.label})")
        note = "" if own == k else f" ({k - own} filled in pool order: the reply named {own} usable draw(s))"
        self._observe(wb, action or A.Rank(picks=[d.number for d in chosen], hypothesis="no usable reply"),
                      "created " + "; ".join(made) + note)

    async def _choose(self, wb: Workbench, plan: IterationPlan, pool: list[Draw], k: int) -> A.Rank | None:
        for _ in range(RANK_REPLIES):
            _, action = await self._ask(wb, plan, (A.Rank,), HEADER_TOKENS, temperature=self.temperature,
                                        numbers=[d.number for d in pool], picks=k)
            if isinstance(action, A.Rank):
                return action
        return None

    def _start_rank(self, wb: Workbench, pool: list[Draw], k: int) -> list[Draw]:
        """Show the pool (ordered by the digest under menu order `digest`); the pool as shown."""
        shape = wb.benchmark.spec.task_shape
        champion = wb.candidates[wb.state.champion]
        digest = wb.digest_of(champion.id)
        linked = self.settings.menu_order == "digest" and wb.view.mode != "scores"  # scores mode shows no clusters
        if linked:
            parents = {d.parent: wb.candidates[d.parent].source for d in pool}
            pool = rank_pool_by_digest(pool, parents, digest, shape)
        names = {s.pattern for d in pool for s in d.steps}
        legend = "\n".join(f"- {p.name}: {p.summary}. Helps: {p.helps}" for p in applicable(shape) if p.name in names)
        system = self.env.get_template("rank_program.j2").render(
            benchmark=wb.benchmark.name, task_shape=shape, pool=len(pool), proposals=k,
            legend=legend)
        brief = self.env.get_template("rank_brief.j2").render(
            iteration=wb.state.iteration, iterations=wb.budget.budget.iterations, budget=wb.budget_line(),
            task_model=model_line(self.task_model or wb.evaluator.model), labels=len(wb.benchmark.labels or []),
            digest=wb.view.digest(digest), champion=champion.id,
            # in the pool's own words: step labels of compositions repeat and cancel steps
            memory=memory_table(wb, describe=lambda c: what_it_does(c.source, shape)),
            champion_code=champion.source, champion_does=what_it_does(champion.source, shape), proposals=k,
            pool=describe_pool(pool, champion.id, shape, digest.rollouts), linked=linked)
        self._messages = [{"role": "system", "content": system}, {"role": "user", "content": brief}]
        self._transcript = list(self._messages)
        self._step = 0
        return pool


class GreedyProposer(RankingProposer):
    """A control without a model (`--meta-model greedy`): the first draws of the digest-ordered pool,
    i.e. the draws whose added patterns address the most counted failures (meta/menu.py
    `ADDRESSES`). It asks what the protocol's own knowledge achieves without a meta model's
    judgement. In feedback mode `scores` there is no digest, so it proposes the random control's draws."""

    def __init__(self, seed: int = 0, *, settings: ProtocolSettings | None = None):
        settings = (settings or ProtocolSettings(eval_policy="ladder")).without_judgement().model_copy(
            update={"proposal_mode": "rank", "menu_order": "digest"})
        super().__init__(None, GREEDY_PROPOSER, settings=settings, seed=seed)

    async def _choose(self, wb: Workbench, plan: IterationPlan, pool: list[Draw], k: int) -> A.Rank | None:
        return A.Rank(picks=[d.number for d in pool[:k]],
                      hypothesis="the draws that address the most counted failures of the digest")
