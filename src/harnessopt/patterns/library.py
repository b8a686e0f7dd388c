"""The pattern library: known-good harness changes, each a typed transformation of a recipe.

A pattern takes the current harness (its embedded recipe, or one read from hand-written code),
changes one part of the recipe with validated parameters, and renders a new complete harness
file. Patterns compose because each owns one part of the recipe: applying retrieval few-shot,
then label constraint, then a vote gives a harness that does all three. Applying a pattern
again replaces its part (e.g. a different k). See docs/PATTERNS.md.

No pattern mentions a benchmark: the generated code reads labels (`ctx.labels`) and examples
(`ctx.examples`) when it runs.
"""

from __future__ import annotations

import random
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from harnessopt.patterns.recipe import (
    SINGLE_CALL_SHAPES, AgentLoop, LabelConstraint, Recipe, Repair, Retrieval, Retry, ToolUse, Vote, loop_bounds,
    recipe_for_source,
)
from harnessopt.patterns.render import render_harness

ALL_SHAPES = SINGLE_CALL_SHAPES  # the prompt patterns; agent loops have their own (below)
AGENT = ("agent",)


class PatternError(ValueError):
    """A pattern that cannot be applied (unknown, wrong task shape, bad params, no change)."""


class PromptMode(BaseModel):
    model_config = ConfigDict(extra="forbid")
    instruction: bool = Field(default=False, description="keep an instruction line above the examples")


@dataclass(frozen=True)
class Pattern:
    name: str
    summary: str                 # one line: what it does
    helps: str                   # one line: when it helps
    params: type[BaseModel]
    shapes: tuple[str, ...]
    change: Callable[[Recipe, Any], Recipe]
    # Values the random proposer draws from (per field; shape-specific overrides below).
    grid: dict[str, list[Any]] = field(default_factory=dict)
    grid_by_shape: dict[str, dict[str, list[Any]]] = field(default_factory=dict)

    def applies_to(self, task_shape: str) -> bool:
        return task_shape in self.shapes

    def validate(self, params: dict[str, Any] | None) -> BaseModel:
        try:
            return self.params.model_validate(params or {})
        except ValidationError as exc:
            errs = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'params'}: {e['msg']}" for e in exc.errors()[:3])
            raise PatternError(f"{self.name}: invalid params ({errs}); params are {describe_params(self.params)}") from None

    def sample(self, rng: random.Random, task_shape: str) -> dict[str, Any]:
        """Random parameters: each field drawn from the grid, or its type's range."""
        grid = {**self.grid, **self.grid_by_shape.get(task_shape, {})}
        out: dict[str, Any] = {}
        for name, info in self.params.model_fields.items():
            if name in grid:
                out[name] = rng.choice(grid[name])
            elif typing.get_origin(info.annotation) is Literal:
                out[name] = rng.choice(typing.get_args(info.annotation))
            elif info.annotation is bool:
                out[name] = rng.random() < 0.5
        return out


def describe_params(model: type[BaseModel]) -> str:
    parts = []
    for name, info in model.model_fields.items():
        ann = info.annotation
        if typing.get_origin(ann) is Literal:
            kind = "|".join(str(a) for a in typing.get_args(ann))
        else:
            kind = getattr(ann, "__name__", str(ann))
            lo = next((m.ge for m in info.metadata if hasattr(m, "ge")), None)
            hi = next((m.le for m in info.metadata if hasattr(m, "le")), None)
            if lo is not None and hi is not None:
                kind += f" {lo}..{hi}"
        parts.append(f"{name} ({kind}, default {info.default!r})")
    return ", ".join(parts) or "none"


# --------------------------------------------------------------------------- the changes


def _retrieval(r: Recipe, p: Retrieval) -> Recipe:
    return r.model_copy(update={"retrieval": p})


def _labels(r: Recipe, p: LabelConstraint) -> Recipe:
    # Grammar-constrained labels need room for the quotes and the longest label.
    max_tokens = max(r.max_tokens, 32) if p.mode == "grammar" else r.max_tokens
    return r.model_copy(update={"labels": p, "max_tokens": max_tokens})


def _completion(r: Recipe, p: PromptMode) -> Recipe:
    return r.model_copy(update={"prompt_mode": "completion", "instruction": p.instruction})


def _chat(r: Recipe, p: PromptMode) -> Recipe:
    return r.model_copy(update={"prompt_mode": "chat", "instruction": p.instruction})


class ChatMode(PromptMode):
    instruction: bool = Field(default=True, description="keep an instruction line above the examples")


def _vote(r: Recipe, p: Vote) -> Recipe:
    return r.model_copy(update={"vote": p})


def _tool(r: Recipe, p: ToolUse) -> Recipe:
    return r.model_copy(update={"tool": p, "max_tokens": max(r.max_tokens, 256)})


def _retry(r: Recipe, p: Retry) -> Recipe:
    return r.model_copy(update={"retry": p})


_EXTRACT_OK = {"classification": {"auto", "first_line"}, "short_answer": {"auto", "first_line"},
               "math": {"auto", "last_number", "first_line"}, "code": {"auto", "code"}}


