"""Assemble an embedded model's GGUF from its part packages, once, verified, atomically.

The part packages are third-party data: their bytes are untrusted until every part has the size
and sha256 the registry records and the whole file has the recorded size and sha256. Parts are
located with ``importlib.util.find_spec`` and read as files; their module code is never run.

Assembly writes ``<name>.<pid>.tmp`` in the cache folder while hashing, checks it, then renames
it into place, so nobody ever sees a half-written model. A file lock serialises first use across
processes (several sandbox workers or runs starting at once assemble it once). A verified file
gets a ``.verified`` marker holding its size, mtime and hash, so later processes skip re-hashing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Iterator

from harnessopt.llm.registry import LocalModelError, LocalModelSpec, PartSource

#: Folder for assembled models; default ``$XDG_CACHE_HOME/harnessopt/models`` (``~/.cache/...``).
CACHE_ENV = "HARNESSOPT_MODEL_CACHE"
_BLOCK = 4 * 1024 * 1024


class ModelFileError(LocalModelError):
    """A model's parts are missing or damaged. ``str()`` is one line naming the package and the fix."""


def cache_dir() -> Path:
    forced = os.environ.get(CACHE_ENV)
    if forced:
        return Path(forced).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "harnessopt" / "models"


def part_path(part: PartSource) -> Path | None:
    """Where an installed part's data file is, or None when the package is not installed."""
    try:
        found = importlib.util.find_spec(part.module)
    except (ImportError, ValueError):
        return None
    if found is None:
        return None
    folders = list(found.submodule_search_locations or [])
    if not folders and found.origin:
        folders = [str(Path(found.origin).parent)]
    for folder in folders:
        candidate = Path(folder) / part.file
        if candidate.is_file():
            return candidate
    return None


def missing_parts(spec: LocalModelSpec) -> list[PartSource]:
    return [p for p in spec.parts if part_path(p) is None]


def _reinstall(spec: LocalModelSpec, part: PartSource) -> str:
    return f"reinstall it: pip install --force-reinstall '{part.requirement}' (or {spec.install_hint})"


def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _marker_matches(target: Path, spec: LocalModelSpec) -> bool:
    marker = _marker(target)
    try:
        st = target.stat()
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256} \
        and st.st_size == spec.size


def _write_marker(target: Path, spec: LocalModelSpec) -> None:
    st = target.stat()
    tmp = _marker(target).with_name(f"{_marker(target).name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": spec.sha256}),
                   encoding="utf-8")
    os.replace(tmp, _marker(target))


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    with path.open("a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _located_parts(spec: LocalModelSpec) -> list[tuple[PartSource, Path]]:
    """Every part's file, checked for presence and size before anything is read."""
    located = []
    for part in spec.parts:
        path = part_path(part)
        if path is None:
            raise ModelFileError(f"{spec.name}: part package {part.package} is not installed; "
                                 f"{spec.install_hint} (or pip install '{part.requirement}')")
        size = path.stat().st_size
        if size != part.size:
            raise ModelFileError(f"{spec.name}: part package {part.package} is damaged ({path.name} has "
                                 f"{size} bytes, expected {part.size}); {_reinstall(spec, part)}")
        located.append((part, path))
    return located


def _assemble(spec: LocalModelSpec, target: Path) -> None:
    """Concatenate the parts into a temp file, hashing each part and the whole; rename if all match."""
    located = _located_parts(spec)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    whole = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part, path in located:
                digest = hashlib.sha256()
                with path.open("rb") as fh:
                    while block := fh.read(_BLOCK):
                        digest.update(block)
                        whole.update(block)
                        out.write(block)
                if digest.hexdigest() != part.sha256:
                    raise ModelFileError(f"{spec.name}: part package {part.package} is damaged "
                                         f"({path.name} fails its sha256 check); {_reinstall(spec, part)}")
            out.flush()
            os.fsync(out.fileno())
        if tmp.stat().st_size != spec.size or whole.hexdigest() != spec.sha256:
            raise ModelFileError(f"{spec.name}: the assembled file fails its size/sha256 check although "
                                 f"every part passed; reinstall the parts ({spec.install_hint})")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def ensure_model_file(spec: LocalModelSpec) -> Path:
    """The verified GGUF of ``spec`` in the cache folder, assembling it on first use.

    Raises ModelFileError (one line: the package and the fix) for a missing or damaged part;
    then no model file is left behind.
    """
    folder = cache_dir()
    target = folder / spec.file_name
    if _marker_matches(target, spec):
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(f"{spec.name}: cannot create the model cache {folder}: {exc.strerror}; "
                             f"set {CACHE_ENV} to a writable folder") from None
    with _file_lock(folder / f"{spec.file_name}.lock"):
        if _marker_matches(target, spec):  # another process finished while we waited
            return target
        if target.is_file():
            # An unmarked file (marker lost, or left by an older version): trust it only if it hashes right.
            if target.stat().st_size == spec.size and _sha256_file(target) == spec.sha256:
                _write_marker(target, spec)
                return target
            target.unlink()
        _marker(target).unlink(missing_ok=True)
        _assemble(spec, target)
        _write_marker(target, spec)
    return target
