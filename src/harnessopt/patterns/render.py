"""Render a `Recipe` into a complete, readable harness file.

Two decisions, each made once:

* `plan(recipe)` decides what the code does: which function produces the model's text (`ask`,
  or a wrapper that constrains it or brings in a tool), how that text becomes the answer, which
  parameters each function takes. The templates only read the plan.
* Which code the file holds follows from the code itself: `templates/blocks.py.j2` has one macro
  per top-level name; every macro is rendered for the plan and the file keeps the blocks that
  `run` reaches by name (and the imports they use), in call order. Nothing unused is emitted.

The templates use `[[ ]]` / `[% %]` delimiters, so the jinja prompt inside a harness
(`{{ task.input }}`, `{% for ex in shots %}`) passes through verbatim and is filled per task by
`ctx.render` at run time. Nothing here knows a benchmark: labels, examples and answers are read
by the generated code from `ctx` when it runs.
"""

from __future__ import annotations

import ast
import pprint
from dataclasses import dataclass

from harnessopt.harness import validate_source
from harnessopt.patterns.agent_render import render_agent
from harnessopt.patterns.recipe import Recipe
from harnessopt.patterns.templating import TEMPLATES, py_string

# Top-level names blocks.py.j2 defines: constants in file order; functions follow `run` in call order.
CONSTANTS = ("TEMPLATE", "K_SHOTS", "MAX_TOKENS", "STOP", "VOTES", "VOTE_TEMPERATURE", "MAX_RETRIES",
             "RETRY_TEMPERATURE", "MAX_TOOL_CALLS", "CALCULATION", "NUMBER", "FENCE")
FUNCTIONS = ("run", "answer", "ask", "ask_for_label", "ask_with_calculator", "solve_with_program", "repair",
             "final_number", "with_solution", "to_label", "normalise", "is_valid", "majority", "vote_key")
IMPORTABLE = ("collections", "difflib", "json", "re")  # standard modules a block may use

# Where a completion-mode answer ends, per shape (chat turns end by themselves).
_COMPLETION_STOP = {
    "classification": ["\n"],
    "short_answer": ["\n"],
    "math": ["\n\n", "Question:"],
    "code": ["\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#"],
}
_SHAPE_TITLE = {"classification": "Classifier", "short_answer": "Short-answer harness",
                "math": "Math word-problem solver", "code": "Code-completion harness"}
_EXTRACT_DOC = {"first_line": "its first line without prefixes or quotes",
                "last_number": "its final number", "code": "its code only"}
_STEP = {"grammar": "ask_for_label", "calculator": "ask_with_calculator", "python": "solve_with_program"}


@dataclass(frozen=True)
class Plan:
    """What a harness's code does, decided once from its recipe (the templates read only this)."""

    r: Recipe
    shape: str
    completion: bool
    extract: str            # the repair rule ("" for none)
    worked: bool            # few-shot targets are worked solutions
    varies: bool            # sampling parameters change per vote / attempt
    ask_params: bool        # ask() passes extra model parameters through
    step: str               # the function that turns the prompt into the model's text
    post: str               # the expression that turns `text` into the answer
    answer_args: str        # parameters of answer() (vote / retry), the same names at the call
    valid_args: str         # arguments of is_valid() (retry)
    render_args: str        # keyword arguments of ctx.render
    prompt_variables: str   # for the comment above TEMPLATE
    nearest_fallback: bool  # an unmatched label falls back to the nearest example's
    fallback_doc: str
    stop: str               # STOP's literal ("" when the prompt needs no stop sequences)
    template_literal: str   # TEMPLATE's literal


def plan(recipe: Recipe) -> Plan:
    r = recipe
    grammar = bool(r.labels and r.labels.mode == "grammar")
    step = _STEP["grammar"] if grammar else _STEP[r.tool.tool] if r.tool else "ask"
    nearest = bool(r.labels and r.labels.fallback == "nearest_example" and r.retrieval)
    text = "repair(text)" if r.extract else "text"
    if r.labels:
        post = f"to_label({text}, ctx.labels{', shots' if nearest else ''})"
    else:
        post = text if r.extract or r.task_shape == "code" else "text.strip()"
    render_args, variables = ["task=task"], ["`task`"]
    if r.retrieval:
        render_args.append("shots=list(reversed(shots))" if r.retrieval.order == "best_last" else "shots=shots")
        variables.append("`shots`")
    if r.labels and r.labels.list_labels:
        render_args.append("labels=ctx.labels or []")
        variables.append("`labels`")
    answer_args = ["ctx", "prompt"] + (["task"] if r.retry and r.task_shape == "code" else [])
    answer_args += (["shots"] if nearest else []) + (["sample"] if r.vote else [])
    stop = stop_sequences(r)
    return Plan(
        r=r, shape=r.task_shape, completion=r.prompt_mode == "completion", extract=r.extract,
        worked=bool(r.retrieval and r.retrieval.worked and r.task_shape in ("math", "short_answer")),
        varies=bool(r.vote or r.retry), ask_params=bool(r.vote or r.retry or grammar), step=step, post=post,
        answer_args=", ".join(answer_args),
        valid_args={"classification": "result, ctx.labels", "code": "result, task"}.get(r.task_shape, "result"),
        render_args=", ".join(render_args),
        prompt_variables=", ".join(variables[:-1]) + " and " + variables[-1] if len(variables) > 1 else variables[0],
        nearest_fallback=nearest, fallback_doc=_fallback_doc(r, nearest),
        stop=repr(stop) if stop else "", template_literal=py_string(render_prompt(r)),
    )


