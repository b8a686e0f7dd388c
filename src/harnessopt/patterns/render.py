"""Render a `Recipe` into a complete, readable harness file.

The templates live in `templates/` as package files: `harness.py.j2` is the file and
`prompts/<shape>.j2` the prompt it carries. They use `[[ ]]` / `[% %]` delimiters, so the jinja
prompt inside a harness (`{{ task.input }}`, `{% for ex in shots %}`) passes through verbatim
and is filled per task by `ctx.render` at run time. Nothing here knows a benchmark: labels,
examples and answers are read by the generated code from `ctx` when it runs.
"""

from __future__ import annotations

import pprint
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from harnessopt.harness import validate_source
from harnessopt.patterns.recipe import Recipe

TEMPLATES_DIR = Path(__file__).parent / "templates"

_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)), undefined=StrictUndefined, keep_trailing_newline=True,
    trim_blocks=True, lstrip_blocks=True, autoescape=False,
    block_start_string="[%", block_end_string="%]", variable_start_string="[[", variable_end_string="]]",
    comment_start_string="[#", comment_end_string="#]",
)

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
_FALLBACK_DOC = {"nearest_example": "the most similar example's label", "first_label": "the first label",
                 "keep": "the text as it is"}


def render_prompt(recipe: Recipe) -> str:
    """The jinja prompt the harness carries (its TEMPLATE constant)."""
    name = "math_python" if recipe.tool and recipe.tool.tool == "python" else recipe.task_shape
    text = _env.get_template(f"prompts/{name}.j2").render(r=recipe)
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
    out.append(f"ask the model with a {mode}" + ("" if r.instruction else ", no instruction line"))
    if r.labels and r.labels.mode == "grammar":
        out.append("decode only labels (JSON-schema enum, grammar-constrained where the backend supports it)")
    if r.tool and r.tool.tool == "calculator":
        out.append("compute every <<expression=result>> with the calculator tool")
    if r.tool and r.tool.tool == "python":
        out.append("run the Python program the model writes with the python tool; its output is the answer")
    if r.extract:
        out.append(f"repair the output format: keep {_EXTRACT_DOC[r.extract]}")
    if r.labels:
        out.append(f"snap the answer onto the label set; when nothing matches use {_FALLBACK_DOC[r.labels.fallback]}")
    if r.retry:
        out.append(f"check the answer's form and retry up to {r.retry.max_retries} times at temperature {r.retry.temperature}")
    if r.vote:
        out.append(f"sample {r.vote.n} answers at temperature {r.vote.temperature} and return the majority")
    return out


def _py_string(text: str) -> str:
    """A readable Python literal for a multi-line string."""
    if '"""' not in text and "\\" not in text and not text.endswith('"'):
        return f'"""{text}"""'
    return repr(text)


def render_harness(recipe: Recipe) -> str:
    """The complete harness source for `recipe`; validated statically before it is returned."""
    r = recipe
    calculator = bool(r.tool and r.tool.tool == "calculator")
    python_tool = bool(r.tool and r.tool.tool == "python")
    grammar = bool(r.labels and r.labels.mode == "grammar")
    extract = r.extract
    worked = bool(r.retrieval and r.retrieval.worked and r.task_shape in ("math", "short_answer"))
    needs_number = r.task_shape == "math" and bool(extract == "last_number" or calculator or r.retry or r.vote)
    code_blocks = python_tool or extract == "code"
    imports = sorted({
        *(["collections"] if r.vote else []),
        *(["difflib"] if r.labels else []),
        *(["json"] if grammar else []),
        *(["re"] if (r.labels or calculator or needs_number or code_blocks or extract == "first_line"
                     or (r.vote and r.task_shape != "math")) else []),
    })
    post = []
    if extract:
        post.append(f"keep {_EXTRACT_DOC[extract]}")
    if r.labels:
        post.append("snap it onto the label set")
    recipe_literal = pprint.pformat(r.model_dump(mode="json"), indent=1, width=100, sort_dicts=False)
    source = _env.get_template("harness.py.j2").render(
        r=r, shape=r.task_shape, completion=r.prompt_mode == "completion",
        title=f"{_SHAPE_TITLE[r.task_shape]} built from harness patterns.",
        steps=steps(r), lineage=", ".join(a.split("(")[0] for a in r.applied) or "none",
        imports=imports, recipe_literal=recipe_literal, template_literal=_py_string(render_prompt(r)),
        stop=repr(stop_sequences(r)) if stop_sequences(r) else "",
        calculator=calculator, python_tool=python_tool, grammar=grammar, extract=extract,
        plain=not (grammar or calculator or python_tool),
        extract_doc=_EXTRACT_DOC.get(extract, ""), fallback_doc=_FALLBACK_DOC[r.labels.fallback] if r.labels else "",
        worked=worked, needs_number=needs_number, code_blocks=code_blocks,
        post_doc=", ".join(post) if post else "read the answer",
    )
    validate_source(source, "<generated harness>")
    return source
