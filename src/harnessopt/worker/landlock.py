"""Filesystem confinement with Landlock (Linux 5.13+): what the guard cannot give.

The guard is an audit hook: it sees what Python code does, not what a program started from it
does (`cat`, `sh`, another interpreter). Landlock is enforced by the kernel on the process and on
everything it starts, so a shell command in a workspace can read only the system folders, the
Python installation and its own working directory, and write only there. Folders that must stay
closed inside an allowed one (harnessopt's package, which may bundle benchmark data) are left
out by allowing the allowed folder's other entries one by one.

Standard library only: run_python's children load this file beside the launcher.
"""

import ctypes
import os

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_PR_SET_NO_NEW_PRIVS = 38
_RULE_PATH_BENEATH = 1

EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_ABI1_ALL = (1 << 13) - 1  # execute .. make_sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV  # what a rule on a file may hold
READ = EXECUTE | READ_FILE | READ_DIR


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def abi_version():
    """The kernel's Landlock ABI version, or 0 when Landlock is unavailable."""
    try:
        libc = _libc()
        libc.syscall.restype = ctypes.c_long
        version = libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0
    return max(int(version), 0)


def _handled(abi):
    mask = _ABI1_ALL
    if abi >= 2:
        mask |= REFER
    if abi >= 3:
        mask |= TRUNCATE
    if abi >= 5:
        mask |= IOCTL_DEV
    return mask


def _under(path, root):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def confine(read_roots, write_roots, deny_roots=()):
    """Restrict this process and its future children: read (and execute) under `read_roots`,
    read and write under `write_roots`, nothing under `deny_roots` unless a write root lies
    there. Irreversible. Raises OSError when the kernel refuses (no Landlock)."""
    abi = abi_version()
    if abi < 1:
        raise OSError("Landlock is not available on this kernel (Linux 5.13+ with Landlock enabled)")
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    handled = _handled(abi)
    attr = (ctypes.c_uint64 * 3)(handled, 0, 0)
    size = 8 if abi < 4 else (16 if abi < 6 else 24)
    ruleset = libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    deny = [os.path.realpath(d) for d in deny_roots if d and os.path.exists(d)]
    writable = [os.path.realpath(w) for w in write_roots if w]
    try:
        def add(path, rights):
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                return
            try:
                if not os.path.isdir(path):
                    rights &= FILE_RIGHTS
                rule = _PathBeneath(rights & handled, fd)
                if libc.syscall(_ADD_RULE, ctypes.c_int(ruleset), ctypes.c_int(_RULE_PATH_BENEATH),
                                ctypes.byref(rule), ctypes.c_uint32(0)) < 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)

        def allow(path, rights, depth=0):
            real = os.path.realpath(path)
            if any(_under(real, d) for d in deny) or not os.path.exists(real):
                return
            inner = [d for d in deny if _under(d, real)]
            if not inner:
                add(real, rights)
            elif depth < 12 and os.path.isdir(real):  # allow every entry but the way to the denied one
                try:
                    entries = sorted(os.listdir(real))
                except OSError:
                    return
                add(real, READ_DIR)  # names below stay listable (imports list folders); contents do not
                for name in entries:
                    allow(os.path.join(real, name), rights, depth + 1)

        for root in read_roots:
            if root:
                allow(root, READ)
        for root in ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty"):
            add(root, READ_FILE | WRITE_FILE)
        for root in writable:
            add(root, handled)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
        if libc.syscall(_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(ruleset)


def system_read_roots(python_roots):
    """What programs need to run: system folders, /proc and the Python installation."""
    roots = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/proc", "/dev/fd", "/dev/pts"]
    return roots + [r for r in python_roots if r]
