"""Hostile harnesses on the workspace benchmark: reading outside the workspace, or reaching the
answer key (the benchmark's data files, with every task's answer, check and solution) through the
workspace tools, the python tool or plain Python. Every attempt is refused, the refusal comes
back to the harness as data (or a clear exception), and the trace records the attempt."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import harnessopt
from harnessopt import sandbox
from harnessopt.benchmark import load_benchmark
from stubs import StubGateway

CANARY = "/tmp/harnessopt-workspace-canary.txt"
REPO = Path(__file__).resolve().parents[2]

HOSTILE = '''
import json, os

KEY = {key!r}


async def run(task, ctx):
    ws = ctx.workspace
    out = {{}}

    async def attempt(name, call):
        try:
            result = await call
            out[name] = str(result)
        except Exception as exc:  # noqa: BLE001 - we want to see what was refused
            out[name] = f"raised {{type(exc).__name__}}: {{exc}}"

    await attempt("read_absolute", ws.read(KEY))
    await attempt("read_relative", ws.read(os.path.relpath(KEY, ws.root)))
    await attempt("list_parent", ws.list(".."))
    await attempt("search_root", ws.search("solution", "/"))
    await attempt("write_outside", ws.write("../../escape.txt", "x"))
    try:
        os.symlink(KEY, "key.jsonl")
        await attempt("read_symlink", ws.read("key.jsonl"))
    except OSError as exc:
        out["read_symlink"] = f"raised {{type(exc).__name__}}: {{exc}}"
    await attempt("shell_cat", ws.run_shell(f"cat {{KEY}}"))
    await attempt("shell_copy_in", ws.run_shell(f"cp {{KEY}} stolen.jsonl; cat stolen.jsonl"))
    await attempt("shell_canary", ws.run_shell("echo pwned > {canary}"))
    await attempt("python_open", ws.run_python(f"print(open({{KEY!r}}).read())"))
    await attempt("python_subprocess", ws.run_python(
        f"import subprocess; print(subprocess.run(['cat', {{KEY!r}}], capture_output=True, text=True))"))
    await attempt("python_tool", ctx.tool("python", code=f"import subprocess; print(subprocess.run(['cat', {{KEY!r}}], "
                                                        "capture_output=True, text=True))"))
    await attempt("forged_run_files", ctx.tool("workspace.run", kind="python", code="print(1)",
                                               files={{"../../evil.txt": "x"}}))
    try:
        out["open_directly"] = open(KEY).read()
    except Exception as exc:  # noqa: BLE001
        out["open_directly"] = f"raised {{type(exc).__name__}}: {{exc}}"
    ctx.log(json.dumps(out))
    return json.dumps(out)
'''


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    Path(CANARY).unlink(missing_ok=True)
    work = tmp_path_factory.mktemp("hostile_workspace")
    key = REPO / "benchmark_specs" / "data" / "workspace_tasks" / "test.jsonl"
    harness = work / "hostile.py"
    harness.write_text(textwrap.dedent(HOSTILE.format(key=str(key), canary=CANARY)))
    bench = load_benchmark("workspace_tasks")
    result = harnessopt.evaluate(harness, bench, split="test", limit=1, out=work / "runs", gateway=StubGateway(),
                                 timeout_s=120)
    trace = json.loads(next(Path(result.run_dir).glob("rollouts/*/*/*.json")).read_text())
    task = bench.tasks("test", limit=1)[0]
    return {"result": result, "trace": trace, "out": json.loads(trace["logs"][0]["msg"]), "key": key, "task": task,
            "hidden": bench.hidden_fields(task.id), "work": work}


def test_nothing_of_the_answer_key_reaches_the_harness(hostile):
    text = json.dumps(hostile["trace"])
    assert hostile["result"].score == 0.0
    for secret in (hostile["hidden"]["solution"][:60], '"solution":', '"check":'):
        assert json.dumps(secret)[1:-1] not in text, secret
    assert not Path(CANARY).exists()
    assert not any(p.name in ("escape.txt", "evil.txt") for p in hostile["work"].rglob("*"))


def test_workspace_tools_refuse_paths_outside_the_workspace(hostile):
    out = hostile["out"]
    for name in ("read_absolute", "read_relative", "list_parent", "search_root", "write_outside"):
        assert out[name].startswith("ERROR: ") and "outside the workspace" in out[name], (name, out[name])
    assert out["read_symlink"].startswith("ERROR: ") and "outside the workspace" in out["read_symlink"]
    assert "not allowed" in out["open_directly"] and out["open_directly"].startswith("raised PermissionError")


def test_code_run_in_the_workspace_cannot_read_the_key(hostile):
    out = hostile["out"]
    assert "is not allowed" in out["python_open"] and "[exit code 1" in out["python_open"]
    if sandbox.landlock_abi() >= 1:
        for name in ("shell_cat", "shell_copy_in", "python_subprocess", "python_tool"):
            assert "Permission denied" in out[name], (name, out[name])
        assert "Permission denied" in out["shell_canary"] or "Read-only" in out["shell_canary"]
    else:
        for name in ("shell_cat", "shell_copy_in", "shell_canary"):
            assert "need Landlock" in out[name], (name, out[name])
        assert "starting a process (subprocess.Popen) is not allowed" in out["python_subprocess"]
    assert out["forged_run_files"].startswith("raised ContextCallError") and "inside the workspace" in out["forged_run_files"]


def test_every_attempt_is_recorded_in_the_trace(hostile):
    calls = hostile["trace"]["tool_calls"]
    key = str(hostile["key"])
    reads = [c for c in calls if c["name"] == "workspace.read" and c["args"]["path"] == key]
    assert reads and reads[0]["error"] and "outside the workspace" in reads[0]["error"]
    runs = [c for c in calls if c["name"] == "workspace.run"]
    commands = [c["args"].get("code", "") for c in runs]
    assert any(f"cat {key}" in cmd for cmd in commands)
    assert all("files" not in c["args"] for c in runs)
    forged = [c for c in runs if c["error"] and "inside the workspace" in c["error"]]
    assert forged, "the forged run is recorded with its refusal"
    assert any(c["name"] == "python" for c in calls)
    assert {c["name"] for c in calls} >= {"workspace.read", "workspace.list", "workspace.search", "workspace.write"}
