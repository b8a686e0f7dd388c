"""The harness recipe: a small typed description of a generated harness.

Every harness the pattern library writes is rendered from a `Recipe` (see `render.py`) and
carries that recipe as a `RECIPE = {...}` literal at its end, so a later pattern starts from it:
patterns compose by changing one part of the recipe and rendering the whole file again. A
hand-written harness has no recipe; `recipe_for_source` then reads a best-effort starting recipe
from its code (prompt mode, retrieval k and order, use of the label set, the wording of its
instruction) on top of the task shape's defaults.

Parts are optional: `None` means the harness does not do that thing.
"""

from __future__ import annotations

import ast
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

TaskShape = Literal["classification", "short_answer", "math", "code", "agent"]
# One model call (or a few) per answer: the shapes the prompt patterns apply to. An `agent` harness
# runs a loop of model turns and workspace tool calls; its patterns change the loop (AgentLoop).
SINGLE_CALL_SHAPES: tuple[str, ...] = ("classification", "short_answer", "math", "code")
TASK_SHAPES: tuple[str, ...] = SINGLE_CALL_SHAPES + ("agent",)


class Part(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Retrieval(Part):
    """Few-shot over the most similar labelled train examples (BM25 via ctx.examples.similar)."""

    k: int = Field(default=8, ge=1, le=32, description="examples per prompt")
    order: Literal["best_last", "best_first"] = Field(
        default="best_last", description="where the most similar example goes (best_last: next to the question)")
    layout: Literal["blocks", "lines", "arrow"] = Field(
        default="blocks", description="blocks: field lines + blank line; lines: no blank line; arrow: 'input => target'")
    worked: bool = Field(
        default=True, description="show an example's worked solution (a longer text field that contains its target) when it has one")


class LabelConstraint(Part):
    """Answers constrained to the benchmark's label set (read from ctx.labels at run time)."""

    mode: Literal["match", "grammar"] = Field(
        default="match", description="match: snap free text onto a label; grammar: decode only labels (JSON-schema enum) where the backend supports it, then match")
    list_labels: bool = Field(default=False, description="list the label set in the prompt")
    fallback: Literal["nearest_example", "first_label", "keep"] = Field(
        default="nearest_example", description="answer when nothing matches: the most similar example's label, the first label, or the text as is")


class Vote(Part):
    """Self-consistency: n sampled answers, majority vote on their normalised form."""

    n: int = Field(default=5, ge=2, le=15, description="samples per task")
    temperature: float = Field(default=0.7, ge=0.05, le=1.5, description="sampling temperature of every sample")


class ToolUse(Part):
    """A tool in the loop: `calculator` (inline <<expression=result>> annotations computed by the
    calculator) or `python` (the model writes a program; its printed output is the answer)."""

    tool: Literal["calculator", "python"] = Field(default="calculator", description="which registered tool")
    max_calls: int = Field(default=6, ge=1, le=12, description="tool calls per answer at most")


class Retry(Part):
    """Verify-and-retry: check each answer's form; resample (hotter, another seed) when it fails."""

    max_retries: int = Field(default=2, ge=1, le=4, description="extra attempts after an invalid answer")
    temperature: float = Field(default=0.7, ge=0.05, le=1.5, description="temperature of the retries")


class Repair(Part):
    """Output-format repair: cut the model's text down to the answer the scorer expects."""

    extract: Literal["auto", "first_line", "last_number", "code"] = Field(
        default="auto", description="auto picks by task shape: first_line (classification, short answer), last_number (math), code")


class AgentLoop(Part):
    """An agent loop over the workspace tools: how the model acts, how long, what it sees, and how
    the loop recovers. The defaults are the naive ReAct loop."""

    actions: Literal["text", "json"] = Field(
        default="text", description="text: ReAct Thought/Action/Action Input lines; json: one JSON action per turn, schema-constrained")
    max_steps: int = Field(default=6, ge=2, le=20, description="model turns before the loop gives up")
    observation_chars: int | None = Field(
        default=None, ge=200, le=8000, description="clip each tool output to this many characters (head and tail kept); None: whole")
    survey_lines: int | None = Field(
        default=None, ge=0, le=10, description="before the first turn, list the files and show this many first lines of each; None: no survey")
    max_errors: int | None = Field(
        default=None, ge=1, le=6, description="recovery: refuse repeated calls, push to answer after this many failed steps in a row, answer at the last step; None: no recovery")
    advice: bool = Field(default=False, description="how-to-work rules in the system prompt (compute with run_python, run the tests, answer with the value alone)")


class Recipe(Part):
    """What a generated harness does. Rendered to code by `render_harness`."""

    version: Literal[1] = 1
    task_shape: TaskShape
    prompt_mode: Literal["chat", "completion"] = "chat"
    instruction: bool = True
    # The seed harness's own instruction (its prompt's text lines), kept instead of the shape's
    # generic one so a generated harness still says what the task is about.
    task_wording: str | None = Field(default=None, max_length=2000)
    max_tokens: int = Field(default=32, ge=1, le=2048)
    retrieval: Retrieval | None = None
    labels: LabelConstraint | None = None
    vote: Vote | None = None
    tool: ToolUse | None = None
    retry: Retry | None = None
    repair: Repair | None = None
    loop: AgentLoop | None = None  # task shape `agent` only
    # Patterns applied so far, in order, as "name(param=value, ...)": the file's lineage.
    applied: list[str] = Field(default_factory=list)

    @property
    def lineage(self) -> str:
        """The applied patterns' names in order, for a generated file's docstring."""
        return ", ".join(a.split("(")[0] for a in self.applied) or "none"

    @property
    def extract(self) -> str:
        """The repair rule in force ("" when the harness does no repair)."""
        if self.repair is None:
            return ""
        if self.repair.extract != "auto":
            return self.repair.extract
        return {"classification": "first_line", "short_answer": "first_line",
                "math": "last_number", "code": "code"}[self.task_shape]


DEFAULT_MAX_TOKENS = {"classification": 16, "short_answer": 32, "math": 256, "code": 384, "agent": 300}


def default_recipe(task_shape: str) -> Recipe:
    """The naive starting point for a task shape: one zero-shot chat turn, answer as given."""
    if task_shape not in TASK_SHAPES:
        raise ValueError(f"unknown task shape {task_shape!r}; one of {', '.join(TASK_SHAPES)}")
    loop = AgentLoop() if task_shape == "agent" else None
    return Recipe(task_shape=task_shape, max_tokens=DEFAULT_MAX_TOKENS[task_shape], loop=loop)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reading a harness


def embedded_recipe(source: str) -> Recipe | None:
    """The `RECIPE = {...}` literal of a generated harness, validated; None if absent or invalid."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "RECIPE"):
            try:
                return Recipe.model_validate(ast.literal_eval(node.value))
            except (ValueError, TypeError, SyntaxError, ValidationError):
                return None
    return None


_TASK_INPUT = re.compile(r"\{\{\s*task\.input\s*\}\}")
_TEMPLATE_TAG = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
_FIELD_LABEL = re.compile(r"[\w ()/-]{1,40}:")


def seed_wording(source: str) -> str | None:
    """The instruction of a hand-written harness: the text lines of its first prompt (a string that
    renders `{{ task.input }}`), without template tags and bare field labels ("Message:")."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    prompts = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
               and _TASK_INPUT.search(n.value)]
    for node in sorted(prompts, key=lambda n: (n.lineno, n.col_offset)):
        lines = [line.strip() for line in node.value.splitlines()]
        kept = [line for line in lines if line and not _TEMPLATE_TAG.search(line) and not _FIELD_LABEL.fullmatch(line)]
        wording = " ".join(kept)[:2000]
        if wording:
            return wording
    return None


