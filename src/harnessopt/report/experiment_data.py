"""An experiment directory's data: per-arm summaries over seeds, and paired comparisons of arms.

Reads each run through `data.load_run` (facts only); arms pair up when they differ in one factor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import Field

from harnessopt.records import Record
from harnessopt.report.calibration import Calibration, calibrate
from harnessopt.report.data import MetaBehaviour, RunData, is_run_dir, load_run
from harnessopt.stats import PairedArmTest, mean_ci, paired_arm_test


class ArmSummary(Record):
    name: str
    feedback: str
    meta: str
    task: str
    meta_label: str = ""
    task_label: str = ""
    same_model: bool = True
    seeds: list[int] = Field(default_factory=list)
    runs_finished: int = 0
    runs_total: int = 0
    champion_test: float | None = None
    champion_test_ci: tuple[float, float] | None = None
    seed_test: float | None = None
    improvement: float | None = None
    improvement_ci: tuple[float, float] | None = None
    rollouts_to_best: float | None = None
    usd_to_best: float | None = None
    rollouts: float = 0.0
    usd: float = 0.0
    candidates_proposed: int = 0
    promoted: int = 0
    behaviour: MetaBehaviour = Field(default_factory=MetaBehaviour)
    calibration: Calibration = Field(default_factory=Calibration)  # predictions of every finished seed, pooled


class ExperimentData(Record):
    path: str
    id: str
    spec: dict[str, Any]
    models: dict[str, dict[str, Any]]
    arms: list[ArmSummary]
    runs: dict[str, RunData]  # run id -> data (finished or not)
    run_arm: dict[str, str]  # run id -> arm name
    run_status: dict[str, str]
    comparisons: list[PairedArmTest]
    budget_text: str = ""


def load_experiment(path: str | Path) -> ExperimentData:
    path = Path(path)
    data = json.loads((path / "experiment.json").read_text(encoding="utf-8"))
    from harnessopt.comparison import GridSpec

    spec = GridSpec.model_validate(data["spec"])
    models = data.get("models") or {a: m.model_dump() for a, m in spec.model_specs().items()}
    runs: dict[str, RunData] = {}
    run_arm: dict[str, str] = {}
    status: dict[str, str] = {}
    for entry in data.get("runs", []):
        run_arm[entry["id"]] = entry["arm"]
        status[entry["id"]] = entry.get("status", "")
        rd = path / "runs" / entry["id"]
        if is_run_dir(rd):
            runs[entry["id"]] = load_run(rd)
    arms = []
    for arm in spec.arms():
        mine = [runs[r] for r, a in run_arm.items() if a == arm.name and r in runs]
        done = [r.summary for r in mine if r.summary.finished]
        s = ArmSummary(name=arm.name, feedback=arm.feedback, meta=arm.meta, task=arm.task,
                       meta_label=models.get(arm.meta, {}).get("label", arm.meta),
                       task_label=models.get(arm.task, {}).get("label", arm.task), same_model=arm.same_model,
                       seeds=sorted(x.seed for x in done), runs_finished=len(done),
                       runs_total=sum(1 for a in run_arm.values() if a == arm.name))
        tests = [x.champion_test for x in done if x.champion_test is not None]
        if tests:
            m, lo, hi = mean_ci(tests)
            s.champion_test, s.champion_test_ci = m, (lo, hi)
        seeds_ = [x.seed_test for x in done if x.seed_test is not None]
        s.seed_test = sum(seeds_) / len(seeds_) if seeds_ else None
        imps = [x.improvement for x in done if x.improvement is not None]
        if imps:
            m, lo, hi = mean_ci(imps)
            s.improvement, s.improvement_ci = m, (lo, hi)
        rtb = [x.rollouts_to_best for x in done if x.rollouts_to_best is not None]
        s.rollouts_to_best = sum(rtb) / len(rtb) if rtb else None
        utb = [x.usd_to_best for x in done if x.usd_to_best is not None]
        s.usd_to_best = sum(utb) / len(utb) if utb else None
        s.rollouts = sum(x.rollouts for x in done) / len(done) if done else 0.0
        s.usd = sum(x.task_usd + x.meta_usd for x in done) / len(done) if done else 0.0
        s.candidates_proposed = sum(x.candidates_proposed for x in done)
        s.promoted = sum(x.promoted for x in done)
        for x in done:
            s.behaviour.add(x.behaviour)
        s.calibration = calibrate([p for x in done for p in x.calibration.points])
        arms.append(s)
    comparisons = []
    by_name = {a.name: a for a in spec.arms()}
    for a, b in arm_pairs(list(by_name.values())):
        comparisons.append(paired_arm_test(
            _test_table(runs, run_arm, a.name), _test_table(runs, run_arm, b.name),
            arm_a=a.name, arm_b=b.name, budget_text=spec.budget_text()))
    return ExperimentData(path=str(path), id=data.get("id", path.name), spec=data["spec"], models=models,
                          arms=arms, runs=runs, run_arm=run_arm, run_status=status, comparisons=comparisons,
                          budget_text=spec.budget_text())


def arm_pairs(arms: list[Any]) -> list[tuple[Any, Any]]:
    """Arm pairs that differ in one factor: feedback mode (same pairing), or the meta model for the
    same task model and feedback (same-model vs cross-model with the task side held fixed)."""
    order = {"traces": 0, "summary": 1, "scores": 2}
    out = []
    for i, a in enumerate(arms):
        for b in arms[i + 1:]:
            if a.meta == b.meta and a.task == b.task and a.feedback != b.feedback:
                x, y = sorted((a, b), key=lambda arm: order.get(arm.feedback, 9))
                out.append((x, y))
            elif a.feedback == b.feedback and a.task == b.task and a.meta != b.meta:
                x, y = (a, b) if a.same_model or not b.same_model else (b, a)
                out.append((x, y))
    return out


def _test_table(runs: dict[str, RunData], run_arm: dict[str, str], arm: str) -> dict[tuple[str, str], float]:
    out = {}
    for rid, a in run_arm.items():
        if a != arm or rid not in runs or not runs[rid].summary.finished:
            continue
        s = runs[rid].summary
        for task, score in s.champion_test_tasks.items():
            out[(str(s.seed), task)] = score
    return out
