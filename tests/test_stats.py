"""Statistics on constructed data with known answers."""

import numpy as np
import pytest

from harnessopt.stats import (
    cluster_bootstrap,
    mean_ci,
    paired_arm_test,
    paired_bootstrap,
    sign_flip_p_value,
)

SEEDS = ["0", "1", "2"]
TASKS = [f"t{i:02d}" for i in range(30)]


def arm(scores_by_seed):
    return {(s, t): float(v) for s, row in scores_by_seed.items() for t, v in zip(TASKS, row)}


def bernoulli_arm(rng, p):
    return arm({s: rng.random(len(TASKS)) < p for s in SEEDS})


# --------------------------------------------------------------------------- existing helpers unchanged


def test_mean_ci_and_paired_bootstrap_still_behave():
    m, lo, hi = mean_ci([0.0, 1.0] * 20)
    assert m == 0.5 and lo < 0.5 < hi
    d, lo, hi = paired_bootstrap([1.0] * 10, [0.0] * 10)
    assert (d, lo, hi) == (1.0, 1.0, 1.0)


# --------------------------------------------------------------------------- sign-flip test: exact answers


def test_sign_flip_exact_values():
    assert sign_flip_p_value([0.0, 0.0, 0.0]) == 1.0  # no difference at all
    assert sign_flip_p_value([1.0, 1.0, 1.0]) == pytest.approx(2 / 8)  # all-same signs: 2 of 8 patterns
    assert sign_flip_p_value([1.0] * 5) == pytest.approx(2 / 32)
    assert sign_flip_p_value([1.0, -1.0]) == 1.0  # symmetric: every pattern is as extreme or more
    # zeros do not count as evidence either way
    assert sign_flip_p_value([1.0] * 5 + [0.0] * 20) == pytest.approx(2 / 32)


def test_sign_flip_monte_carlo_agrees_with_a_large_effect_and_never_returns_zero():
    p = sign_flip_p_value([1.0] * 40, resamples=5000)
    assert 0 < p < 0.001


# --------------------------------------------------------------------------- arm vs arm


def test_identical_arms_show_no_difference():
    rng = np.random.default_rng(1)
    a = bernoulli_arm(rng, 0.6)
    t = paired_arm_test(a, dict(a), arm_a="traces", arm_b="scores")
    assert t.mean_diff == 0 and t.p_value == 1.0 and not t.distinguishable
    assert (t.ci_low, t.ci_high) == (0.0, 0.0)
    assert t.n_seeds == 3 and t.n_pairs == 90
    assert "no difference" in t.sentence and "traces" in t.sentence


def test_a_clear_shift_is_detected():
    rng = np.random.default_rng(2)
    base = {s: (rng.random(len(TASKS)) < 0.3).astype(float) for s in SEEDS}
    better = {s: np.maximum(row, (rng.random(len(TASKS)) < 0.6).astype(float)) for s, row in base.items()}
    t = paired_arm_test(arm(better), arm(base), arm_a="traces", arm_b="scores", budget_text="2 iterations")
    assert t.mean_diff > 0.3
    assert t.p_value < 0.001 and t.ci_low > 0
    assert t.distinguishable
    assert t.sentence.startswith("traces beats scores by") and "distinguishable from noise at this budget (2 iterations)" in t.sentence
    # direction is symmetric
    r = paired_arm_test(arm(base), arm(better), arm_a="scores", arm_b="traces")
    assert r.distinguishable and r.mean_diff == pytest.approx(-t.mean_diff) and r.sentence.startswith("traces beats scores")


def test_a_shift_in_one_seed_only_is_not_called_real():
    """Task-level p is tiny, but the seeds disagree: the two-level interval keeps it honest."""
    same = np.zeros(len(TASKS))
    lucky = np.zeros(len(TASKS))
    lucky[:15] = 1.0
    a = arm({"0": lucky, "1": same, "2": same})
    b = arm({"0": same, "1": same, "2": same})
    t = paired_arm_test(a, b, arm_a="A", arm_b="B")
    assert t.p_value < 0.001
    assert t.ci_low <= 0 < t.ci_high
    assert not t.distinguishable
    assert "not distinguishable from noise" in t.sentence and "includes 0" in t.sentence
    assert t.seed_diffs == {"0": 0.5, "1": 0.0, "2": 0.0}


def test_noise_alone_is_rarely_called_a_difference():
    rng = np.random.default_rng(3)
    hits = sum(paired_arm_test(bernoulli_arm(rng, 0.5), bernoulli_arm(rng, 0.5), seed=i).distinguishable
               for i in range(40))
    assert hits <= 4  # nominal 5%; the two-level interval makes it stricter


def test_only_shared_seed_task_pairs_are_compared():
    a = {("0", "x"): 1.0, ("0", "y"): 0.0, ("1", "x"): 1.0}
    b = {("0", "x"): 0.0, ("0", "y"): 0.0, ("2", "x"): 1.0}
    t = paired_arm_test(a, b)
    assert t.n_pairs == 2 and t.n_seeds == 1 and t.mean_diff == 0.5
    empty = paired_arm_test({("0", "x"): 1.0}, {("1", "x"): 1.0})
    assert empty.n_pairs == 0 and not empty.distinguishable and "no (seed, task) pairs" in empty.sentence


def test_cluster_bootstrap_widens_with_disagreeing_groups():
    agree = cluster_bootstrap([[0.5] * 10, [0.5] * 10, [0.5] * 10])
    disagree = cluster_bootstrap([[1.0] * 10, [0.0] * 10, [0.5] * 10])
    assert agree == (0.5, 0.5, 0.5)
    assert disagree[0] == pytest.approx(0.5) and disagree[1] < 0.2 and disagree[2] > 0.8
    assert cluster_bootstrap([]) == (0.0, 0.0, 0.0)


def _eval_result(scores: list[float]):
    from harnessopt.records import EvalResult, TaskResult

    return EvalResult(run_dir=".", candidate_id="c", harness_path="h.py", harness_hash="x", benchmark="b",
                      split="search", model="m", n_tasks=len(scores), trials=1, score=float(np.mean(scores)),
                      ci_low=0.0, ci_high=1.0, n_rollouts=len(scores), n_errors=0, n_timeouts=0,
                      tasks=[TaskResult(task_id=f"t{i}", scores=[s]) for i, s in enumerate(scores)])


def test_the_promotion_confidence_decides_a_small_gain_that_is_never_worse():
    """+0.15 on 20 tasks (3 better, none worse): the 95% interval touches 0, the 90% one clears it."""
    from harnessopt.acceptance import decide_promotion

    champion = _eval_result([1.0] * 17 + [0.0] * 3)
    candidate = _eval_result([1.0] * 20)
    strict = decide_promotion(candidate, champion)
    loose = decide_promotion(candidate, champion, confidence=0.90)
    assert not strict.promote and strict.ci_low == 0.0 and "95% CI" in strict.reason
    assert loose.promote and loose.ci_low > 0 and "90% CI" in loose.reason
    worse_somewhere = _eval_result([1.0] * 19 + [0.0])  # +0.05: 2 better, 1 worse
    worse_somewhere.tasks[0].scores = [0.0]
    assert not decide_promotion(worse_somewhere, champion, confidence=0.90).promote
