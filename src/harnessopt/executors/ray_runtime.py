"""Connecting to Ray: the install hint, the address, and a local runtime that holds no API keys.

With no address, harnessopt starts a Ray runtime on this machine. Ray's processes are children
of this one and would inherit its environment, API keys included; they are started from an
environment without key-like variables, so no Ray worker holds a key (the driver's gateway,
in this process, makes every model call).
"""

from __future__ import annotations

import os
import socket
import threading
from typing import Any

from harnessopt.errors import UsageError

INSTALL_HINT = "--executor ray needs Ray, which is not installed: pip install 'harnessopt[ray]'"
# Variables that hold secrets by name; Ray's own settings (RAY_AUTH_TOKEN above all) stay, the
# local runtime needs them.
SECRET_SUFFIXES = ("_API_KEY", "_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_KEY_ID", "_CREDENTIALS")
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024  # examples and jobs only: no need for Ray's 30% of RAM
_env_lock = threading.Lock()


def require_ray() -> Any:
    """The `ray` module, or a one-line UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError(INSTALL_HINT) from None
    return ray


def probe(address: str, timeout_s: float = 5.0) -> None:
    """A HOST:PORT or ray://HOST:PORT address must accept connections: Ray itself retries an
    unreachable one for minutes before it gives up."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise UsageError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); start the "
                         "cluster (ray start --head), or give no address to run Ray on this machine") from None


def secret_names(environ: dict[str, str] | os._Environ) -> list[str]:
    return [name for name in environ if name.upper().endswith(SECRET_SUFFIXES) and not name.startswith("RAY_")]


def connect(address: str | None, *, num_cpus: int | None = None) -> bool:
    """Connect this process to Ray (no-op when it already is): to `address`, else to the cluster
    in RAY_ADDRESS (as Ray does), else to a new local runtime. Returns True when this call
    started or joined Ray, so the caller should shut it down when done."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    _notices_to_stderr(ray)
    where = f"--ray-address {address}" if address else f"RAY_ADDRESS {os.environ.get('RAY_ADDRESS')}"
    address = address or os.environ.get("RAY_ADDRESS") or None  # Ray joins that cluster anyway
    kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False, "configure_logging": True,
                              "logging_level": "warning"}
    if address is None:
        kwargs.update(num_cpus=num_cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
        with _env_lock:  # Ray's processes start from this environment, minus the keys
            hidden = {name: os.environ.pop(name) for name in secret_names(os.environ)}
            try:
                ray.init(**kwargs)
            finally:
                os.environ.update(hidden)
        return True
    probe(address)
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise UsageError(f"{where}: cannot connect to a Ray cluster there ({detail}); start one (ray start "
                         "--head), or give no address (and no RAY_ADDRESS) to run Ray on this machine") from None
    return True


def _notices_to_stderr(ray: Any) -> None:
    """Ray prints its notices (a worker died, ...) on stdout, where `--json` output goes; they
    go to stderr instead. (A private hook of Ray's; left alone if it is not there.)"""
    worker = getattr(getattr(ray, "_private", None), "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "harnessopt", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.harnessopt = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = to_stderr


def disconnect() -> None:
    ray = require_ray()
    if ray.is_initialized():
        ray.shutdown()
