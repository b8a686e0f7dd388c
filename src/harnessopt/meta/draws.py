"""Random draws of proposals: what the random control proposes, and the pool an LLM ranks.

A draw is a parent (the champion, or a candidate whose screen beat it) and 1 to `max_patterns`
menu moves composed on it, each menu move at most once per round of draws. The random control
proposes its draws in order. Under proposal mode `rank` an LLM is shown a pool of draws from
the same seeded generator and picks which to propose. The pool's first round is exactly what
the control would propose from the same state, so "does the LLM beat random?" asks only whether
its choice among the draws beats their order.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from harnessopt.meta.digest import Digest
from harnessopt.meta.menu import ADDRESSES, Step, apply_steps, new_code, picked_steps
from harnessopt.patterns.recipe import Recipe, recipe_for_source

if TYPE_CHECKING:
    from harnessopt.meta.protocol import IterationPlan
    from harnessopt.meta.workbench import Candidate, Workbench


def iteration_rng(seed: int, iteration: int) -> random.Random:
    """The generator of one iteration's menu and draws (str seeds: stable across Python runs)."""
    return random.Random(f"harnessopt-random-proposer:{seed}:{iteration}")


class Draw(BaseModel):
    """One drawn proposal: menu moves composed on a parent."""

    model_config = ConfigDict(extra="forbid")
    number: int
    parent: str
    steps: list[Step]
    source: str = Field(repr=False)
    # The digest's clusters (key, count) its added patterns address; set by rank_pool_by_digest.
    addresses: list[tuple[str, int]] = Field(default_factory=list)

    @property
    def label(self) -> str:
        return " + ".join(s.label() for s in self.steps)


def stepping_stones(wb: Workbench) -> list[Candidate]:
    """The champion, and runnable candidates whose last screen beat it and that no full
    evaluation has rejected: places a next move may start from."""
    out = [wb.candidates[wb.state.champion]]
    for c in wb.candidates.values():
        if c.harness is None or c.id == wb.state.champion or c.decision == "rejected" or not c.spots:
            continue
        s = c.spots[-1]
        if s.champion_score is not None and s.score > s.champion_score:
            out.append(c)
    return out


def draw_once(wb: Workbench, open_moves: list[int], rng: random.Random, max_patterns: int) -> tuple[Candidate, list[int]]:
    """A parent and the menu numbers to compose on it (the control's exact use of the generator)."""
    parent = rng.choice(stepping_stones(wb))
    picks = rng.sample(open_moves, rng.randint(1, min(max_patterns, len(open_moves))))
    return parent, picks


