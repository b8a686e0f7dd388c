"""The move menu: concrete, numbered harness changes a meta model can pick instead of invent.

Ranking is easier than generating for a small model. Each iteration the loop lists moves that
are known to apply to the champion: every applicable pattern with its default params, a few
param variants, and random compositions of two or three patterns (the same draws the random
control makes). Moves whose code equals a candidate already made are left out, so a pick can
never re-propose something already evaluated. The model picks moves by number; picks compose
(picking 2 and 5 applies both, in that order).
"""

from __future__ import annotations

import random
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from harnessopt.harness import source_hash
from harnessopt.meta.digest import Digest
from harnessopt.patterns import PatternError, applicable, apply_pattern
from harnessopt.patterns.library import describe_params, get_pattern

# Param variants listed beside the defaults (the rest stay reachable through compositions).
VARIANTS: dict[str, list[dict[str, Any]]] = {
    "retrieval_fewshot": [{"k": 4}, {"k": 16}],
    "label_constraint": [{"list_labels": True}],
    "self_consistency": [{"n": 3}],
    "step_cap": [{"max_steps": 4}, {"max_steps": 14}],
    "workspace_survey": [{"head_lines": 0}],
}


# Which patterns address which failure cluster of the digest (cluster key -> patterns). The same
# knowledge as each pattern's "Helps:" line, keyed by what the digest counts.
ADDRESSES: dict[str, tuple[str, ...]] = {
    "echo": ("completion_mode", "retrieval_fewshot"),
    "not_a_label": ("label_constraint", "retrieval_fewshot"),
    "wrong_label": ("retrieval_fewshot", "self_consistency"),
    "extra_text": ("format_repair", "label_constraint"),
    "empty_answer": ("verify_retry", "format_repair"),
    "no_number": ("format_repair", "retrieval_fewshot"),
    "wrong_number": ("tool_use", "self_consistency", "retrieval_fewshot"),
    "syntax_error": ("verify_retry", "format_repair"),
    "failing_test": ("retrieval_fewshot", "verify_retry"),
    "wrong_answer": ("retrieval_fewshot", "self_consistency", "working_advice"),
    "step_cap": ("step_cap", "loop_recovery"),
    "repeated_tool_call": ("loop_recovery",),
    "tool_error_ignored": ("loop_recovery", "working_advice"),
    "answer_before_evidence": ("workspace_survey", "working_advice"),
    "malformed_answer": ("json_actions", "format_repair"),
    "timeout": ("step_cap",),
}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str
    params: dict[str, Any] = Field(default_factory=dict)

    def label(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.pattern}({shown})" if shown else self.pattern


class Move(BaseModel):
    """One menu line: the steps it applies and what it is for."""

    model_config = ConfigDict(extra="forbid")
    number: int
    steps: list[Step]
    summary: str
    source: str = Field(repr=False)

    @property
    def label(self) -> str:
        return " + ".join(s.label() for s in self.steps)


def apply_steps(source: str, steps: list[Step], task_shape: str) -> str:
    """Apply steps in order. A step that changes nothing (the harness already does it) is skipped;
    only a composition that changes nothing at all is refused."""
    start, skipped = source, []
    for step in steps:
        try:
            source = apply_pattern(source, step.pattern, step.params, task_shape).source
        except PatternError as exc:
            if "does not change the harness" not in str(exc):
                raise
            skipped.append(str(exc))
    if source == start:
        raise PatternError(skipped[-1] if skipped else "these moves do not change the harness")
    return source


def build_menu(champion_source: str, task_shape: str, *, seen_hashes: set[str], rng: random.Random,
               random_moves: int = 4) -> list[Move]:
    """Singles (defaults and variants) in a seeded random order, then random compositions; each
    line new code, none seen.

    The order is shuffled because small models pick by position (Qwen-1.5B answered "moves
    [1, 2, 3]" on a fixed order, which happened to be the library's known-good composition):
    with a fixed order a position bias would pass for judgement, and the LLM-vs-random
    comparison would measure the library's ordering instead of the model."""
    candidates: list[tuple[list[Step], str]] = []
    for pattern in applicable(task_shape):
        candidates.append(([Step(pattern=pattern.name)], f"{pattern.summary}. Helps: {pattern.helps}"))
    for pattern in applicable(task_shape):
        for params in VARIANTS.get(pattern.name, []):
            candidates.append(([Step(pattern=pattern.name, params=params)], pattern.summary))
    rng.shuffle(candidates)
    patterns = applicable(task_shape)
    for _ in range(random_moves * 5):
        if sum(1 for c in candidates if len(c[0]) > 1) >= random_moves:
            break
        picked = rng.sample(patterns, rng.randint(2, min(3, len(patterns))))
        steps = [Step(pattern=p.name, params=p.sample(rng, task_shape)) for p in picked]
        candidates.append((steps, "random composition"))
    menu: list[Move] = []
    seen = set(seen_hashes) | {source_hash(champion_source)}
    for steps, summary in candidates:
        source = new_code(lambda: apply_steps(champion_source, steps, task_shape), seen)
        if source is not None:
            menu.append(Move(number=len(menu) + 1, steps=steps, summary=summary, source=source))
    return menu


def new_code(make: Callable[[], str], seen: set[str]) -> str | None:
    """The code `make` builds, added to `seen`; None when the patterns do not apply to it or the
    code was seen already (a menu line or a draw must be new code)."""
    try:
        source = make()
    except PatternError:
        return None
    digest = source_hash(source)
    if digest in seen:
        return None
    seen.add(digest)
    return source


def compose(champion_source: str, menu: list[Move], numbers: list[int], task_shape: str) -> tuple[list[Step], str]:
    """The code of several picked moves applied in order (later picks change their own part)."""
    steps = picked_steps(menu, numbers)
    return steps, apply_steps(champion_source, steps, task_shape)


def picked_steps(menu: list[Move], numbers: list[int]) -> list[Step]:
    """The steps of the picked moves in order, each move once."""
    by_number = {m.number: m for m in menu}
    steps: list[Step] = []
    for n in dict.fromkeys(numbers):
        if n not in by_number:
            raise PatternError(f"move {n} is not on the menu (1-{len(menu)})")
        steps += by_number[n].steps
    return steps


def addressed(move: Move, digest: Digest) -> list[tuple[str, int]]:
    """The digest's failure clusters (key, count) that one of the move's patterns addresses."""
    patterns = {s.pattern for s in move.steps}
    return [(c.key, c.count) for c in digest.clusters if patterns & set(ADDRESSES.get(c.key, ()))]


def rank_by_digest(menu: list[Move], digest: Digest) -> list[Move]:
    """The menu with the moves that address the most counted failures first, renumbered (ties keep
    their shuffled order). Small models pick by position, so the order is what the digest makes
    of the menu; the random control keeps the shuffled menu."""
    ranked = sorted(menu, key=lambda m: -sum(n for _, n in addressed(m, digest)))
    return [m.model_copy(update={"number": i}) for i, m in enumerate(ranked, 1)]


def describe_menu(menu: list[Move], digest: Digest | None = None) -> str:
    """One line per move; with a digest, the failure clusters each move addresses."""
    lines = []
    for m in menu:
        hits = addressed(m, digest) if digest is not None and digest.rollouts else []
        why = f" [addresses: {', '.join(f'{k} {n}/{digest.rollouts}' for k, n in hits)}]" if hits else ""
        lines.append(f"{m.number}. {m.label}: {m.summary}{why}")
    return "\n".join(lines)


def describe_step_params(pattern: str) -> str:
    return describe_params(get_pattern(pattern).params)
