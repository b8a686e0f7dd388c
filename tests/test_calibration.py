"""Predicted vs measured score changes: the numbers come from the run's ledger and spot-check events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harnessopt.budget import Budget
from harnessopt.meta.protocol import ProtocolSettings
from harnessopt.report import write_report
from harnessopt.report.calibration import PredictionPoint, calibrate
from harnessopt.report.data import load_run
from test_optimize import GOOD, SLIGHT, WORSE
from test_protocol import full, run, screen


def write(code: str, predicted: float, parent: str | None = None) -> str:
    header = {"action": "write", "predicted": predicted, "hypothesis": f"predicted {predicted}",
              **({"parent": parent} if parent else {})}
    return json.dumps(header) + "\n```python\n" + code + "```\n"


def test_each_prediction_is_checked_against_its_full_or_spot_measurement(tmp_path):
    done = {"action": "finish", "note": "enough"}
    replies = [
        write(GOOD, 0.5), full("c0001"), done,                                 # +1.0 over its parent, promoted
        write(WORSE, 0.3), screen(["c0002"], ["search-1", "search-2"]), done,  # screened only: -1.0 vs the champion
        write(SLIGHT, -0.1, parent="c0000"), full("c0003"), done,              # 1 task in 30 over the seed, its parent
    ]
    result, _, _ = run(tmp_path, replies, budget=Budget(iterations=3, rollouts=400))
    cal = load_run(result.run_dir).summary.calibration
    points = {p.candidate: (p.predicted, p.basis, round(p.measured, 6)) for p in cal.points}
    assert points == {"c0001": (0.5, "full", 1.0), "c0002": (0.3, "spot", -1.0), "c0003": (-0.1, "full", 0.0333)}  # the ledger keeps 4 decimals
    assert (cal.proposals, cal.measured, cal.by_full, cal.by_spot) == (3, 3, 2, 1)
    assert (cal.worse, cal.better, cal.unchanged, cal.direction_right) == (1, 2, 0, 1)
    assert cal.worse_share == pytest.approx(1 / 3)
    assert cal.mean_abs_error == pytest.approx((0.5 + 1.3 + 0.1333) / 3)
    assert cal.pearson is not None and cal.spearman == pytest.approx(0.5)
    assert [(b.label, b.n) for b in cal.bins] == [("below 0", 1), ("0.1 to 0.3", 1), ("above 0.3", 1)]
    md = (write_report(result.run_dir, html=False, plots=False)["markdown"]).read_text()
    assert "## Predictions vs measured changes" in md
    assert "| c0002 | c0001 | write | +0.300 | -1.000 | spot |" in md


def test_constant_predictions_have_no_correlation_and_unmeasured_ones_are_counted():
    pts = [PredictionPoint(candidate=f"c{i}", predicted=0.0, measured=m, basis="full")
           for i, m in enumerate([0.1, -0.2, 0.0, -0.1])]
    pts.append(PredictionPoint(candidate="c9", predicted=0.2))  # never evaluated
    cal = calibrate(pts)
    assert (cal.proposals, cal.measured, cal.worse, cal.unchanged) == (5, 4, 2, 1)
    assert cal.pearson is None and cal.spearman is None  # a constant predictor (the random control)
    assert cal.direction_right == 1  # only the measured 0 matches a predicted 0
    assert calibrate([]).worse_share is None


def test_the_pooling_script_names_a_folder_that_is_not_an_experiment(tmp_path):
    script = Path(__file__).resolve().parents[1] / "bench" / "predictions.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                         env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert out.returncode != 0
    assert out.stderr.strip().splitlines()[-1] == f"{tmp_path}: not an experiment directory (no experiment.json); pass the folders of compare or the bench scripts"
