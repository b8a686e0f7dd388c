"""Run untrusted Python in a limited subprocess.

This is a *best-effort process sandbox*, not a security boundary. It keeps honest mistakes and
model-written code from hurting the parent (runaway loops, huge allocations, fork storms, giant
outputs, stray files, leaked API keys), but code that sets out to escape can: it runs as the same
user, can read whatever that user can read and can open network connections. Run harnessopt in a
container or VM if you execute code you must not trust.

What one call does:

* a fresh temporary working directory (also ``HOME`` and ``TMPDIR``), removed afterwards;
* ``sys.executable -E -s main.py``: environment variables such as ``PYTHONPATH`` are ignored and
  the user site directory is skipped, but the interpreter's site-packages stay importable (a
  python tool may want numpy) and the working directory is importable, so ``files`` can hold
  helper modules. (``-I`` would also hide the working directory; ``-S`` would hide site-packages.)
* an environment built from a small allow-list (``PATH``, locale, ``TZ``) plus single-thread
  settings for numeric libraries: no API keys, no tokens, no secrets from the parent;
* resource limits set in the child by ``worker/launcher.py``, which the child runs first (no
  ``preexec_fn``, which is unsafe when the parent has threads): address space (``memory_mb``),
  CPU seconds, largest file written, number of processes, no core dumps;
* the guard (``worker/guard.py``, the same audit hook workers get), installed by the launcher
  before ``main.py`` runs;
* its own session / process group, killed as a whole (SIGKILL) on timeout;
* stdout and stderr drained concurrently and capped (the excess is counted and dropped, so a
  ``while True: print()`` cannot exhaust the parent's memory).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path, PurePosixPath

from pydantic import Field

from harnessopt.records import Record

__all__ = ["ExecResult", "run_python", "OUTPUT_CAP_BYTES"]

OUTPUT_CAP_BYTES = 64 * 1024
FILE_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
MAX_PROCESSES = 256
ENV_ALLOW = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
_CHUNK = 8192


class ExecResult(Record):
    """Outcome of one sandboxed run. ``exit_code`` is negative when a signal ended the child.
    ``files``/``files_omitted``: with ``files_back``, the text files the run left in that folder,
    and those not returned (binary, symlinks, over the size cap)."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    wall_s: float = Field(default=0.0, ge=0.0)
    files: dict[str, str] | None = None
    files_omitted: list[str] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


