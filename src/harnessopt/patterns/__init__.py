"""Harness patterns: known-good harness changes as typed transformations (see docs/PATTERNS.md).

    from harnessopt.patterns import apply_pattern
    result = apply_pattern(source, "retrieval_fewshot", {"k": 8}, task_shape="classification")
    result = apply_pattern(result.source, "label_constraint", {}, task_shape="classification")
    print(result.source)      # one complete, readable harness file

Each generated harness embeds its `RECIPE`, so patterns compose; the code never imports
harnessopt and never names a benchmark's labels or answers.
"""

from harnessopt.patterns.library import (
    PATTERN_NAMES,
    PATTERNS,
    Pattern,
    PatternError,
    PatternResult,
    applicable,
    apply_pattern,
    describe_patterns,
    get_pattern,
)
from harnessopt.patterns.recipe import Recipe, default_recipe, embedded_recipe, recipe_for_source
from harnessopt.patterns.render import render_harness

__all__ = [
    "PATTERN_NAMES", "PATTERNS", "Pattern", "PatternError", "PatternResult", "Recipe", "applicable",
    "apply_pattern", "default_recipe", "describe_patterns", "embedded_recipe", "get_pattern",
    "recipe_for_source", "render_harness",
]
