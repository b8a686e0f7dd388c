"""Load a harness file and validate it before anything runs.

A harness is one Python file with `async def run(task, ctx)` at top level. Validation is static
(no harness code executes in this process): syntax, the entry point's shape, and that it
imports nothing of harnessopt, since the context it is handed is its whole interface.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

from harnessopt.errors import UserError
from harnessopt.records import Record


class HarnessError(UserError, ValueError):
    """A harness file that cannot be run; the message names file, line and the fix."""


class HarnessFile(Record):
    path: str
    source: str
    hash: str
    doc: str = ""

    @property
    def short_hash(self) -> str:
        return self.hash[:12]


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def load_harness(path: str | Path) -> HarnessFile:
    """Read and validate a harness file; raises HarnessError with a one-line message."""
    p = Path(path)
    if not p.is_file():
        hint = " (it is a directory)" if p.is_dir() else ""
        raise HarnessError(f"{p}: harness file not found{hint}; pass the path of a .py file with `async def run(task, ctx)`")
    try:
        source = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(f"{p}: not UTF-8 text ({exc.reason}); save the harness as UTF-8") from None
    return harness_from_source(source, str(p))


def harness_from_source(source: str, path: str = "<harness>") -> HarnessFile:
    tree = validate_source(source, path)
    return HarnessFile(path=path, source=source, hash=source_hash(source), doc=ast.get_docstring(tree) or "")


def validate_source(source: str, path: str = "<harness>") -> ast.Module:
    """Static checks; returns the parsed module or raises HarnessError."""
    try:
        tree = ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise HarnessError(
            f"{path}:{exc.lineno}: syntax error: {exc.msg}; fix the Python syntax on that line"
        ) from None
    _check_imports(tree, path)
    _check_entry_point(tree, path)
    return tree


def _check_imports(tree: ast.Module, path: str) -> None:
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name == "harnessopt" or name.startswith("harnessopt."):
                raise HarnessError(
                    f"{path}:{node.lineno}: imports {name}; a harness may use only the `ctx` it is "
                    "handed (ctx.chat, ctx.complete, ctx.render, ctx.tool, ctx.examples, ctx.log), remove the import"
                )


def _check_entry_point(tree: ast.Module, path: str) -> None:
    run = None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "run":
            run = node
    if run is None:
        raise HarnessError(f"{path}:1: no top-level `run` function; define `async def run(task, ctx):` returning the answer as a str")
    if not isinstance(run, ast.AsyncFunctionDef):
        raise HarnessError(f"{path}:{run.lineno}: `run` must be async; write `async def run(task, ctx):`")
    args = run.args
    positional = args.posonlyargs + args.args
    required = len(positional) - len(args.defaults)
    if len(positional) < 2 and args.vararg is None:
        raise HarnessError(
            f"{path}:{run.lineno}: `run` takes {len(positional)} argument(s); it must accept (task, ctx)"
        )
    if required > 2 or any(d is None for d in args.kw_defaults):
        raise HarnessError(
            f"{path}:{run.lineno}: `run` requires more than (task, ctx); give the extra parameters defaults"
        )
