import asyncio

import pytest

from harnessopt.tools import ToolError, calculator, default_tools


@pytest.mark.parametrize("expr, expected", [
    ("2+3*4", "14"), ("(1+2)**2", "9"), ("10/4", "2.5"), ("1,234 + 1", "1235"), ("sqrt(16)", "4"),
    ("-3 + 5", "2"), ("2^3", "8"),
])
def test_calculator_values(expr, expected):
    assert calculator(expr) == expected


@pytest.mark.parametrize("expr", ["__import__('os')", "1/0", "9**99999", "open('x')", "a.b"])
def test_calculator_refuses(expr):
    with pytest.raises(ToolError):
        calculator(expr)


def test_registry_rejects_unknown_tool_and_bad_args():
    tools = default_tools()
    with pytest.raises(ToolError, match="registered tools: calculator, python, workspace.run"):
        asyncio.run(tools.call("shell", {}))
    with pytest.raises(ToolError, match="calculator"):
        asyncio.run(tools.call("calculator", {"expr": "1"}))
    assert asyncio.run(tools.call("calculator", {"expression": "6*7"})) == "42"
