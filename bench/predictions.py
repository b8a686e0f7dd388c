"""How well the meta-agent's predicted score changes match the measured ones, pooled over experiments.

Run from the repo root over experiment folders (of `harnessopt compare` or the bench scripts):
    python bench/predictions.py traces/bench/<experiment> ...

Every proposal carries the proposer's predicted change of the search score; `report/calibration.py`
measures the change it made (full search score minus its parent's, or its screen against the
champion's on the same tasks). `harnessopt report` shows that per arm of one experiment; this script
pools every finished run of the same arm name and evaluation policy across several experiments (one
seed per experiment, as the bench scripts run them) and prints one row per group and one for all:
the share of measured edits that made things worse, the share whose direction was predicted right,
the correlations, the mean absolute error, and a calibration table by bins of the prediction.
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from harnessopt.comparison import experiment_spec  # noqa: E402
from harnessopt.errors import UsageError  # noqa: E402
from harnessopt.report.calibration import Calibration, PredictionPoint, calibrate  # noqa: E402
from harnessopt.report.experiment_data import load_experiment  # noqa: E402


def fmt(x: float | None, signed: bool = False) -> str:
    return "-" if x is None else f"{x:+.2f}" if signed else f"{x:.2f}"


def row(name: str, runs: int, c: Calibration) -> str:
    return (f"| {name} | {runs} | {c.proposals} | {c.measured} ({c.by_full} full, {c.by_spot} screen) | "
            f"{c.worse} ({fmt(c.worse_share)}) | {c.better} / {c.unchanged} | {c.direction_right} ({fmt(c.direction_share)}) | "
            f"{fmt(c.pearson, True)} / {fmt(c.spearman, True)} | {fmt(c.mean_abs_error)} | "
            f"{fmt(c.mean_predicted, True)} / {fmt(c.mean_measured, True)} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiments", nargs="+", type=Path)
    args = p.parse_args()
    points: dict[str, list[PredictionPoint]] = defaultdict(list)
    runs: dict[str, int] = defaultdict(int)
    for exp in args.experiments:
        try:
            policy = experiment_spec(exp).eval_policy
        except UsageError as exc:
            raise SystemExit(f"{exc}; pass the folders of compare or the bench scripts") from None
        for arm in load_experiment(exp).arms:
            if arm.runs_finished and arm.calibration.proposals:
                key = f"{arm.name} ({policy})"
                points[key] += arm.calibration.points
                runs[key] += arm.runs_finished
    if not points:
        raise SystemExit("no finished run with predictions among these experiments (the random control predicts nothing)")
    print("| arm (policy) | runs | proposals | measured | made worse | better / unchanged | direction right "
          "| Pearson / Spearman | mean abs error | mean predicted / measured |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted(points):
        print(row(key, runs[key], calibrate(points[key])))
    everything = calibrate([q for key in points for q in points[key]])
    if len(points) > 1:
        print(row("all", sum(runs.values()), everything))
    print("\nCalibration, all runs (bins of the predicted change):\n")
    print("| predicted | proposals | mean predicted | mean measured | made worse |")
    print("|---|---:|---:|---:|---:|")
    for b in everything.bins:
        print(f"| {b.label} | {b.n} | {b.mean_predicted:+.2f} | {b.mean_measured:+.2f} | {b.worse} |")


if __name__ == "__main__":
    main()