def draw_pool(wb: Workbench, plan: IterationPlan, rng: random.Random, *, size: int, max_patterns: int = 3,
              max_draws: int = 25) -> list[Draw]:
    """Up to `size` draws of new, distinct code, in rounds of `plan.settings.proposals` draws (each
    menu move once per round, as the control uses them once per iteration)."""
    per_round = plan.settings.proposals
    seen = {c.meta.harness_hash for c in wb.candidates.values()}
    pool: list[Draw] = []
    used: set[int] = set()
    made_in_round = 0
    shape = wb.benchmark.spec.task_shape
    for _ in range(max_draws * max(1, -(-size // per_round))):
        if len(pool) >= size:
            break
        open_moves = [m.number for m in plan.menu if m.number not in used]
        if made_in_round >= per_round or not open_moves:  # a new round: every move is open again
            used, made_in_round = set(), 0
            open_moves = [m.number for m in plan.menu]
            if not open_moves:
                break
        parent, picks = draw_once(wb, open_moves, rng, max_patterns)
        steps = picked_steps(plan.menu, picks)  # picks come from the menu
        source = new_code(lambda: apply_steps(parent.source, steps, shape), seen)
        if source is None:
            continue
        used |= set(picks)
        made_in_round += 1
        pool.append(Draw(number=len(pool) + 1, parent=parent.id, steps=steps, source=source))
    return pool


def what_it_does(source: str, task_shape: str) -> str:
    """A harness's recipe in a few words. Pool lines say what each draw's harness would do rather
    than the steps composed to get there: compositions repeat and cancel steps ("chat_mode +
    completion_mode"), which a small model reads literally."""
    r: Recipe = recipe_for_source(source, task_shape)[0]
    if r.loop is not None:
        loop = r.loop
        parts = [f"{loop.actions} actions", f"at most {loop.max_steps} turns"]
        parts += [f"survey of {loop.survey_lines} lines per file"] if loop.survey_lines is not None else []
        parts += [f"tool output clipped to {loop.observation_chars} chars"] if loop.observation_chars else []
        parts += [f"recovery after {loop.max_errors} errors"] if loop.max_errors else []
        parts += ["working advice"] if loop.advice else []
        return "; ".join(parts)
    parts = [("completion prompt" if r.prompt_mode == "completion" else "chat turn")
             + ("" if r.instruction else " without instruction")]
    if r.retrieval:
        parts.append(f"{r.retrieval.k} similar labelled examples")
    if r.labels:
        parts.append(("decode only labels" if r.labels.mode == "grammar" else "snap the answer to a label")
                     + (", labels listed" if r.labels.list_labels else ""))
    if r.tool:
        parts.append(f"{r.tool.tool} tool")
    if r.repair:
        parts.append(f"keep the {r.extract.replace('_', ' ')}")
    if r.retry:
        parts.append(f"retry malformed answers x{r.retry.max_retries}")
    if r.vote:
        parts.append(f"majority of {r.vote.n} samples")
    return "; ".join(parts)


def patterns_in_effect(source: str, task_shape: str) -> set[str]:
    """The patterns whose part a harness's recipe has (chat is the default, not a pattern)."""
    r: Recipe = recipe_for_source(source, task_shape)[0]
    parts = {"completion_mode": r.prompt_mode == "completion", "retrieval_fewshot": r.retrieval is not None,
             "label_constraint": r.labels is not None, "self_consistency": r.vote is not None,
             "verify_retry": r.retry is not None, "format_repair": r.repair is not None, "tool_use": r.tool is not None}
    if r.loop is not None:
        parts |= {"json_actions": r.loop.actions == "json", "step_cap": r.loop.max_steps != 6,
                  "clip_observations": r.loop.observation_chars is not None,
                  "workspace_survey": r.loop.survey_lines is not None,
                  "loop_recovery": r.loop.max_errors is not None, "working_advice": r.loop.advice}
    return {name for name, present in parts.items() if present}


def addressed_by_change(source: str, parent_source: str, digest: Digest, task_shape: str) -> list[tuple[str, int]]:
    """The digest's clusters (key, count) that a pattern the harness adds to its parent addresses."""
    added = patterns_in_effect(source, task_shape) - patterns_in_effect(parent_source, task_shape)
    return [(c.key, c.count) for c in digest.clusters if added & set(ADDRESSES.get(c.key, ()))]


def rank_pool_by_digest(pool: list[Draw], parent_sources: dict[str, str], digest: Digest,
                        task_shape: str) -> list[Draw]:
    """The pool with the draws that address the most counted failures first, renumbered, each
    carrying what it addresses (ties keep the pool's order, i.e. the control's)."""
    hits = [addressed_by_change(d.source, parent_sources[d.parent], digest, task_shape) for d in pool]
    ranked = sorted(zip(pool, hits), key=lambda pair: -sum(n for _, n in pair[1]))
    return [d.model_copy(update={"number": i, "addresses": h}) for i, (d, h) in enumerate(ranked, 1)]


def describe_pool(pool: list[Draw], champion: str, task_shape: str, rollouts: int = 0) -> str:
    """One line per draw: what its harness would do, its parent unless the champion, and the
    failures it addresses when ranked by the digest."""
    lines = []
    for d in pool:
        on = f" (on {d.parent})" if d.parent != champion else ""
        why = f" [addresses: {', '.join(f'{k} {n}/{rollouts}' for k, n in d.addresses)}]" if d.addresses else ""
        lines.append(f"{d.number}. {what_it_does(d.source, task_shape)}{on}{why}")
    return "\n".join(lines)
