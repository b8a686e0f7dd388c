"""Small, honest statistics: bootstrap intervals over tasks and paired comparisons."""

from __future__ import annotations

import numpy as np


def mean_ci(values: list[float], *, confidence: float = 0.95, resamples: int = 2000,
            seed: int = 0) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap confidence interval (resampling tasks)."""
    if not values:
        return 0.0, 0.0, 0.0
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) == 1:
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(data), size=(resamples, len(data)))
    means = data[idx].mean(axis=1)
    alpha = (1 - confidence) / 2
    return mean, float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def paired_bootstrap(candidate: list[float], baseline: list[float], *, confidence: float = 0.95,
                     resamples: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean difference (candidate - baseline) over paired tasks with its bootstrap interval."""
    if len(candidate) != len(baseline):
        raise ValueError(f"paired comparison needs equal lengths, got {len(candidate)} and {len(baseline)}")
    diffs = [c - b for c, b in zip(candidate, baseline)]
    return mean_ci(diffs, confidence=confidence, resamples=resamples, seed=seed)
