"""Render an agent-loop recipe (task shape `agent`) into a complete harness file.

The loop is the naive ReAct loop by default; each AgentLoop setting adds or changes one piece of
it (JSON actions, the step cap, clipped observations, a survey of the files before the first
turn, recovery from repeated calls and errors, how-to-work advice), so patterns compose as they
do for single-call harnesses. The file reads top-down: constants, the system prompt, `run`, then
its helpers.
"""

from __future__ import annotations

from harnessopt.patterns.recipe import AgentLoop, Recipe
from harnessopt.patterns.templating import TEMPLATES

ADVICE = """How to work:
1. Look at the files that matter: read small ones, search big ones.
2. For anything that needs counting, adding, comparing or scanning many lines, run a short Python
   program (run_python) that reads the files and prints the result. Do not compute in your head.
3. If there are tests, run them (run_shell: python -m unittest) and read what fails.
4. To change a file, read it first, then write its full new content.
5. Answer with the value alone."""


def agent_steps(loop: AgentLoop) -> list[str]:
    """One plain line per thing the loop does, for the file's docstring."""
    out = []
    if loop.survey_lines is not None:
        shown = f" and the first {loop.survey_lines} lines of each" if loop.survey_lines else ""
        out.append(f"show the model the file listing{shown} with the question")
    out.append("one JSON action per turn (schema-constrained on backends that support it)" if loop.actions == "json"
               else "ReAct turns: Thought / Action / Action Input, then the tool's Observation")
    if loop.advice:
        out.append("the system prompt says how to work (compute with run_python, run the tests)")
    if loop.observation_chars:
        out.append(f"clip each tool output to {loop.observation_chars} characters (head and tail kept)")
    if loop.max_errors:
        out.append(f"refuse a repeated identical call; after {loop.max_errors} failed steps in a row, or at the "
                   "next-to-last step, tell the model to answer" + (" (only `answer` is then allowed)"
                                                                   if loop.actions == "json" else ""))
    out.append(f"stop at the final answer, or after {loop.max_steps} model turns")
    return out


def render_agent(recipe: Recipe, recipe_literal: str) -> str:
    loop = recipe.loop
    assert loop is not None, "render_agent needs a recipe with an agent loop"
    return TEMPLATES.get_template("agent.py.j2").render(
        l=loop, max_tokens=recipe.max_tokens, steps=agent_steps(loop), advice=ADVICE, lineage=recipe.lineage,
        recipe_literal=recipe_literal,
    )
