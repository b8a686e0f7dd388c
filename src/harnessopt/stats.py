"""Small, honest statistics: bootstrap intervals over tasks, paired comparisons, arm-vs-arm tests."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from harnessopt.records import Record


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


# --------------------------------------------------------------------------- comparing two arms
#
# An experiment runs each arm (feedback mode x model pairing) once per seed. Two arms with the same
# seeds are compared on the held-out test split: for every (seed, task) the final champion of arm A
# and the final champion of arm B were scored on the same task, so the differences pair up.
# Two sources of noise matter: which tasks happen to be in the test split, and how the (random)
# meta-agent search went in each seed. The p-value comes from a sign-flip permutation test over
# (seed, task) pairs (tasks as the sampling unit, the usual paired test for benchmark items); the
# confidence interval comes from a two-level bootstrap (resample seeds, then tasks within each
# seed), which widens when seeds disagree. A difference is called distinguishable from noise only
# when both agree: p below alpha AND the interval excludes zero.


class PairedArmTest(Record):
    """A paired comparison of two arms' test-split scores over shared (seed, task) pairs."""

    arm_a: str
    arm_b: str
    n_seeds: int
    n_pairs: int
    mean_a: float
    mean_b: float
    mean_diff: float  # a - b
    ci_low: float
    ci_high: float
    p_value: float
    seed_diffs: dict[str, float] = Field(default_factory=dict)  # per-seed mean difference
    alpha: float = 0.05
    distinguishable: bool = False
    sentence: str = ""


def sign_flip_p_value(diffs: list[float], *, resamples: int = 20000, seed: int = 0) -> float:
    """Two-sided p-value of a paired sign-flip permutation test of mean(diffs) == 0.

    Under the null (the two arms are exchangeable) every paired difference is as likely to have
    the opposite sign. Exact over all 2^n sign patterns when at most 16 differences are non-zero,
    otherwise Monte Carlo with the (hits + 1) / (resamples + 1) correction (never exactly 0).
    """
    d = np.asarray([x for x in diffs if x != 0], dtype=float)
    if d.size == 0:
        return 1.0
    observed = abs(d.sum())
    tol = 1e-12 * max(1.0, observed)
    if d.size <= 16:
        patterns = ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1) * 2 - 1
        sums = np.abs(patterns @ d)
        return float(np.mean(sums >= observed - tol))
    rng = np.random.default_rng(seed)
    hits = 0
    done = 0
    while done < resamples:  # in chunks: bounded memory for long benchmarks
        n = min(2000, resamples - done)
        signs = rng.choice(np.array([-1.0, 1.0]), size=(n, d.size))
        hits += int(np.sum(np.abs(signs @ d) >= observed - tol))
        done += n
    return float((hits + 1) / (resamples + 1))


def cluster_bootstrap(groups: list[list[float]], *, confidence: float = 0.95, resamples: int = 4000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean and two-level bootstrap interval: resample groups (seeds), then items (tasks) within.

    The point estimate is the mean of group means (each seed weighs the same).
    """
    groups = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not groups:
        return 0.0, 0.0, 0.0
    point = float(np.mean([g.mean() for g in groups]))
    if len(groups) == 1 and len(groups[0]) == 1:
        return point, point, point
    rng = np.random.default_rng(seed)
    k = len(groups)
    sizes = np.array([len(g) for g in groups])
    width = int(sizes.max())
    table = np.zeros((k, width))
    for j, g in enumerate(groups):
        table[j, : len(g)] = g
    stats = np.empty(resamples)
    chunk = max(1, 2_000_000 // (k * width))  # bounded memory for long benchmarks
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        picks = rng.integers(0, k, size=(b, k))  # which seeds
        n = sizes[picks][..., None]  # (b, k, 1): size of each picked seed
        items = np.floor(rng.random((b, k, width)) * n).astype(int)  # tasks within each picked seed
        mask = np.arange(width)[None, None, :] < n
        values = table[picks[..., None], items] * mask
        stats[start:start + b] = (values.sum(axis=2) / n[..., 0]).mean(axis=1)
    alpha = (1 - confidence) / 2
    return point, float(np.quantile(stats, alpha)), float(np.quantile(stats, 1 - alpha))


def paired_arm_test(a: dict[tuple[str, str], float], b: dict[tuple[str, str], float], *,
                    arm_a: str = "A", arm_b: str = "B", alpha: float = 0.05, seed: int = 0,
                    budget_text: str = "") -> PairedArmTest:
    """Compare arm a with arm b on their shared (seed, task) keys; scores are means over trials."""
    keys = sorted(set(a) & set(b))
    by_seed: dict[str, list[float]] = {}
    for s, t in keys:
        by_seed.setdefault(str(s), []).append(a[(s, t)] - b[(s, t)])
    diffs = [a[k] - b[k] for k in keys]
    if not keys:
        return PairedArmTest(arm_a=arm_a, arm_b=arm_b, n_seeds=0, n_pairs=0, mean_a=0.0, mean_b=0.0,
                             mean_diff=0.0, ci_low=0.0, ci_high=0.0, p_value=1.0, alpha=alpha,
                             sentence=f"{arm_a} and {arm_b} share no (seed, task) pairs: nothing to compare.")
    p = sign_flip_p_value(diffs, seed=seed)
    diff, low, high = cluster_bootstrap(list(by_seed.values()), seed=seed)
    result = PairedArmTest(
        arm_a=arm_a, arm_b=arm_b, n_seeds=len(by_seed), n_pairs=len(keys),
        mean_a=float(np.mean([a[k] for k in keys])), mean_b=float(np.mean([b[k] for k in keys])),
        mean_diff=diff, ci_low=low, ci_high=high, p_value=p,
        seed_diffs={s: float(np.mean(v)) for s, v in by_seed.items()}, alpha=alpha,
        distinguishable=bool(p < alpha and (low > 0 or high < 0)),
    )
    result.sentence = difference_sentence(result, budget_text=budget_text)
    return result


def difference_sentence(t: PairedArmTest, *, budget_text: str = "") -> str:
    """One plain sentence: is the difference between the arms distinguishable from noise?"""
    at = f" at this budget ({budget_text})" if budget_text else " at this budget"
    size = f"{t.n_seeds} seed(s) x {t.n_pairs // max(1, t.n_seeds)} test task(s)"
    if t.distinguishable:
        better, worse = (t.arm_a, t.arm_b) if t.mean_diff > 0 else (t.arm_b, t.arm_a)
        return (f"{better} beats {worse} by {abs(t.mean_diff):.3f} on held-out test "
                f"(95% CI {t.ci_low:+.3f}..{t.ci_high:+.3f}, p = {t.p_value:.3g}, {size}): "
                f"distinguishable from noise{at}.")
    if t.mean_diff == 0 and t.ci_low == t.ci_high == 0:
        return (f"{t.arm_a} and {t.arm_b} score the same on every shared test task ({size}): "
                f"no difference{at}.")
    why = []
    if t.p_value >= t.alpha:
        why.append(f"p = {t.p_value:.3g} is not below {t.alpha:g}")
    if t.ci_low <= 0 <= t.ci_high:
        why.append(f"the 95% CI {t.ci_low:+.3f}..{t.ci_high:+.3f} includes 0")
    return (f"{t.arm_a} - {t.arm_b} = {t.mean_diff:+.3f} on held-out test ({size}), but "
            f"{' and '.join(why)}: not distinguishable from noise{at}.")
