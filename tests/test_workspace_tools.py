"""Workspace tools on `ctx`: the task's files in the rollout's scratch directory, tools confined to
them, errors returned as data, every call in the trace, runs in the parent's sandbox with their
file changes written back, and the final state reported for the scorer."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

import harnessopt
from harnessopt import sandbox
from harnessopt.benchmark import Benchmark
from harnessopt.tools import ToolError, default_tools
from harnessopt.workspace_tools import record_run_args, workspace_run
from stubs import StubGateway

FILES = {"README.md": "hello\n", "logs/app.log": "10:00 INFO up\n10:05 ERROR down (code E42)\n",
         "src/calc.py": "def double(x):\n    return x * 3\n"}


def _bench(check: str = "") -> Benchmark:
    item = {"id": "t1", "input": "what is the code?", "target": "E42", "workspace": FILES}
    return Benchmark.from_records("ws", train=[{**item, "id": "e1"}], search=[item], test=[{**item, "id": "t2"}],
                                  scorer="workspace", hidden={"t1": {"check": check}} if check else None)


def _evaluate(tmp_path: Path, source: str, bench: Benchmark | None = None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    harness = tmp_path / "h.py"
    harness.write_text(textwrap.dedent(source))
    result = harnessopt.evaluate(harness, bench or _bench(), split="search", out=tmp_path / "runs",
                                 gateway=StubGateway(), timeout_s=60)
    trace = json.loads(next(Path(result.run_dir).glob("rollouts/*/*/*.json")).read_text())
    return result, trace


def test_tools_return_results_and_errors_as_data_and_every_call_is_traced(tmp_path):
    result, trace = _evaluate(tmp_path, '''
        import os
        async def run(task, ctx):
            ws = ctx.workspace
            out = {
                "cwd_is_workspace": os.getcwd() == ws.root and open("README.md").read() == "hello\\n",
                "list": str(await ws.list()),
                "read": str(await ws.read("logs/app.log", start=2, lines=1)),
                "search": str(await ws.search("ERROR")),
                "missing": (await ws.read("nope.txt")).error,
                "outside": (await ws.read("../../etc/passwd")).error,
                "folder": (await ws.read("logs")).error,
                "unknown": (await ws.call("delete", {"path": "x"})).error,
                "bad_args": (await ws.call("read", {"file": "x"})).error,
                "write": str(await ws.call("write", {"path": "out/n.txt", "content": "one\\ntwo\\n"})),
                "reread": str(await ws.read("out/n.txt")),
                "describe": ws.describe(),
            }
            ctx.log(repr(out))
            return "E42"
    ''')
    assert result.score == 1.0, result.errors_sample
    out = eval(trace["logs"][0]["msg"])  # noqa: S307 - our own harness's repr
    assert out["cwd_is_workspace"]
    assert out["list"].splitlines() == ["README.md  (1 lines)", "logs/app.log  (2 lines)", "src/calc.py  (2 lines)"]
    assert out["read"] == "[logs/app.log: lines 2-2 of 2]\n10:05 ERROR down (code E42)"
    assert out["search"] == "logs/app.log:2: 10:05 ERROR down (code E42)"
    assert "does not exist" in out["missing"] and "outside the workspace" in out["outside"]
    assert "is a folder" in out["folder"] and "unknown tool 'delete'" in out["unknown"]
    assert "bad arguments for read(path, start=1, lines=200)" in out["bad_args"]
    assert out["write"] == "wrote 2 lines (8 bytes) to out/n.txt" and out["reread"] == "one\ntwo\n"
    assert all(name in out["describe"] for name in ("list(", "read(", "search(", "write(", "run_python(", "run_shell("))
    calls = trace["tool_calls"]
    names = [c["name"] for c in calls]
    assert names == ["workspace.list", "workspace.read", "workspace.search", "workspace.read", "workspace.read",
                     "workspace.read", "workspace.delete", "workspace.read", "workspace.write", "workspace.read"]
    outside = calls[4]
    assert outside["args"] == {"path": "../../etc/passwd", "start": 1, "lines": 200}
    assert outside["result"] is None and "outside the workspace" in outside["error"]
    assert calls[2]["result"] == out["search"] and calls[2]["error"] is None
    assert [c["started_at"] for c in calls] == sorted(c["started_at"] for c in calls) and calls[0]["started_at"] > 0
    assert trace["workspace_changes"] == {"changed": {"out/n.txt": "one\ntwo\n"}, "deleted": [], "omitted": []}


def test_runs_happen_in_the_parent_and_their_file_changes_come_back(tmp_path):
    _, trace = _evaluate(tmp_path, '''
        async def run(task, ctx):
            ws = ctx.workspace
            py = await ws.run_python("import os\\nprint(sorted(os.listdir('.')))\\nopen('made.txt', 'w').write('hi')\\n"
                                     "os.remove('README.md')\\nraise SystemExit(3)")
            made = await ws.read("made.txt")
            gone = await ws.read("README.md")
            sh = await ws.run_shell("sed -i 's/x \\\\* 3/x * 2/' src/calc.py && python -c 'import src.calc as c; print(c.double(4))'")
            timeout = await ws.run_python("while True: pass", timeout_s=1)
            empty = await ws.run_shell("  ")
            ctx.log(repr([str(py), py.exit_code, str(made), gone.error, str(sh), str(timeout), empty.error]))
            return "E42"
    ''')
    py, code, made, gone, sh, timeout, empty = eval(trace["logs"][0]["msg"])  # noqa: S307
    assert py.startswith("['README.md', 'logs', 'src']") and "[exit code 3; files changed: made.txt, README.md (deleted)]" in py
    assert code == 3 and made == "hi" and "does not exist" in gone
    if sandbox.landlock_abi() >= 1:
        assert sh.startswith("8\n") and "files changed: src/calc.py" in sh
    else:
        assert "need Landlock" in sh
    assert "[timed out" in timeout and "give the command to run" in empty
    runs = [c for c in trace["tool_calls"] if c["name"] == "workspace.run"]
    assert len(runs) == 3  # the empty command was refused in the worker, without a request
    assert all("files" not in c["args"] and c["args"]["files_sent"] >= 2 for c in runs)  # no snapshot in the trace
    assert runs[0]["args"]["kind"] == "python" and runs[0]["result"]["exit_code"] == 3
    changes = trace["workspace_changes"]
    assert changes["changed"]["made.txt"] == "hi" and changes["deleted"] == ["README.md"]


def test_a_check_scores_the_final_workspace(tmp_path):
    check = "import sys\nsys.path.insert(0, '.')\nfrom src.calc import double\nassert double(4) == 8\n"
    fixer = '''
        async def run(task, ctx):
            text = (await ctx.workspace.read("src/calc.py")).output
            await ctx.workspace.write("src/calc.py", text.replace("x * 3", "x * 2"))
            return "done"
    '''
    result, trace = _evaluate(tmp_path, fixer, _bench(check))
    assert result.score == 1.0 and trace["explanation"] == "check passed on the final workspace"
    result, trace = _evaluate(tmp_path / "idle", 'async def run(task, ctx):\n    return "E42"\n', _bench(check))
    assert result.score == 0.0 and "check failed on the final workspace" in trace["explanation"]


def test_no_workspace_without_one_in_the_task(tmp_path):
    bench = Benchmark.from_records("plain", train=[{"input": "a", "target": "b"}], search=[{"input": "c", "target": "d"}],
                                   test=[{"input": "e", "target": "f"}])
    _, trace = _evaluate(tmp_path, 'async def run(task, ctx):\n    return repr(ctx.workspace)\n', bench)
    assert trace["answer"] == "None" and trace["workspace_changes"] is None


def test_workspace_object_is_read_only(tmp_path):
    _, trace = _evaluate(tmp_path, '''
        async def run(task, ctx):
            async def fake(*a, **k):
                return "forged"
            ctx.workspace.read = fake
            return "x"
    ''')
    assert trace["error"]["type"] == "AttributeError" and "read-only" in trace["error"]["message"]


def test_workspace_run_tool_checks_its_files_and_keeps_the_trace_small():
    with pytest.raises(ToolError, match="must be relative and stay inside the workspace"):
        workspace_run("python", "print(1)", {"../x.txt": "x"})
    with pytest.raises(ToolError, match="unknown run kind"):
        workspace_run("perl", "print 1", {})
    out = workspace_run("python", "import os\nos.remove('a.txt')\nopen('b.txt', 'w').write('B')", {"a.txt": "A", "c.txt": "C"})
    assert out["exit_code"] == 0 and out["changed"] == {"b.txt": "B"} and out["deleted"] == ["a.txt"]
    assert record_run_args({"kind": "python", "code": "x", "files": {"a": "1", "b": "2"}}) == \
        {"kind": "python", "code": "x", "files_sent": 2}
    assert "workspace.run" in default_tools().names()


def test_without_landlock_shell_is_refused_and_python_may_not_start_processes(monkeypatch):
    monkeypatch.setattr(sandbox, "_LANDLOCK_ABI", 0)
    with pytest.raises(ToolError, match="shell commands need Landlock"):
        workspace_run("shell", "ls", {})
    out = workspace_run("python", "import subprocess\nsubprocess.run(['ls'])", {})
    assert out["exit_code"] == 1 and "starting a process (subprocess.Popen) is not allowed" in out["stderr"]


@pytest.mark.skipif(sandbox.landlock_abi() < 1, reason="needs Landlock (Linux 5.13+)")
def test_landlock_confines_programs_a_shell_command_starts(repo, tmp_path):
    secret = repo / "benchmark_specs" / "workspace_tasks.toml"
    outside = tmp_path / "outside.txt"
    out = workspace_run("shell", f"cat {secret}; cat {Path(sandbox.__file__)}; echo x > {outside}; cat a.txt; "
                        f"python -c 'print(open(\"a.txt\").read())'", {"a.txt": "inside"})
    assert out["stderr"].count("Permission denied") >= 3, out["stderr"]
    assert out["stdout"].startswith("insideinside") and not outside.exists()
    assert "workspace_tasks" not in out["stdout"]
    numpy_ok = workspace_run("shell", "python -c 'import json, sqlite3; print(7)'", {})
    assert numpy_ok["stdout"] == "7\n", numpy_ok["stderr"]


def test_a_failing_parent_tool_is_an_error_result_in_the_harness(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "_LANDLOCK_ABI", 0)  # the parent (this process) serves the run
    result, trace = _evaluate(tmp_path, '''
        async def run(task, ctx):
            r = await ctx.workspace.run_shell("ls")
            return "E42" if not r.ok and "need Landlock" in r.error and str(r).startswith("ERROR: ") else "raised?"
    ''')
    assert result.score == 1.0 and trace["status"] == "ok"
    (run,) = trace["tool_calls"]
    assert run["name"] == "workspace.run" and "ToolError: shell commands need Landlock" in run["error"]
