"""harnessopt: improve agent harnesses automatically.

The top level imports lazily so that sandboxed workers (which import `harnessopt.worker`)
never pay for litellm or datasets.
"""

from __future__ import annotations

import os
from importlib import import_module
from typing import Any

# Set once, before any submodule can import litellm: its price list is read from the copy it
# ships instead of being fetched, so everything works offline.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

__version__ = "0.1.0"

# Modules are named for what they hold (evaluation, optimizer) so that the functions
# harnessopt.evaluate / harnessopt.optimize are never shadowed by a submodule of the same name.
_EXPORTS = {
    "evaluate": "harnessopt.evaluation",
    "evaluate_async": "harnessopt.evaluation",
    "optimize": "harnessopt.optimizer",
    "optimize_async": "harnessopt.optimizer",
    "OptimizeConfig": "harnessopt.optimizer",
    "OptimizeResult": "harnessopt.optimizer",
    "gate": "harnessopt.regression_gate",
    "gate_async": "harnessopt.regression_gate",
    "assert_no_regression": "harnessopt.regression_gate",
    "GateResult": "harnessopt.regression_gate",
    "Budget": "harnessopt.budget",
    "Benchmark": "harnessopt.benchmark",
    "load_benchmark": "harnessopt.benchmark",
    "load_harness": "harnessopt.harness",
    "EvalResult": "harnessopt.records",
    "LOCAL_MODEL": "harnessopt.llm.registry",
    "DEFAULT_META_MODEL": "harnessopt.llm.registry",
    "describe_model": "harnessopt.llm.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harnessopt' has no attribute {name!r}")
    return getattr(import_module(module), name)
