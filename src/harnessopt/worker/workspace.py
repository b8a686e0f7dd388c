"""`ctx.workspace`: the task's file tree in the rollout's scratch directory, and the tools on it.

The worker writes the task's files into `<scratch>/workspace` (the harness's working directory)
before the harness runs. `list`, `read`, `search` and `write` run here, confined to that folder
(the guard also confines the whole process to scratch); `run_python` and `run_shell` need a
process, which a worker may not start, so they send the folder's files to the parent, which runs
the command in a sandboxed copy and returns the output and the changed files (written back here).

Every call returns a `ToolResult` (errors are data, never exceptions) and is recorded in the
trace: the parent records runs; the others are reported with their arguments, clipped output
and error. At the end, `changes()` says what the rollout left changed, for the scorer.
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from harnessopt.records import WorkspaceChanges
from harnessopt.worker.readonly import _ReadOnly

FOLDER = "workspace"
MAX_OUTPUT_CHARS = 20_000  # one tool result's output; the harness clips further for its prompts
RECORD_CHARS = 2_000  # what the trace keeps of a result
MAX_WRITE_CHARS = 1_000_000
MAX_SNAPSHOT_BYTES = 900_000  # text sent to the parent with each run (a request carries at most 1,000,000 characters)
MAX_LIST_ENTRIES = 500
MAX_SEARCH_HITS = 100
MAX_READ_LINES = 400

Requester = Callable[[str, dict[str, Any]], Awaitable[Any]]
Notifier = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class ToolResult:
    """What a workspace tool returned: `output` on success, `error` (a sentence with the fix)
    when it failed. `str(result)` is the observation to show a model."""

    tool: str
    output: str = ""
    error: str | None = None
    args: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None  # runs only

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        return self.output if self.error is None else f"ERROR: {self.error}"


class WorkspaceError(Exception):
    """A tool call that cannot be done; becomes ToolResult.error."""


# name -> (argument names with defaults, one-line description): what `describe()` shows a model.
TOOLS: dict[str, tuple[str, str]] = {
    "list": ("path='.'", "list the files under a folder (recursively), with their sizes in lines"),
    "read": ("path, start=1, lines=200", "read a text file (a range of lines, numbered from 1)"),
    "search": ("pattern, path='.', glob='*'", "find lines containing `pattern` (plain text, case-sensitive) "
               "in the files under `path`; prints file:line: text"),
    "write": ("path, content", "create or overwrite a text file with `content`"),
    "run_python": ("code, timeout_s=10", "run Python code with the workspace as its working directory; "
                   "prints stdout, stderr and the exit code"),
    "run_shell": ("command, timeout_s=10", "run a shell command in the workspace (e.g. `python -m unittest`)"),
}


class Workspace(_ReadOnly):
    """The tools a harness uses on its task's files (`ctx.workspace`, read-only). Paths are
    relative to the workspace folder, `root`, which is also the harness's working directory."""

    __slots__ = ("root", "_original", "_request", "_notify")

    def __init__(self, root: str, original: dict[str, str], request: Requester, notify: Notifier):
        self._init(root=os.path.realpath(root), _original=dict(original), _request=request, _notify=notify)

    # ------------------------------------------------------------------ the tools

    async def list(self, path: str = ".") -> ToolResult:
        return self._local("list", {"path": path}, lambda: self._list(path))

    async def read(self, path: str, start: int = 1, lines: int = 200) -> ToolResult:
        return self._local("read", {"path": path, "start": start, "lines": lines}, lambda: self._read(path, start, lines))

    async def search(self, pattern: str, path: str = ".", glob: str = "*") -> ToolResult:
        return self._local("search", {"pattern": pattern, "path": path, "glob": glob},
                           lambda: self._search(pattern, path, glob))

    async def write(self, path: str, content: str) -> ToolResult:
        return self._local("write", {"path": path, "content": _clip(str(content), RECORD_CHARS)},
                           lambda: self._write(path, content))

    async def run_python(self, code: str, timeout_s: float = 10) -> ToolResult:
        return await self._run("python", code, timeout_s)

    async def run_shell(self, command: str, timeout_s: float = 10) -> ToolResult:
        return await self._run("shell", command, timeout_s)

    async def call(self, name: str, args: dict[str, Any] | None = None) -> ToolResult:
        """Call a tool by name with a dict of arguments (what an agent loop parses from a model's
        action). An unknown tool or bad arguments is an error result, not an exception."""
        name = str(name).strip()
        if not isinstance(args, dict):
            return self._failed(name, {"args": _clip(repr(args), 200)}, "arguments must be an object of named values")
        if name not in TOOLS:
            return self._failed(name, args, f"unknown tool {name!r}; the tools are {', '.join(TOOLS)}")
        try:
            return await getattr(self, name)(**args)
        except TypeError as exc:
            return self._failed(name, args, f"bad arguments for {name}({TOOLS[name][0]}): {exc}")

    @staticmethod
    def describe() -> str:
        """One line per tool, `name(arguments): what it does`, for a prompt."""
        return "\n".join(f"{name}({sig}): {doc}" for name, (sig, doc) in TOOLS.items())

    # ------------------------------------------------------------------ recording

    def _record(self, name: str, args: dict, output: str, error: str | None, started: float, wall: float) -> None:
        self._notify("tool_record", {"name": f"workspace.{name}", "args": _jsonable(args),
                                     "result": _clip(output, RECORD_CHARS) if error is None else None,
                                     "error": error, "latency_s": time.perf_counter() - started, "started_at": wall})

    def _failed(self, name: str, args: dict, error: str) -> ToolResult:
        self._record(name, args, "", error, time.perf_counter(), time.time())
        return ToolResult(tool=name, error=error, args=args)

    def _local(self, name: str, args: dict, work: Callable[[], str]) -> ToolResult:
        started, wall = time.perf_counter(), time.time()
        try:
            output, error = _clip(work(), MAX_OUTPUT_CHARS), None
        except WorkspaceError as exc:
            output, error = "", str(exc)
        except (OSError, ValueError, TypeError, re.error) as exc:  # PermissionError from the guard too
            output, error = "", f"{type(exc).__name__}: {exc}"
        self._record(name, args, output, error, started, wall)
        return ToolResult(tool=name, output=output, error=error, args=args)

    # ------------------------------------------------------------------ paths

    def _resolve(self, path: Any, *, must_exist: bool = True) -> str:
        if not isinstance(path, str) or not path.strip():
            raise WorkspaceError("give a path relative to the workspace, e.g. 'logs/app.log'")
        full = os.path.realpath(os.path.join(self.root, path.strip()))
        if full != self.root and not full.startswith(self.root + os.sep):
            raise WorkspaceError(f"{path!r} is outside the workspace; use paths relative to the workspace root")
        if must_exist and not os.path.exists(full):
            raise WorkspaceError(f"{path!r} does not exist; list the workspace to see its files")
        return full

    def _rel(self, full: str) -> str:
        return os.path.relpath(full, self.root).replace(os.sep, "/")

    def _files(self, full: str) -> list[str]:
        if os.path.isfile(full):
            return [full]
        out = []
        for dirpath, dirnames, filenames in os.walk(full):
            dirnames[:] = sorted(d for d in dirnames if not os.path.islink(os.path.join(dirpath, d)))
            out += [os.path.join(dirpath, f) for f in sorted(filenames)]
        return out

    # ------------------------------------------------------------------ implementations

    def _list(self, path: str) -> str:
        full = self._resolve(path)
        files = self._files(full)
        if not files:
            return f"{self._rel(full)}/ is empty"
        lines = []
        for f in files[:MAX_LIST_ENTRIES]:
            lines.append(f"{self._rel(f)}  ({_size(f)})")
        if len(files) > MAX_LIST_ENTRIES:
            lines.append(f"... and {len(files) - MAX_LIST_ENTRIES} more files")
        return "\n".join(lines)

    def _read(self, path: str, start: int, lines: int) -> str:
        full = self._resolve(path)
        if os.path.isdir(full):
            raise WorkspaceError(f"{path!r} is a folder; list it to see its files")
        text = _text(full)
        all_lines = text.splitlines()
        start, lines = max(1, int(start)), max(1, min(int(lines), MAX_READ_LINES))
        chunk = all_lines[start - 1:start - 1 + lines]
        if start == 1 and len(chunk) == len(all_lines):
            return text
        end = start + len(chunk) - 1
        return f"[{self._rel(full)}: lines {start}-{end} of {len(all_lines)}]\n" + "\n".join(chunk)

    def _search(self, pattern: str, path: str, glob: str) -> str:
        if not isinstance(pattern, str) or not pattern:
            raise WorkspaceError("give a non-empty text pattern to search for")
        full = self._resolve(path)
        hits, total = [], 0
        for f in self._files(full):
            if not fnmatch.fnmatch(os.path.basename(f), str(glob)):
                continue
            try:
                text = _text(f)
            except WorkspaceError:
                continue
            for n, line in enumerate(text.splitlines(), 1):
                if pattern in line:
                    total += 1
                    if len(hits) < MAX_SEARCH_HITS:
                        hits.append(f"{self._rel(f)}:{n}: {_clip(line.strip(), 300)}")
        if not hits:
            return f"no line contains {pattern!r}"
        more = f"\n... and {total - len(hits)} more matches" if total > len(hits) else ""
        return "\n".join(hits) + more

    def _write(self, path: str, content: Any) -> str:
        if not isinstance(content, str):
            raise WorkspaceError(f"content must be text, not {type(content).__name__}")
        if len(content) > MAX_WRITE_CHARS:
            raise WorkspaceError(f"content of {len(content):,} characters; write at most {MAX_WRITE_CHARS:,}")
        full = self._resolve(path, must_exist=False)
        if os.path.isdir(full):
            raise WorkspaceError(f"{path!r} is a folder; give a file path")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(content)
        return f"wrote {len(content.splitlines())} lines ({len(content.encode('utf-8'))} bytes) to {self._rel(full)}"

    async def _run(self, kind: str, code: Any, timeout_s: Any) -> ToolResult:
        name = f"run_{kind}"
        args = {"code" if kind == "python" else "command": code, "timeout_s": timeout_s}
        if not isinstance(code, str) or not code.strip():
            return self._failed(name, args, f"give the {'code' if kind == 'python' else 'command'} to run as text")
        try:
            timeout = float(timeout_s)
            files, _ = self.snapshot(MAX_SNAPSHOT_BYTES)
        except (TypeError, ValueError, WorkspaceError) as exc:
            return self._failed(name, args, str(exc))
        # The parent runs it and records the call in the trace.
        try:
            result = await self._request("tool", {"name": "workspace.run", "args": {
                "kind": kind, "code": code, "files": files, "timeout_s": timeout}})
        except Exception as exc:  # noqa: BLE001 - ContextCallError: the parent refused or the tool failed
            return ToolResult(tool=name, error=str(exc), args=args)
        try:
            self._apply(result.get("changed") or {}, result.get("deleted") or [])
        except (OSError, WorkspaceError) as exc:
            return ToolResult(tool=name, error=f"the run's file changes could not be written back: {exc}", args=args)
        return ToolResult(tool=name, output=_clip(_run_output(result), MAX_OUTPUT_CHARS), args=args,
                          exit_code=result.get("exit_code"))

    def _apply(self, changed: dict[str, str], deleted: list[str]) -> None:
        for path, text in changed.items():
            self._write(path, text)
        for path in deleted:
            full = self._resolve(path, must_exist=False)
            if os.path.isfile(full) and not os.path.islink(full):
                os.remove(full)

    # ------------------------------------------------------------------ state

    def snapshot(self, cap: int) -> tuple[dict[str, str], list[str]]:
        """The workspace's text files ({path: text}) and the paths left out (binary, links,
        over `cap` bytes in total)."""
        files, omitted, total = {}, [], 0
        if os.path.islink(self.root) or not os.path.isdir(self.root):
            return files, omitted
        for full in self._files(self.root):
            rel = self._rel(full)
            if os.path.islink(full) or not os.path.isfile(full):
                omitted.append(rel)
                continue
            try:
                text = _text(full)
            except (WorkspaceError, OSError):
                omitted.append(rel)
                continue
            total += len(text.encode("utf-8"))
            if total > cap:
                raise WorkspaceError(f"the workspace holds over {cap:,} bytes of text; a run copies all of it: "
                                     "delete large files first")
            files[rel] = text
        return files, omitted

    def changes(self, cap: int = 1_000_000) -> WorkspaceChanges:
        """What the rollout changed: files written or edited, deleted, and those left out."""
        try:
            now, omitted = self.snapshot(10 * cap)
        except (WorkspaceError, OSError) as exc:
            return WorkspaceChanges(omitted=[f"(workspace unreadable: {exc})"])
        changed, total = {}, 0
        for path, text in now.items():
            if self._original.get(path) != text:
                total += len(text)
                if total > cap:
                    omitted.append(path)
                else:
                    changed[path] = text
        deleted = sorted(p for p in self._original if p not in now and p not in omitted)
        return WorkspaceChanges(changed=changed, deleted=deleted, omitted=omitted)