def _child_env(workdir: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    env.update(
        HOME=workdir,
        TMPDIR=workdir,
        PYTHONIOENCODING="utf-8",
        PYTHONDONTWRITEBYTECODE="1",
        # Numeric libraries spawn one thread per core and reserve memory per thread; under an
        # address-space limit that alone can make `import numpy` fail.
        OMP_NUM_THREADS="1",
        OPENBLAS_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    return env


def protected_roots() -> list[str]:
    """Folders a sandboxed process must never read, however they relate to its read roots: the
    current directory (where run directories and benchmark data usually live) and harnessopt's
    own package folders."""
    import harnessopt

    return [os.getcwd(), *[str(p) for p in getattr(harnessopt, "__path__", [])]]


_NS_PREFIX: list[str] | None = None


def namespace_prefix() -> list[str]:
    """`unshare` options that wrap every sandboxed process, when this machine allows them:
    a network namespace (no network interface at all, whatever the code does) inside a user
    namespace (no capabilities over the host's processes and files, even when harnessopt runs as
    root). Falls back to a network namespace alone (root), then to nothing; HARNESSOPT_NAMESPACES=0
    turns it off. The guard refuses sockets either way."""
    global _NS_PREFIX
    if _NS_PREFIX is None:
        _NS_PREFIX = []
        unshare = shutil.which("unshare")
        if unshare and os.environ.get("HARNESSOPT_NAMESPACES", "1") != "0" and sys.platform.startswith("linux"):
            options = [[unshare, "--user", "--map-root-user", "--net"]]
            if os.geteuid() == 0:
                options.append([unshare, "--net"])
            for prefix in options:
                try:
                    ok = subprocess.run([*prefix, "true"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, timeout=5).returncode == 0
                except (OSError, subprocess.SubprocessError):
                    ok = False
                if ok:
                    _NS_PREFIX = prefix
                    break
    return list(_NS_PREFIX)


_parent_lock = threading.Lock()
_parent_users = 0
_parent_dumpable: int | None = None


def _prctl(option: int, arg: int = 0) -> int:
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl(option, arg, 0, 0, 0)


@contextlib.contextmanager
def parent_protected():
    """While sandboxed processes may run, make this process non-dumpable (Linux PR_SET_DUMPABLE 0):
    its /proc/<pid>/environ and memory (where API keys live) then cannot be read by other processes
    of the same user, only by root (and not by root inside the user namespace above). Restored
    when the last user leaves; a no-op elsewhere."""
    global _parent_users, _parent_dumpable
    active = sys.platform.startswith("linux")
    if active:
        with _parent_lock:
            if _parent_users == 0:
                try:
                    _parent_dumpable = _prctl(3)  # PR_GET_DUMPABLE
                    _prctl(4, 0)  # PR_SET_DUMPABLE
                except (OSError, AttributeError):
                    _parent_dumpable = None
            _parent_users += 1
    try:
        yield
    finally:
        if active:
            with _parent_lock:
                _parent_users -= 1
                if _parent_users == 0 and _parent_dumpable is not None and _parent_dumpable >= 0:
                    try:
                        _prctl(4, _parent_dumpable)
                    except (OSError, AttributeError):
                        pass


# The child runs launcher.py (standard library only; it sets the limits, installs the guard and
# runs main.py in the same process): see that file for why.
LAUNCHER = Path(__file__).resolve().parent / "worker" / "launcher.py"


def _command(memory_mb: int, cpu_s: int, flags: list[str] = ()) -> list[str]:
    limits = [memory_mb * 1024 * 1024, cpu_s, FILE_SIZE_LIMIT_BYTES, MAX_PROCESSES]
    return [*namespace_prefix(), sys.executable, "-E", "-s", str(LAUNCHER), *map(str, limits), *flags,
            *protected_roots()]


_LANDLOCK_ABI: int | None = None


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: none), which ``confine_fs`` needs (Linux 5.13+)."""
    global _LANDLOCK_ABI
    if _LANDLOCK_ABI is None:
        _LANDLOCK_ABI = 0
        if sys.platform.startswith("linux") and os.environ.get("HARNESSOPT_LANDLOCK", "1") != "0":
            try:
                import ctypes

                libc = ctypes.CDLL(None, use_errno=True)
                libc.syscall.restype = ctypes.c_long
                # landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION)
                _LANDLOCK_ABI = max(int(libc.syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))), 0)
            except (OSError, AttributeError):
                _LANDLOCK_ABI = 0
    return _LANDLOCK_ABI


class _Drain(threading.Thread):
    """Reads a pipe to EOF, keeping the first ``cap`` bytes and counting the rest."""

    def __init__(self, pipe, cap: int) -> None:
        super().__init__(daemon=True)
        self.pipe, self.cap = pipe, cap
        self.buf = bytearray()
        self.dropped = 0

    def run(self) -> None:
        try:
            read = getattr(self.pipe, "read1", self.pipe.read)
            while chunk := read(_CHUNK):
                room = self.cap - len(self.buf)
                if room > 0:
                    self.buf += chunk[:room]
                self.dropped += max(0, len(chunk) - max(room, 0))
        except (OSError, ValueError):
            pass

    def text(self) -> str:
        out = self.buf.decode("utf-8", errors="replace")
        if self.dropped:
            out += f"\n[... output truncated: {self.dropped} more bytes dropped ...]\n"
        return out


def _write_files(workdir: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"sandbox file name must be a relative path inside the work dir: {name!r}")
        dest = workdir.joinpath(*rel.parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(content, encoding="utf-8")


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


def run_python(
    code: str,
    *,
    timeout_s: float = 10,
    memory_mb: int = 1024,
    stdin: str | None = None,
    files: dict[str, str] | None = None,
    output_cap: int = OUTPUT_CAP_BYTES,
    confine_fs: bool = False,
    allow_processes: bool = True,
    files_back: str | None = None,
    files_back_cap: int = 1024 * 1024,
) -> ExecResult:
    """Run ``code`` as ``main.py`` in a fresh temp dir under limits; see the module docstring.

    ``files`` maps relative paths to text content written into the working directory first.
    ``timeout_s`` is wall-clock; the CPU limit is set slightly above it. ``memory_mb`` limits the
    address space (0 disables the limit). ``confine_fs`` confines the child and every program it
    starts to the system, the Python installation and its working directory (Landlock; check
    ``landlock_abi()`` first: without it the run fails with exit code 126).
    ``allow_processes=False`` makes the guard refuse new processes. ``files_back`` names a folder
    of the working directory whose text files (up to ``files_back_cap`` bytes) come back in
    ``ExecResult.files``. Never raises for anything the child does.
    """
    flags = (["--confine-fs"] if confine_fs else []) + ([] if allow_processes else ["--no-processes"])
    with parent_protected():
        return _run_python(code, timeout_s=timeout_s, memory_mb=memory_mb, stdin=stdin, files=files,
                           output_cap=output_cap, flags=flags, files_back=files_back, files_back_cap=files_back_cap)


def read_text_tree(root: Path, cap: int) -> tuple[dict[str, str], list[str]]:
    """Text files under `root` ({relative path: text}) and the paths left out: binary, symlinks,
    other special files, and whatever passes `cap` bytes in total."""
    files: dict[str, str] = {}
    omitted: list[str] = []
    total = 0
    if root.is_symlink() or not root.is_dir():
        return files, omitted
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            path = Path(dirpath, name)
            rel = path.relative_to(root).as_posix()
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                omitted.append(rel)
                continue
            try:
                with os.fdopen(fd, "rb") as f:
                    st = os.fstat(f.fileno())
                    # Links (and fifos, devices) could point the parent at what the child could not read.
                    if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
                        omitted.append(rel)
                        continue
                    data = f.read(cap + 1)
                text = data.decode("utf-8")
            except (OSError, UnicodeDecodeError):
                omitted.append(rel)
                continue
            total += len(data)
            if total > cap:
                omitted.append(rel)
                continue
            files[rel] = text
    return files, omitted


def _run_python(code: str, *, timeout_s: float, memory_mb: int, stdin: str | None,
                files: dict[str, str] | None, output_cap: int, flags: list[str] = (),
                files_back: str | None = None, files_back_cap: int = 0) -> ExecResult:
    workdir = Path(tempfile.mkdtemp(prefix="harnessopt-sbx-"))
    started = time.monotonic()
    try:
        _write_files(workdir, files or {})
        (workdir / "main.py").write_text(code, encoding="utf-8")
        cpu_s = max(1, math.ceil(timeout_s) + 1)
        try:
            proc = subprocess.Popen(
                _command(memory_mb, cpu_s, flags),
                cwd=workdir,
                env=_child_env(str(workdir)),
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            return ExecResult(exit_code=-1, stderr=f"sandbox: could not start python: {exc}",
                              wall_s=time.monotonic() - started)
        out, err = _Drain(proc.stdout, output_cap), _Drain(proc.stderr, output_cap)
        out.start()
        err.start()
        if stdin is not None:
            def feed() -> None:
                try:
                    proc.stdin.write(stdin.encode("utf-8"))
                except (BrokenPipeError, OSError, ValueError):
                    pass
                finally:
                    try:
                        proc.stdin.close()
                    except OSError:
                        pass

            threading.Thread(target=feed, daemon=True).start()
        timed_out = False
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
        # Kill the whole group even after a normal exit: background children must not linger.
        _kill_group(proc)
        proc.wait()
        out.join(timeout=2)
        err.join(timeout=2)
        for pipe in (proc.stdout, proc.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        stderr = err.text()
        if timed_out:
            stderr += f"\n[sandbox: killed after timeout of {timeout_s:g}s]\n"
        back, omitted = read_text_tree(workdir / files_back, files_back_cap) if files_back else (None, [])
        return ExecResult(
            exit_code=proc.returncode if proc.returncode is not None else -1,
            stdout=out.text(),
            stderr=stderr,
            timed_out=timed_out,
            wall_s=round(time.monotonic() - started, 4),
            files=back,
            files_omitted=omitted,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
