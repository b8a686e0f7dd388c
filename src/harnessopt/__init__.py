"""harnessopt: improve agent harnesses automatically.

The top level imports lazily so that sandboxed workers (which import `harnessopt.worker`)
never pay for litellm or datasets.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "evaluate": "harnessopt.evaluate",
    "evaluate_async": "harnessopt.evaluate",
    "load_benchmark": "harnessopt.benchmark",
    "load_harness": "harnessopt.harness",
    "EvalResult": "harnessopt.records",
    "LOCAL_MODEL": "harnessopt.llm.local",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harnessopt' has no attribute {name!r}")
    return getattr(import_module(module), name)
