"""Tools a harness can call with `await ctx.tool(name, **args)`. They run in the parent's broker
(never in the harness's worker) and every call is recorded in the trace.

Built in: `calculator` (exact arithmetic over an expression, evaluated from its syntax tree, no
eval) and `python` (a snippet run in a fresh, limited subprocess; returns stdout/stderr/exit code).
Users add their own with `ToolRegistry.register`.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import math
import operator
from dataclasses import dataclass
from typing import Any, Callable


class ToolError(ValueError):
    pass


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable[..., Any]
    description: str
    # What the trace keeps of a call's arguments (default: all of them); e.g. the workspace run
    # tool drops the file snapshot it is sent with every call.
    record_args: Callable[[dict[str, Any]], dict[str, Any]] | None = None


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def register(self, name: str, fn: Callable[..., Any], description: str = "",
                 record_args: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self._tools[name] = Tool(name, fn, description or (inspect.getdoc(fn) or "").split("\n")[0], record_args)

    def recorded_args(self, name: str, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments of a call as the trace records them."""
        tool = self._tools.get(name)
        if tool is None or tool.record_args is None:
            return args
        try:
            return tool.record_args(args)
        except Exception:  # noqa: BLE001 - malformed arguments are recorded as given
            return args

    def names(self) -> list[str]:
        return sorted(self._tools)

    def describe(self) -> dict[str, str]:
        return {t.name: t.description for t in self._tools.values()}

    async def call(self, name: str, args: dict[str, Any]) -> Any:
        tool = self._tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; registered tools: {', '.join(self.names()) or 'none'}")
        try:
            inspect.signature(tool.fn).bind(**args)
        except TypeError as exc:
            raise ToolError(f"tool {name!r}: {exc}") from None
        if inspect.iscoroutinefunction(tool.fn):
            return await tool.fn(**args)
        return await asyncio.to_thread(tool.fn, **args)


# --------------------------------------------------------------------------- calculator

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_FUNCS: dict[str, Callable[..., Any]] = {
    "abs": abs, "round": round, "min": min, "max": max, "sqrt": math.sqrt,
    "floor": math.floor, "ceil": math.ceil, "log": math.log, "exp": math.exp,
}
_CONSTS = {"pi": math.pi, "e": math.e}


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression (+ - * / // % **, parentheses, sqrt, round, min, max...)."""
    text = str(expression).replace("^", "**").replace(",", "").strip()
    if len(text) > 500:
        raise ToolError("calculator: expression longer than 500 characters")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError:
        raise ToolError(f"calculator: cannot parse {text!r}; use numbers and + - * / ( )") from None
    value = _eval(tree.body)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


def _eval(node: ast.AST) -> Any:
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > 1000:
            raise ToolError("calculator: exponent too large")
        try:
            return _BINOPS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ToolError("calculator: division by zero") from None
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _FUNCS and not node.keywords:
        return _FUNCS[node.func.id](*(_eval(a) for a in node.args))
    if isinstance(node, ast.Name) and node.id in _CONSTS:
        return _CONSTS[node.id]
    raise ToolError(f"calculator: unsupported syntax {ast.dump(node)[:60]}")


# --------------------------------------------------------------------------- python


def python(code: str, timeout_s: float = 10.0) -> dict[str, Any]:
    """Run a Python snippet in a fresh limited subprocess; returns stdout, stderr, exit_code."""
    from harnessopt.sandbox import landlock_abi, run_python  # deferred: only the parent needs it

    # Where the kernel allows it, programs the snippet starts are confined too (Landlock).
    result = run_python(str(code), timeout_s=min(float(timeout_s), 30.0), confine_fs=landlock_abi() >= 1)
    return {
        "stdout": result.stdout,
        "stderr": result.stderr,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
    }


def default_tools() -> ToolRegistry:
    from harnessopt.workspace_tools import WORKSPACE_RUN, record_run_args, workspace_run

    registry = ToolRegistry()
    registry.register("calculator", calculator)
    registry.register("python", python)
    registry.register(WORKSPACE_RUN, workspace_run, record_args=record_run_args)
    return registry