def _repair(r: Recipe, p: Repair) -> Recipe:
    if p.extract not in _EXTRACT_OK[r.task_shape]:
        raise PatternError(f"format_repair: extract={p.extract!r} does not fit a {r.task_shape} task; "
                           f"use one of {', '.join(sorted(_EXTRACT_OK[r.task_shape]))}")
    return r.model_copy(update={"repair": p})


# --------------------------------------------------------------------------- agent-loop changes


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _loop_setting(model: str, param: str, setting: str, default: int, description: str) -> type[BaseModel]:
    """The parameter model of a pattern that sets one AgentLoop setting, within that setting's bounds."""
    lo, hi = loop_bounds(setting)
    return create_model(model, __config__=ConfigDict(extra="forbid"),
                        **{param: (int, Field(default=default, ge=lo, le=hi, description=description))})


StepCap = _loop_setting("StepCap", "max_steps", "max_steps", 10, "model turns before the loop gives up")
ClipObservations = _loop_setting("ClipObservations", "chars", "observation_chars", 1800,
                                 "characters of one tool output shown (head and tail kept)")
Survey = _loop_setting("Survey", "head_lines", "survey_lines", 3, "first lines shown of each file (0: the listing only)")
Recovery = _loop_setting("Recovery", "max_errors", "max_errors", 3,
                         "failed steps in a row before the model is told to answer")


def _loop(r: Recipe, **update: Any) -> Recipe:
    return r.model_copy(update={"loop": (r.loop or AgentLoop()).model_copy(update=update)})


def _json_actions(r: Recipe, p: NoParams) -> Recipe:
    # A JSON action carries code or a whole file in `input`: room for it.
    return _loop(r, actions="json").model_copy(update={"max_tokens": max(r.max_tokens, 700)})


def _text_actions(r: Recipe, p: NoParams) -> Recipe:
    return _loop(r, actions="text")


PATTERNS: dict[str, Pattern] = {p.name: p for p in [
    Pattern("retrieval_fewshot", "few-shot prompt over the k most similar labelled train examples (BM25)",
            "almost always for a small model: examples show the answer format and the nearest cases",
            Retrieval, ALL_SHAPES, _retrieval,
            grid={"k": [2, 4, 8, 12, 16]}, grid_by_shape={"math": {"k": [2, 4, 6]}, "code": {"k": [1, 2, 3]}}),
    Pattern("label_constraint", "answers constrained to the label set: snap text onto a label, or decode only labels",
            "classification whose answers miss the exact label spelling",
            LabelConstraint, ("classification",), _labels),
    Pattern("completion_mode", "plain text-completion prompt instead of a chat turn",
            "base models (no chat template), e.g. the embedded Gemma 3 270M",
            PromptMode, ALL_SHAPES, _completion),
    Pattern("chat_mode", "one chat turn instead of a completion prompt",
            "instruction-tuned chat models, after completion_mode",
            ChatMode, ALL_SHAPES, _chat),
    Pattern("self_consistency", "n sampled answers, majority vote",
            "answers that vary between samples, when the budget allows n calls per task",
            Vote, ("classification", "short_answer", "math"), _vote,
            grid={"n": [3, 5, 7], "temperature": [0.3, 0.5, 0.7, 1.0]}),
    Pattern("tool_use", "calculator in the generation loop, or a Python program run by the python tool",
            "arithmetic errors in otherwise sound reasoning",
            ToolUse, ("math",), _tool, grid={"max_calls": [4, 6, 8]}),
    Pattern("verify_retry", "check each answer's form (label, number, code compiles) and resample when it fails",
            "answers that are sometimes malformed (no label, no number, syntax errors)",
            Retry, ALL_SHAPES, _retry, grid={"max_retries": [1, 2, 3], "temperature": [0.5, 0.7, 1.0]}),
    Pattern("format_repair", "cut the model's text down to the answer: first line, final number or code only",
            "right answers wrapped in prose, prefixes, quotes, fences or extra lines",
            Repair, ALL_SHAPES, _repair,
            grid_by_shape={"classification": {"extract": ["auto"]}, "short_answer": {"extract": ["auto"]},
                           "math": {"extract": ["auto", "last_number"]}, "code": {"extract": ["auto"]}}),
    Pattern("json_actions", "one JSON action per turn ({thought, action, path, input}), schema-constrained where the backend allows",
            "replies that miss the text action format: prose answers, no Action line, bad Action Input",
            NoParams, AGENT, _json_actions),
    Pattern("text_actions", "ReAct text turns (Thought / Action / Action Input / Final Answer)",
            "models that write JSON poorly, after json_actions",
            NoParams, AGENT, _text_actions),
    Pattern("step_cap", "a different step cap: model turns before the loop gives up",
            "the step cap was hit before an answer (raise it), or loops that wander (lower it)",
            StepCap, AGENT, lambda r, p: _loop(r, max_steps=p.max_steps), grid={"max_steps": [4, 8, 10, 12, 16]}),
    Pattern("clip_observations", "clip each tool output (head and tail kept) so long files do not crowd out the task",
            "long tool outputs, a model that loses the question after a big read",
            ClipObservations, AGENT, lambda r, p: _loop(r, observation_chars=p.chars),
            grid={"chars": [600, 1200, 1800, 3000]}),
    Pattern("workspace_survey", "show the file listing and each file's first lines with the question",
            "answers given before the evidence was read, wrong paths, steps spent finding files",
            Survey, AGENT, lambda r, p: _loop(r, survey_lines=p.head_lines), grid={"head_lines": [0, 2, 3, 5]}),
    Pattern("loop_recovery", "refuse repeated identical calls; after failed steps in a row, or near the cap, make the model answer",
            "repeated tool calls, ignored tool errors, no answer at the step cap",
            Recovery, AGENT, lambda r, p: _loop(r, max_errors=p.max_errors), grid={"max_errors": [2, 3, 4]}),
    Pattern("working_advice", "how-to-work rules in the system prompt: compute with run_python, run the tests, read before writing",
            "wrong counts and sums done in the head, changes made without reading, answers with extra words",
            NoParams, AGENT, lambda r, p: _loop(r, advice=True)),
]}
PATTERN_NAMES: tuple[str, ...] = tuple(PATTERNS)


