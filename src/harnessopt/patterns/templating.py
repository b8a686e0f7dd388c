"""The Jinja environment that renders generated harness files (shared by both renderers).

The templates use `[[ ]]` / `[% %]` delimiters, so the jinja prompt inside a harness
(`{{ task.input }}`, `{% for ex in shots %}`) passes through verbatim and is filled per task by
`ctx.render` at run time.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

TEMPLATES_DIR = Path(__file__).parent / "templates"

TEMPLATES = Environment(
    loader=FileSystemLoader(str(TEMPLATES_DIR)), undefined=StrictUndefined, keep_trailing_newline=True,
    trim_blocks=True, lstrip_blocks=True, autoescape=False,
    block_start_string="[%", block_end_string="%]", variable_start_string="[[", variable_end_string="]]",
    comment_start_string="[#", comment_end_string="#]",
)


def py_string(text: str) -> str:
    """A readable Python literal for a multi-line string."""
    if '"""' not in text and "\\" not in text and not text.endswith('"'):
        return f'"""{text}"""'
    return repr(text)
