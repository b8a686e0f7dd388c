"""When a candidate may replace the champion: a paired comparison that clears the noise.

Both must have full evaluations on the search split. Scores are paired by task (mean over
trials); the candidate is promoted only if the paired-bootstrap lower bound of the mean
difference is above zero and the mean difference exceeds the measured noise floor (the score
change seen when the seed harness is simply rerun).
"""

from __future__ import annotations

from harnessopt.records import EvalResult, Record
from harnessopt.stats import paired_bootstrap


class PromotionDecision(Record):
    promote: bool
    mean_diff: float
    ci_low: float
    ci_high: float
    noise_floor: float
    n_tasks: int
    reason: str


def decide_promotion(candidate: EvalResult, champion: EvalResult, *, noise_floor: float = 0.0,
                     seed: int = 0, blocked: str | None = None, confidence: float = 0.95) -> PromotionDecision:
    return decide_paired({t.task_id: t.mean for t in candidate.tasks}, {t.task_id: t.mean for t in champion.tasks},
                         noise_floor=noise_floor, seed=seed, blocked=blocked, confidence=confidence)


def decide_paired(mine: dict[str, float], theirs: dict[str, float], *, noise_floor: float = 0.0, seed: int = 0,
                  blocked: str | None = None, confidence: float = 0.95) -> PromotionDecision:
    """The promotion rule on per-task mean scores (task id -> score) of candidate and champion."""
    common = sorted(set(mine) & set(theirs))
    if not common:
        return PromotionDecision(promote=False, mean_diff=0.0, ci_low=0.0, ci_high=0.0,
                                 noise_floor=noise_floor, n_tasks=0, reason="no tasks in common")
    diff, low, high = paired_bootstrap([mine[t] for t in common], [theirs[t] for t in common], seed=seed,
                                       confidence=confidence)
    level = f"{confidence:.0%}"
    if blocked:
        promote, reason = False, f"not promoted: {blocked}"
    elif low > 0 and diff > noise_floor:
        promote, reason = True, f"promoted: +{diff:.3f} ({level} CI {low:+.3f}..{high:+.3f}) clears noise {noise_floor:.3f}"
    elif low <= 0:
        promote, reason = False, f"not promoted: {diff:+.3f} but the {level} CI {low:+.3f}..{high:+.3f} includes 0"
    else:
        promote, reason = False, f"not promoted: {diff:+.3f} does not exceed the noise floor {noise_floor:.3f}"
    return PromotionDecision(promote=promote, mean_diff=diff, ci_low=low, ci_high=high,
                             noise_floor=noise_floor, n_tasks=len(common), reason=reason)