def _fallback_doc(r: Recipe, nearest: bool) -> str:
    if nearest:
        return "the most similar example's label"
    return "the first label" if r.labels and r.labels.fallback == "first_label" else "the text as it is"


def render_prompt(recipe: Recipe) -> str:
    """The jinja prompt the harness carries (its TEMPLATE constant)."""
    name = "math_python" if recipe.tool and recipe.tool.tool == "python" else recipe.task_shape
    text = TEMPLATES.get_template(f"prompts/{name}.j2").render(r=recipe)
    return text.rstrip(" ") if name == "math_python" else text.strip("\n")


def stop_sequences(recipe: Recipe) -> list[str]:
    if recipe.prompt_mode != "completion":
        return []
    if recipe.tool and recipe.tool.tool == "python":
        return ["```"]
    stop = list(_COMPLETION_STOP[recipe.task_shape])
    if recipe.tool and recipe.tool.tool == "calculator":
        stop.append(">>")
    return stop


def steps(recipe: Recipe) -> list[str]:
    """One plain line per thing the harness does, for its docstring."""
    r, out = recipe, []
    if r.retrieval:
        where = "next to the question" if r.retrieval.order == "best_last" else "first"
        out.append(f"retrieve the {r.retrieval.k} most similar labelled train examples (most similar {where}, "
                   f"{r.retrieval.layout} layout)")
    if r.labels and r.labels.list_labels:
        out.append("list the label set (ctx.labels) in the prompt")
    mode = "completion prompt (a base model continues the text)" if r.prompt_mode == "completion" else "one chat turn"
    out.append(f"ask the model with {'a ' if r.prompt_mode == 'completion' else ''}{mode}"
               + ("" if r.instruction else ", no instruction line"))
    if r.labels and r.labels.mode == "grammar":
        out.append("decode only labels (JSON-schema enum, grammar-constrained where the backend supports it)")
    if r.tool and r.tool.tool == "calculator":
        out.append("compute every <<expression=result>> with the calculator tool")
    if r.tool and r.tool.tool == "python":
        out.append("run the Python program the model writes with the python tool; its output is the answer")
    if r.extract:
        out.append(f"repair the output format: keep {_EXTRACT_DOC[r.extract]}")
    if r.labels:
        nearest = r.labels.fallback == "nearest_example" and r.retrieval is not None
        out.append(f"snap the answer onto the label set; when nothing matches use {_fallback_doc(r, nearest)}")
    if r.retry:
        out.append(f"check the answer's form and retry up to {r.retry.max_retries} times at temperature {r.retry.temperature}")
    if r.vote:
        out.append(f"sample {r.vote.n} answers at temperature {r.vote.temperature} and return the majority")
    return out


def recipe_literal(recipe: Recipe) -> str:
    """The RECIPE literal: the parts the harness uses and every setting that differs from the
    shape's default recipe (what a pattern reads back is the same recipe)."""
    data = recipe.model_dump(mode="json")
    default = Recipe(task_shape=recipe.task_shape).model_dump(mode="json")
    keep = {"version", "task_shape", "applied"}
    shown = {k: v for k, v in data.items() if k in keep or v != default[k]}
    return pprint.pformat(shown, indent=1, width=100, sort_dicts=False)


def _names_in_order(code: str) -> list[str]:
    """The global names `code` reads, in order of first appearance (a function's own parameters
    and locals are not uses of the blocks that share their names)."""
    nodes = list(ast.walk(ast.parse(code)))
    local = {n.arg for n in nodes if isinstance(n, ast.arg)}
    local |= {n.id for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    reads = [n for n in nodes if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
    reads.sort(key=lambda n: (n.lineno, n.col_offset))
    return list(dict.fromkeys(n.id for n in reads if n.id not in local))


def _reachable(root: str, blocks: dict[str, str]) -> list[str]:
    """Blocks `root` uses, directly or through others, depth first in order of use (root first)."""
    seen: list[str] = []

    def visit(name: str) -> None:
        seen.append(name)
        for used in _names_in_order(blocks[name]):
            if used in blocks and used not in seen:
                visit(used)

    visit(root)
    return seen


def render_harness(recipe: Recipe) -> str:
    """The complete harness source for `recipe`; validated statically before it is returned."""
    source = render_agent(recipe, recipe_literal(recipe)) if recipe.loop is not None else _render_calls(recipe)
    validate_source(source, "<generated harness>")
    return source


def _render_calls(recipe: Recipe) -> str:
    """A single-call harness: the blocks `run` reaches, in call order, with the imports they use."""
    p = plan(recipe)
    module = TEMPLATES.get_template("blocks.py.j2").make_module({"p": p})
    rendered = {name: str(getattr(module, name)()).strip("\n") for name in CONSTANTS + FUNCTIONS}
    blocks = {name: code for name, code in rendered.items() if code}
    used = _reachable("run", blocks)
    names = {n for name in used for n in _names_in_order(blocks[name])}
    return TEMPLATES.get_template("harness.py.j2").render(
        title=f"{_SHAPE_TITLE[recipe.task_shape]} built from harness patterns.", steps=steps(recipe),
        lineage=recipe.lineage, imports=[m for m in IMPORTABLE if m in names],
        template=blocks["TEMPLATE"], constants=[blocks[n] for n in CONSTANTS[1:] if n in used],
        functions=[blocks[n] for n in used if n in FUNCTIONS], recipe_literal=recipe_literal(recipe),
    )
