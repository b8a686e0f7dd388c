"""The `sample` arm of compare: K samples of the seed harness per test task, majority vote (stub model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harnessopt.benchmark import Benchmark
from harnessopt.budget import Budget
from harnessopt.comparison import compare, make_grid
from harnessopt.errors import UsageError
from harnessopt.report import write_report
from harnessopt.report.experiment_data import load_experiment
from harnessopt.sampling import majority
from scripted import ScriptedProposer
from stubs import StubGateway
from test_compare import inline

LABELS = ["alpha", "beta", "gamma"]
SEED = 'async def run(task, ctx):\n    return (await ctx.complete(task.input)).strip()\n'


class SeededGateway(StubGateway):
    """Answers the label named in the prompt, except for model seeds divisible by 3 (then a wrong one)."""

    async def complete(self, model, prompt, params=None, **_):
        self.reply = lambda text: text.split()[0] if (params.seed or 0) % 3 else "gamma" if "gamma" not in text else "beta"
        return await self._answer(model, prompt)


def label_benchmark() -> Benchmark:
    def items(split, n):
        return [{"id": f"{split}-{i}", "input": f"{LABELS[i % 3]} item {i}", "target": LABELS[i % 3]} for i in range(n)]
    return Benchmark.from_records("labels3", train=items("train", 6), search=items("search", 10),
                                  test=items("test", 10), scorer="label", labels=LABELS)


def test_majority_vote_compares_what_the_scorer_compares():
    assert majority(["beta", "alpha.", "The answer: alpha", "beta"], "label", LABELS) == ("beta", 2)  # tie: first seen
    assert majority(["I think gamma", "gamma", "alpha"], "label", LABELS) == ("gamma", 2)
    assert majority(["no idea", "alpha", "???"], "label", LABELS) == ("alpha", 1)  # answers without a label abstain
    assert majority(["so 12", "#### 12.0", "7"], "numeric", None) == ("12", 2)
    assert majority(["nothing", "at all"], "label", LABELS) == ("nothing", 2)  # no sample has a label


def test_the_sample_arm_spends_the_optimize_runs_rollouts_on_test_samples(tmp_path):
    harness = tmp_path / "seed.py"
    harness.write_text(SEED)
    spec = make_grid(harness=str(harness), benchmark="labels3", feedback="traces,scores", seeds=1,
                     models={"A": "local/gemma-3-270m", "S": "sample"}, pairs="A:A,S:A", out=str(tmp_path / "exp"),
                     budget=Budget(iterations=1, rollouts=40), parallel=1, sample_temperature=0.8)
    assert [a.name for a in spec.arms()] == ["traces-A-A", "traces-S-A", "scores-A-A"]  # one sample arm
    result = compare(spec, benchmark=label_benchmark(), executor_factory=inline,
                     gateway_factory=lambda e, c: SeededGateway(), proposer_factory=lambda e, c: ScriptedProposer([[]]))
    assert result.finished
    run_dir = Path(next(r.run_dir for r in result.runs if r.arm == "traces-S-A"))
    info = json.loads((run_dir / "run.json").read_text())
    s = info["sampling"]
    # K = (40 search rollouts + 2 x 10 test tasks) // 10 test tasks = 6; model seeds 0..5 at temperature 0.8
    assert (s["k"], s["rollouts"], s["temperature"], info["config"]["temperature"]) == (6, 60, 0.8, 0.8)
    assert (s["majority"], s["pass_k"]) == (1.0, 1.0) and s["pass1"] == pytest.approx(4 / 6)
    rows = [line.split("\t") for line in (run_dir / "ledger.tsv").read_text().splitlines()[1:]]
    assert [(r[3], r[5], r[6], r[8]) for r in rows] == [("test", "10", "6", "60")]
    # The greedy optimize run (model seed 0: always wrong) scores 0; the vote beats it, paired over tasks.
    exp = load_experiment(result.experiment_dir)
    arms = {a.name: a for a in exp.arms}
    assert arms["traces-S-A"].champion_test == 1.0 and arms["traces-A-A"].champion_test == 0.0
    versus = next(c for c in exp.comparisons if {c.arm_a, c.arm_b} == {"traces-A-A", "traces-S-A"})
    assert versus.n_pairs == 10 and abs(versus.mean_diff) == 1.0
    md = write_report(result.experiment_dir, html=False, plots=False)["markdown"].read_text()
    assert "## Sampling control" in md and "| traces-S-A-seed0 | 6 | 0.8 | 60 | 1.000 | 0.667 | 1.000 |" in md
    # Resuming a finished experiment runs nothing again.
    again = compare(resume=result.experiment_dir, benchmark=label_benchmark(), executor_factory=inline,
                    gateway_factory=lambda e, c: pytest.fail("no model call on a finished experiment"),
                    proposer_factory=lambda e, c: ScriptedProposer([[]]))
    assert again.finished


def test_the_sample_arm_needs_a_rollout_budget_and_is_never_a_task_model(tmp_path):
    harness = tmp_path / "seed.py"
    harness.write_text(SEED)
    with pytest.raises(UsageError, match="meta-side proposer"):
        make_grid(harness=str(harness), benchmark="labels3", pairs="A:sample", models={"A": "local/gemma-3-270m"})
    spec = make_grid(harness=str(harness), benchmark="labels3", pairs="sample:A", models={"A": "local/gemma-3-270m"},
                     out=str(tmp_path / "exp"), seeds=1, feedback="traces", budget=Budget(rollouts=None))
    result = compare(spec, benchmark=label_benchmark(), executor_factory=inline,
                     gateway_factory=lambda e, c: SeededGateway())
    assert "give --max-rollouts" in result.runs[0].error
