"""The first code in every child of `harnessopt.sandbox.run_python`: limits, guard, then main.py.

Run as a script, ``python -E -s launcher.py MEMORY CPU FSIZE NPROC [--confine-fs] [--no-processes]
[PROTECTED ...]``, in the child's fresh working directory. It sets the resource limits in the
child itself (rather than a `preexec_fn`, which can deadlock when the parent has threads: the
evaluator scores answers from worker threads), installs the guard from `guard.py` beside it, and
runs ``main.py`` in the same process. ``--confine-fs`` first confines the filesystem with Landlock
(`landlock.py`: binding on every program the child starts, which the guard is not);
``--no-processes`` makes the guard refuse new processes. Standard library only: the child does
not import harnessopt (its folders are closed to sandboxed code), it loads `guard.py` and
`landlock.py` as plain modules from this file's folder.
"""

from __future__ import annotations

import os
import resource
import runpy
import sys
import traceback


def _limit(which: int, value: int) -> None:
    try:
        hard = resource.getrlimit(which)[1]
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


def apply_limits(memory: int, cpu_s: int, file_size: int, processes: int) -> None:
    if memory > 0:
        _limit(resource.RLIMIT_AS, memory)
    _limit(resource.RLIMIT_CPU, cpu_s)
    _limit(resource.RLIMIT_FSIZE, file_size)
    _limit(resource.RLIMIT_CORE, 0)
    if hasattr(resource, "RLIMIT_NPROC"):
        _limit(resource.RLIMIT_NPROC, processes)


def _load_sibling(name):
    """A module from this file's folder (guard.py, landlock.py), without leaving that folder on
    sys.path, the module in sys.modules (main.py may have its own) or a .pyc beside it."""
    import importlib

    sys.path[0] = os.path.dirname(os.path.abspath(__file__))
    sys.dont_write_bytecode, was = True, sys.dont_write_bytecode
    try:
        module = importlib.import_module(name)
    finally:
        sys.dont_write_bytecode = was
        del sys.modules[name]
        # main.py's folder (the working directory) takes the place a `python -c` child gives it.
        sys.path[0] = ""
    return module


def run_main() -> None:
    """Run main.py as __main__; print its traceback from main.py down, without this launcher."""
    sys.argv = ["main.py"]
    try:
        runpy.run_path("main.py", run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:  # noqa: BLE001 - the child's own error, reported like python would
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "main.py":
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        sys.exit(1)


def main(argv: list[str]) -> None:
    memory, cpu_s, file_size, processes = (int(x) for x in argv[:4])
    flags = {a for a in argv[4:] if a.startswith("--")}
    protected = [a for a in argv[4:] if not a.startswith("--")]
    apply_limits(memory, cpu_s, file_size, processes)
    guard = _load_sibling("guard")
    here = os.getcwd()
    import ctypes  # noqa: F401 - before the guard: ctypes loads libraries at import (numpy imports it); new loads are refused

    deny = guard.default_deny_roots() + protected
    if "--confine-fs" in flags:  # before the guard, which refuses the ctypes calls this needs
        landlock = _load_sibling("landlock")
        try:
            landlock.confine(landlock.system_read_roots(guard.default_read_roots()), [here], deny)
        except OSError as exc:
            sys.stderr.write(f"sandbox: filesystem confinement failed ({exc}); nothing was run\n")
            sys.exit(126)
    guard.install_guard([here], guard.default_read_roots() + [here], deny,
                        allow_processes="--no-processes" not in flags)
    run_main()


if __name__ == "__main__":
    main(sys.argv[1:])
