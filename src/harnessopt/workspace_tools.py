"""Running code in a task's workspace, on the parent's side of the process boundary.

A harness's worker may not start processes, so `ctx.workspace.run_python` / `run_shell` send
the workspace's current files with the command; the parent runs it in a fresh sandbox
(`sandbox.run_python`) holding a copy of them, and returns the output and the files the run
changed, which the worker writes back. Check scripts of file-changing tasks run the same way on
a rollout's final workspace (`run_in_workspace`).

Confinement: where the kernel has Landlock, the sandboxed process and every program it starts
can read only the system, the Python installation and the copy (so `cat` of a benchmark file
outside it fails). Without Landlock, Python runs may not start processes (the guard alone
confines Python code) and shell commands are refused.
"""

from __future__ import annotations

from typing import Any

from harnessopt.benchmark.workspace import workspace_files
from harnessopt.sandbox import ExecResult, landlock_abi, run_python
from harnessopt.tools import ToolError

WORKSPACE_RUN = "workspace.run"
FOLDER = "workspace"  # the copy's folder inside the sandbox's working directory
MAX_TIMEOUT_S = 30.0
OUTPUT_CAP = 16 * 1024  # stdout / stderr bytes kept, each
FILES_BACK_CAP = 1024 * 1024

_PYTHON = '''import linecache, os, sys
os.makedirs({folder!r}, exist_ok=True)
os.chdir({folder!r})
sys.path[0] = os.getcwd()
sys.argv = ["snippet.py"]
_src = open("../snippet.py", encoding="utf-8").read()
linecache.cache["snippet.py"] = (len(_src), None, _src.splitlines(True), "snippet.py")
exec(compile(_src, "snippet.py", "exec"), {{"__name__": "__main__", "__builtins__": __builtins__}})
'''

# `python` in a command is this interpreter (the only one the confinement lets read its library).
_SHELL = '''import os, subprocess, sys
os.makedirs({folder!r}, exist_ok=True)
os.chdir({folder!r})
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
code = subprocess.run({command!r}, shell=True).returncode
sys.exit(code if code >= 0 else 128 - code)
'''


def shell_available() -> bool:
    """Shell commands need Landlock: the guard does not follow a program the shell starts."""
    return landlock_abi() >= 1


def run_in_workspace(files: dict[str, str], kind: str, code: str, timeout_s: float = 10.0,
                     memory_mb: int = 1024) -> ExecResult:
    """Run Python `code` (kind "python") or a shell command (kind "shell") with its working
    directory in a sandboxed copy of `files`; the result's `files` hold the copy afterwards."""
    confined = landlock_abi() >= 1
    if kind == "shell":
        if not confined:
            raise ToolError("shell commands need Landlock filesystem confinement (Linux 5.13+), which this "
                            "system lacks; use run_python instead")
        main, extra = _SHELL.format(folder=FOLDER, command=str(code)), {}
    elif kind == "python":
        main, extra = _PYTHON.format(folder=FOLDER), {"snippet.py": str(code)}
    else:
        raise ToolError(f"unknown run kind {kind!r}; use 'python' or 'shell'")
    copy = {f"{FOLDER}/{path}": text for path, text in files.items()}
    return run_python(main, timeout_s=min(max(float(timeout_s), 0.5), MAX_TIMEOUT_S), memory_mb=memory_mb,
                      files={**copy, **extra}, output_cap=OUTPUT_CAP, confine_fs=confined,
                      allow_processes=confined, files_back=FOLDER, files_back_cap=FILES_BACK_CAP)


def workspace_run(kind: str, code: str, files: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """Run Python code or a shell command in a copy of a task workspace; returns its output and
    the files it changed."""
    try:
        before = workspace_files(files)
    except ValueError as exc:
        raise ToolError(f"workspace files: {exc}") from None
    result = run_in_workspace(before, kind, code, timeout_s)
    after = result.files or {}
    if result.exit_code == 126 and "filesystem confinement failed" in result.stderr:
        raise ToolError(result.stderr.strip())
    return {
        "exit_code": result.exit_code,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "timed_out": result.timed_out,
        "changed": {p: t for p, t in after.items() if before.get(p) != t},
        "deleted": sorted(p for p in before if p not in after and p not in result.files_omitted),
        "omitted": result.files_omitted,
    }


def record_run_args(args: dict[str, Any]) -> dict[str, Any]:
    """The trace keeps the command, not the file snapshot sent with every run."""
    files = args.get("files")
    kept = {k: v for k, v in args.items() if k != "files"}
    kept["files_sent"] = len(files) if isinstance(files, dict) else type(files).__name__
    return kept