_K = re.compile(r"examples\.similar\([^)]*?\bk\s*=\s*(\d+)|examples\.similar\([^,()]+,\s*(\d+)\s*\)")


def inferred_recipe(source: str, task_shape: str) -> Recipe:
    """A best-effort recipe for a hand-written harness: the shape's defaults, plus what its code
    plainly shows (completion vs chat calls, retrieval k and order, use of ctx.labels, its wording)."""
    recipe = default_recipe(task_shape)
    if recipe.loop is not None:
        recipe.loop = inferred_loop(source)
        return recipe
    recipe.task_wording = seed_wording(source)
    if "ctx.complete(" in source and "ctx.chat(" not in source:
        recipe.prompt_mode = "completion"
        recipe.instruction = False
    m = _K.search(source)
    if m:
        k = int(m.group(1) or m.group(2))
        order = "best_last" if re.search(r"reversed\(\s*ctx\.examples\.similar", source) else "best_first"
        recipe.retrieval = Retrieval(k=max(1, min(32, k)), order=order)
    if task_shape == "classification" and "ctx.labels" in source:
        recipe.labels = LabelConstraint()
    return recipe


def _int_constant(source: str, name: str) -> int | None:
    m = re.search(rf"^{name}\s*=\s*([\d_]+)", source, re.MULTILINE)
    return int(m.group(1).replace("_", "")) if m else None


def loop_bounds(setting: str) -> tuple[int, int]:
    """The (least, most) an AgentLoop setting allows: one place for its bounds, which the loop
    patterns' parameters and the reading of hand-written code both use."""
    metadata = AgentLoop.model_fields[setting].metadata
    return next(m.ge for m in metadata if hasattr(m, "ge")), next(m.le for m in metadata if hasattr(m, "le"))


def inferred_loop(source: str) -> AgentLoop:
    """A best-effort AgentLoop for a hand-written agent harness: its step cap, whether it sends a
    JSON schema, its observation clip, and whether it surveys the files, recovers or gives advice."""
    def within(value: int | None, setting: str) -> int | None:
        lo, hi = loop_bounds(setting)
        return None if value is None else max(lo, min(hi, value))
    heads = _int_constant(source, "HEAD_LINES")
    if heads is None and "file_heads" in source:
        heads = 3
    steps = within(_int_constant(source, "MAX_STEPS"), "max_steps")
    return AgentLoop(
        actions="json" if "response_format" in source else "text",
        max_steps=steps if steps is not None else AgentLoop.model_fields["max_steps"].default,
        observation_chars=within(_int_constant(source, "OBSERVATION_CHARS"), "observation_chars"),
        survey_lines=within(heads, "survey_lines"),
        max_errors=within(_int_constant(source, "MAX_ERRORS"), "max_errors"),
        advice="How to work" in source,
    )


def recipe_for_source(source: str, task_shape: str) -> tuple[Recipe, bool]:
    """(recipe to build on, whether it was embedded). An embedded recipe of another task shape
    is not trusted: the harness is then treated as hand-written."""
    recipe = embedded_recipe(source)
    if recipe is not None and recipe.task_shape == task_shape:
        return recipe, True
    return inferred_recipe(source, task_shape), False
