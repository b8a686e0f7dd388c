"""Predictions that can be checked: each proposal's predicted score change against what was measured.

Every proposal carries a number (`CandidateMeta.predicted`: the proposer's expected change of the
search score, -1..1). What it measured, from facts the run wrote:

- fully evaluated candidate: its full search score minus its parent's full search score (both
  ledger rows of kind `full`);
- screened only (spot-checks, no full evaluation, or a parent never fully evaluated): the spot
  mean minus the champion's mean on the same tasks, both recorded in the `spot_check` event. The
  screening tasks start with the champion's failures, so this difference leans positive;
- neither: not measured (the candidate never ran, or ran out of budget).

From these points: the share of edits that made things worse (measured < 0), the share whose
direction was predicted right (sign of predicted = sign of measured, 0 counting as its own sign),
Pearson and Spearman correlation, the mean absolute error, and a calibration table by bins of the
predicted change (mean predicted vs mean measured per bin).
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import Field

from harnessopt import events as E
from harnessopt.records import Record

# Bins of the predicted change: (label, low exclusive, high inclusive).
BINS: list[tuple[str, float, float]] = [
    ("below 0", -math.inf, -1e-12), ("0", -1e-12, 1e-12), ("0 to 0.1", 1e-12, 0.1),
    ("0.1 to 0.3", 0.1, 0.3), ("above 0.3", 0.3, math.inf),
]


class PredictionPoint(Record):
    candidate: str
    parent: str = ""
    predicted: float
    measured: float | None = None
    basis: str = ""  # "full" | "spot" | "" (not measured)
    what: str = ""  # its moves, or how it was written


class CalibrationBin(Record):
    label: str
    n: int
    mean_predicted: float
    mean_measured: float
    worse: int


class Calibration(Record):
    """The check of one run's (or one arm's pooled) predictions."""

    proposals: int = 0  # candidates that carry a prediction
    measured: int = 0
    by_full: int = 0
    by_spot: int = 0
    worse: int = 0
    better: int = 0
    unchanged: int = 0
    direction_right: int = 0
    pearson: float | None = None  # None: fewer than 3 points, or a constant side
    spearman: float | None = None
    mean_abs_error: float | None = None
    mean_predicted: float | None = None
    mean_measured: float | None = None
    bins: list[CalibrationBin] = Field(default_factory=list)
    points: list[PredictionPoint] = Field(default_factory=list)

    @property
    def worse_share(self) -> float | None:
        return self.worse / self.measured if self.measured else None

    @property
    def direction_share(self) -> float | None:
        return self.direction_right / self.measured if self.measured else None


def prediction_points(ledger: list, events: list, candidates: list) -> list[PredictionPoint]:
    """One point per non-seed candidate with a prediction, measured as the module docstring says
    (a run's ledger rows, events and report.data.CandidateInfo records)."""
    full: dict[str, float] = {}
    for row in ledger:
        if row.kind == "full" and row.score is not None:
            full.setdefault(row.candidate, row.score)  # a repeat full evaluation is answered from the first
    spots: dict[str, E.SpotChecked] = {}
    for e in events:
        if isinstance(e, E.SpotChecked) and e.champion_score is not None:
            spots.setdefault(e.candidate, e)
    out = []
    for c in candidates:
        if c.seed or c.predicted is None:
            continue
        p = PredictionPoint(candidate=c.id, parent=c.parent or "", predicted=c.predicted, what=c.moves or c.origin)
        if c.id in full and c.parent in full:
            p.measured, p.basis = full[c.id] - full[c.parent], "full"
        elif c.id in spots:
            s = spots[c.id]
            p.measured, p.basis = s.score - s.champion_score, "spot"
        out.append(p)
    return out


def calibrate(points: list[PredictionPoint]) -> Calibration:
    cal = Calibration(proposals=len(points), points=points)
    done = [p for p in points if p.measured is not None]
    cal.measured = len(done)
    if not done:
        return cal
    pred = np.array([p.predicted for p in done])
    meas = np.array([p.measured for p in done])
    cal.by_full = sum(p.basis == "full" for p in done)
    cal.by_spot = sum(p.basis == "spot" for p in done)
    cal.worse = int((meas < -1e-12).sum())
    cal.better = int((meas > 1e-12).sum())
    cal.unchanged = cal.measured - cal.worse - cal.better
    cal.direction_right = int((_sign(pred) == _sign(meas)).sum())
    cal.mean_abs_error = float(np.abs(pred - meas).mean())
    cal.mean_predicted, cal.mean_measured = float(pred.mean()), float(meas.mean())
    cal.pearson = _correlation(pred, meas)
    cal.spearman = _correlation(_ranks(pred), _ranks(meas))
    for label, low, high in BINS:
        mask = (pred > low) & (pred <= high)
        if mask.any():
            cal.bins.append(CalibrationBin(label=label, n=int(mask.sum()), mean_predicted=float(pred[mask].mean()),
                                           mean_measured=float(meas[mask].mean()), worse=int((meas[mask] < -1e-12).sum())))
    return cal


def run_calibration(run) -> Calibration:  # run: report.data.RunData
    return calibrate(prediction_points(run.ledger, run.events, run.candidates))


def _sign(x: np.ndarray) -> np.ndarray:
    return np.where(x > 1e-12, 1, np.where(x < -1e-12, -1, 0))


def _correlation(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None  # undefined: a proposer that always predicts the same number has no correlation
    return float(np.corrcoef(x, y)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (Spearman's rho is Pearson's r of these)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


__all__ = ["BINS", "Calibration", "CalibrationBin", "PredictionPoint", "calibrate", "prediction_points",
           "run_calibration"]