def materialise(root: str, files: dict[str, str]) -> None:
    """Write a task's files under `root` (paths were checked when the benchmark loaded; checked
    again here, since the worker trusts nothing it is sent)."""
    os.makedirs(root, exist_ok=True)
    real = os.path.realpath(root)
    for path, text in files.items():
        full = os.path.realpath(os.path.join(real, str(path)))
        if not full.startswith(real + os.sep):
            raise ValueError(f"workspace file {path!r} is outside the workspace")
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(str(text))


def _run_output(result: dict[str, Any]) -> str:
    parts = []
    if result.get("stdout"):
        parts.append(str(result["stdout"]).rstrip("\n"))
    if result.get("stderr"):
        parts.append("[stderr]\n" + str(result["stderr"]).rstrip("\n"))
    status = "timed out" if result.get("timed_out") else f"exit code {result.get('exit_code')}"
    changed = sorted(result.get("changed") or {}) + [f"{p} (deleted)" for p in result.get("deleted") or []]
    if changed:
        status += "; files changed: " + ", ".join(changed[:20])
    parts.append(f"[{status}]")
    return "\n".join(parts)


def _text(full: str) -> str:
    try:
        with open(full, "rb") as f:
            data = f.read(MAX_WRITE_CHARS * 4 + 1)
    except IsADirectoryError:
        raise WorkspaceError(f"{os.path.basename(full)!r} is a folder") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise WorkspaceError(f"{os.path.basename(full)!r} is not a text file") from None


def _size(full: str) -> str:
    try:
        return f"{len(_text(full).splitlines())} lines"
    except (WorkspaceError, OSError):
        return f"{os.path.getsize(full)} bytes, binary"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[:n] + f"\n[... {len(text) - n} more characters cut]"


def _jsonable(args: dict) -> dict:
    return {str(k): (v if isinstance(v, (str, int, float, bool, type(None))) else _clip(repr(v), 200))
            for k, v in args.items()}
