"""Process-wide llama.cpp setup shared by every embedded model: logging, threads, weight repacking."""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
from typing import Any, Iterator

#: Environment variable setting llama.cpp's thread count (default: all cores).
THREADS_ENV = "HARNESSOPT_LOCAL_THREADS"
#: Environment variable forcing llama.cpp weight repacking on (1) or off (0); see below.
REPACK_ENV = "HARNESSOPT_LOCAL_REPACK"

_log_callback: Any = None  # keep a reference: llama.cpp calls it from C


def quiet_llama_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's log lines to Python logging instead of stderr.

    Even with ``verbose=False`` llama.cpp prints untagged notices (e.g. "using full-size SWA
    cache") on every context creation; they go to the ``harnessopt.llama`` logger instead
    (errors at ERROR, warnings at INFO, the rest at DEBUG).
    """
    global _log_callback
    if _log_callback is not None:
        return
    log = logging.getLogger("harnessopt.llama")

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, user_data: Any) -> None:
        with contextlib.suppress(Exception):
            message = text.decode("utf-8", errors="replace").rstrip()
            if message:
                # ggml levels: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. Its warnings
                # are routine notices here ("using full-size SWA cache"): keep them at INFO.
                log.log(logging.ERROR if level == 4 else logging.INFO if level == 3
                        else logging.DEBUG, "%s", message)

    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))
    _log_callback = callback


@contextlib.contextmanager
def captured_llama_errors() -> Iterator[list[str]]:
    """The llama.cpp error lines logged inside the block (e.g. why a grammar did not parse)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.ERROR:
                lines.append(" ".join(record.getMessage().split())[:200])

    handler = Collect()
    log = logging.getLogger("harnessopt.llama")
    log.addHandler(handler)
    try:
        yield lines
    finally:
        log.removeHandler(handler)


def n_threads() -> int:
    """All cores by default; ``HARNESSOPT_LOCAL_THREADS`` overrides it.

    llama.cpp's threads synchronise with spinning barriers, so two processes that each run the
    model on every core of a small machine slow each other down by far more than 2x: give each a
    share of the cores when several run at once.
    """
    forced = os.environ.get(THREADS_ENV)
    if forced:
        return max(1, int(forced))
    try:
        return len(os.sched_getaffinity(0)) or 1  # the cores this process may use
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def use_extra_buffer_types() -> bool:
    """Whether llama.cpp may repack weights into extra buffer types (AMX, CPU_REPACK).

    On CPUs with AMX (recent Xeons) llama.cpp 0.3.36's AMX repack of this model segfaults on
    the first decode, so repacking is turned off there. ``HARNESSOPT_LOCAL_REPACK=0/1`` forces it.
    """
    forced = os.environ.get(REPACK_ENV)
    if forced is not None:
        return forced.strip().lower() not in ("0", "false", "no", "off", "")
    import llama_cpp

    try:
        info = llama_cpp.llama_print_system_info()
    except Exception:
        return False
    info = info.decode(errors="replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" not in info


@contextlib.contextmanager
def model_params(*, use_extra_bufts: bool) -> Iterator[None]:
    """Set ``llama_model_params.use_extra_bufts``, which ``Llama()`` does not expose.

    ``Llama.__init__`` starts from ``llama_model_default_params()``; wrap that function while the
    model loads (callers hold the load lock).
    """
    import llama_cpp.llama as llama_mod

    low = llama_mod.llama_cpp
    original = low.llama_model_default_params
    if use_extra_bufts or not hasattr(original(), "use_extra_bufts"):
        yield
        return

    def patched() -> Any:
        params = original()
        params.use_extra_bufts = False
        return params

    low.llama_model_default_params = patched
    try:
        yield
    finally:
        low.llama_model_default_params = original