class PatternResult(BaseModel):
    source: str
    recipe: Recipe
    applied: str          # e.g. "retrieval_fewshot(k=8, order='best_last')"
    from_recipe: bool     # built on the parent's embedded recipe (False: the parent was hand-written)
    note: str             # one line for the candidate's hypothesis


def get_pattern(name: str) -> Pattern:
    if name not in PATTERNS:
        raise PatternError(f"unknown pattern {name!r}; patterns: {', '.join(PATTERN_NAMES)}")
    return PATTERNS[name]


def applicable(task_shape: str) -> list[Pattern]:
    return [p for p in PATTERNS.values() if p.applies_to(task_shape)]


def apply_pattern(source: str, name: str, params: dict[str, Any] | None, task_shape: str) -> PatternResult:
    """Apply pattern `name` to the harness `source` of a `task_shape` benchmark.

    Raises PatternError when the pattern is unknown, does not apply to the shape, gets invalid
    params, or would not change the harness.
    """
    pattern = get_pattern(name)
    if not pattern.applies_to(task_shape):
        raise PatternError(f"{name} applies to {', '.join(pattern.shapes)} tasks; this benchmark's tasks are {task_shape}")
    p = pattern.validate(params)
    base, from_recipe = recipe_for_source(source, task_shape)
    changed = pattern.change(base, p)
    shown = ", ".join(f"{k}={v!r}" for k, v in p.model_dump().items())
    applied = f"{name}({shown})"
    new = changed.model_copy(update={"applied": [*base.applied, applied]})
    new_source = render_harness(new)
    if from_recipe and changed == base:
        raise PatternError(f"{applied} does not change the harness: it already does this; "
                           "try other params, another pattern, or another parent")
    if new_source == source:
        raise PatternError(f"{applied} does not change the harness")
    if from_recipe:
        note = f"pattern {applied} on the parent's recipe"
    else:
        note = (f"pattern {applied}; the parent is hand-written, so the new file replaces it wholesale, "
                f"starting from a recipe read from its code ({'; '.join(_inferred_summary(base))})")
    return PatternResult(source=new_source, recipe=new, applied=applied, from_recipe=from_recipe, note=note)


def _inferred_summary(r: Recipe) -> list[str]:
    out = [f"{r.prompt_mode} prompt"]
    if r.retrieval:
        out.append(f"retrieval k={r.retrieval.k}")
    if r.labels:
        out.append("labels matched")
    return out


def describe_patterns(task_shape: str, source: str | None = None) -> str:
    """The text of the `list_patterns` observation: patterns for this shape, with params."""
    lines = [f"Harness patterns for {task_shape} tasks. Each writes a complete new harness from the parent's "
             "recipe; apply_pattern(name, params, hypothesis[, parent]). Patterns compose: apply one on top of "
             "another. Free-form edits stay available; patterns are options, not limits."]
    for p in applicable(task_shape):
        lines.append(f"- {p.name}: {p.summary}. Helps: {p.helps}. Params: {describe_params(p.params)}")
    agent = task_shape in AGENT  # loop patterns and prompt patterns never mention each other
    others = [p.name for p in PATTERNS.values() if not p.applies_to(task_shape) and (p.shapes == AGENT) == agent]
    if others:
        lines.append(f"(not for {task_shape}: {', '.join(others)})")
    if source is not None:
        recipe, embedded = recipe_for_source(source, task_shape)
        if embedded:
            lines.append(f"The champion's recipe: {' + '.join(recipe.applied) or 'default'}")
        else:
            lines.append("The champion is hand-written: a pattern replaces it with a generated harness starting from "
                         f"{'; '.join(_inferred_summary(recipe))}.")
    return "\n".join(lines)
