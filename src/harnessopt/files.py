"""Durable file writes for the run directory: whole files by atomic rename, rows by one append.

Every durable write of a run goes through `atomic_write` (whole files: written to a temporary
name, renamed into place, atomic on POSIX) or `append_line` (one write() per row of an
append-only file), so a kill at any instant leaves either the old or the new version of a file,
and at worst a last row without its newline, which `drop_partial_last_line` cuts.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def append_line(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def drop_partial_last_line(path: Path) -> None:
    """A kill during an append can leave a line without its newline: cut it so appends stay clean."""
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        with open(path, "r+b") as f:
            f.truncate(data.rfind(b"\n") + 1)


def split_file(path: Path, keep_lines: int, tail_to: Path, *, header_lines: int = 0) -> None:
    """Keep the first `keep_lines` lines of `path`; the rest goes to `tail_to` (after a copy of
    the first `header_lines`, so a moved ledger still has its header)."""
    if not path.is_file():
        return
    lines = path.read_bytes().splitlines(keepends=True)
    if len(lines) > keep_lines:
        atomic_write(tail_to, b"".join(lines[:header_lines] + lines[keep_lines:]))
        atomic_write(path, b"".join(lines[:keep_lines]))
