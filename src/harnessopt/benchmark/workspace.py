"""Task workspaces (agentic benchmarks): a task's file tree as data, checked at load, and the
final state a rollout left, rebuilt in the parent for the scorer.

A workspace is a `{relative path: text}` mapping. The worker writes it into the rollout's scratch
directory; at the end it reports what changed (`WorkspaceChanges`), and `final_state` applies
those changes to the task's own files, so a check script can run on the result in the parent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from harnessopt.records import WorkspaceChanges

MAX_FILES = 500
MAX_BYTES = 512 * 1024  # all files of one task together, UTF-8 (a run sends them all to the parent)


def check_path(path: str) -> str:
    """A workspace path in its normal form, or ValueError saying what is wrong with it."""
    if not isinstance(path, str) or not path.strip():
        raise ValueError(f"file path {path!r} is empty or not text")
    if "\\" in path or "\x00" in path:
        raise ValueError(f"file path {path!r} holds a backslash or NUL; use '/' between folders")
    rel = PurePosixPath(path)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"file path {path!r} must be relative and stay inside the workspace (no '..')")
    return rel.as_posix()


def workspace_files(cell: Any) -> dict[str, str]:
    """A data cell (a list of {path, content} records, or a {path: content} object) as a
    checked `{path: text}` mapping; ValueError names the first problem."""
    if isinstance(cell, Mapping):
        items = list(cell.items())
    elif isinstance(cell, list):
        items = []
        for i, rec in enumerate(cell):
            if not isinstance(rec, Mapping) or "path" not in rec or "content" not in rec:
                raise ValueError(f"item {i} is not a {{path, content}} record")
            items.append((rec["path"], rec["content"]))
    else:
        raise ValueError(f"holds a {type(cell).__name__}; give a list of {{path, content}} records or a "
                         "{path: content} object")
    if len(items) > MAX_FILES:
        raise ValueError(f"{len(items)} files; a workspace holds at most {MAX_FILES}")
    files: dict[str, str] = {}
    for path, content in items:
        norm = check_path(path)
        if not isinstance(content, str):
            raise ValueError(f"file {norm!r} holds a {type(content).__name__}, not text")
        if norm in files:
            raise ValueError(f"file {norm!r} appears twice")
        files[norm] = content
    dirs = {str(p) for f in files for p in PurePosixPath(f).parents}
    clash = sorted(dirs & set(files))
    if clash:
        raise ValueError(f"{clash[0]!r} is both a file and a folder")
    size = sum(len(c.encode("utf-8")) for c in files.values())
    if size > MAX_BYTES:
        raise ValueError(f"{size:,} bytes of files; a workspace holds at most {MAX_BYTES:,}")
    return dict(sorted(files.items()))


def final_state(files: Mapping[str, str] | None, changes: WorkspaceChanges | None) -> dict[str, str]:
    """The workspace as a rollout left it: the task's files with its changes applied."""
    out = dict(files or {})
    if changes is None:
        return out
    for path in changes.deleted:
        out.pop(path, None)
    out.update(changes.changed)
    return out
