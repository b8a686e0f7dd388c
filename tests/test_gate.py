"""The regression gate with a stub model: verdicts, exit codes, reuse of earlier rollouts, the pytest helper."""

import asyncio
import json

import pytest

from harnessopt import assert_no_regression, gate_async
from harnessopt.benchmark import Benchmark
from harnessopt.cli import main
from harnessopt.records import EvalResult, TaskResult
from harnessopt.regression_gate import judge
from harnessopt.store import RunStore
from stubs import StubGateway

N_TASKS = 12
GOOD = 'async def run(task, ctx):\n    return (await ctx.complete("label " + task.input)).strip()\n'
BAD = 'async def run(task, ctx):\n    await ctx.complete("label " + task.input)\n    return "nonsense"\n'
CRASH = 'async def run(task, ctx):\n    raise RuntimeError("harness bug")\n'


def lights_model(prompt: str) -> str:
    return " lights_on" if "lights" in prompt else " nonsense"


def lights_benchmark() -> Benchmark:
    def items(split, n):
        return [{"id": f"{split}{i}", "input": f"lights please {i}", "target": "lights_on"} for i in range(n)]
    return Benchmark.from_records("lights", train=items("r", 2), search=items("s", 2), test=items("t", N_TASKS),
                                  scorer="label")


def harness(tmp_path, name, code):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    return str(path)


def run_gate(tmp_path, baseline, candidate, gateway=None, **kw):
    gateway = gateway or StubGateway(lights_model)
    kw.setdefault("out", str(tmp_path / "traces"))
    result = asyncio.run(gate_async(harness(tmp_path, "baseline", baseline), harness(tmp_path, "candidate", candidate),
                                    lights_benchmark(), gateway=gateway, **kw))
    return result, gateway


def eval_result(scores, *, failed=0):
    tasks = [TaskResult(task_id=f"t{i}", scores=[s]) for i, s in enumerate(scores)]
    mean = sum(scores) / len(scores)
    return EvalResult(run_dir="r", candidate_id="c", harness_path="h.py", harness_hash="x", benchmark="b",
                      split="test", model="m", n_tasks=len(scores), trials=1, score=mean, ci_low=mean, ci_high=mean,
                      n_rollouts=len(scores), n_errors=failed, n_timeouts=0, tasks=tasks)


# --------------------------------------------------------------------------- the verdict


def test_judge_fails_only_a_significant_drop_beyond_the_tolerance():
    base = eval_result([1.0] * 12)
    worse = eval_result([0.0] * 6 + [1.0] * 6)  # -0.5, every non-zero pair one way: p = 2/64
    verdict, passed, reason, test = judge(base, worse)
    assert (verdict, passed) == ("worse", False) and test.ci_high < 0 and test.p_value < 0.05
    assert reason.startswith("worse:") and "-0.500" in reason
    verdict, passed, reason, _ = judge(base, worse, max_drop=0.9)  # a drop of 0.5 is within 0.9
    assert (verdict, passed) == ("worse", True) and reason.startswith("worse but tolerated")
    verdict, passed, reason, _ = judge(worse, base)
    assert (verdict, passed) == ("better", True) and reason.startswith("better:")


def test_judge_calls_a_small_difference_noise_and_an_all_failed_side_unjudgeable():
    base = eval_result([1.0] * 12)
    slightly = eval_result([0.0] + [1.0] * 11)  # one task differs: p = 1
    verdict, passed, reason, test = judge(base, slightly)
    assert (verdict, passed) == ("no difference", True) and test.p_value == 1.0
    assert "not distinguishable from noise" in reason
    broken = eval_result([0.0] * 12, failed=12)
    assert judge(broken, broken)[1:3] == (False, "cannot judge: every baseline rollout failed")
    assert judge(base, broken)[1] is False


# --------------------------------------------------------------------------- gate runs


def test_a_worse_candidate_fails_and_a_better_one_passes_in_one_run_directory(tmp_path):
    result, gateway = run_gate(tmp_path, GOOD, BAD)
    assert result.verdict == "worse" and result.passed is False
    assert (result.baseline.score, result.candidate.score) == (1.0, 0.0) and result.mean_diff == -1.0
    assert result.n_tasks == N_TASKS and result.p_value < 0.001 and result.ci_high < 0
    assert (result.baseline.ran, result.candidate.ran) == (N_TASKS, N_TASKS) and gateway.usage.calls == 2 * N_TASKS
    store = RunStore.open(result.run_dir)
    assert store.info()["kind"] == "gate" and store.info()["result"]["verdict"] == "worse"
    assert [(r.candidate, r.note) for r in store.ledger()] == [("baseline", "gate baseline"),
                                                               ("candidate", "gate candidate")]
    assert {m.id for m in store.candidates()} == {"baseline", "candidate"}

    reverse, _ = run_gate(tmp_path / "rev", BAD, GOOD)
    assert reverse.verdict == "better" and reverse.passed is True


def test_identical_code_is_run_once_and_makes_no_difference(tmp_path):
    result, gateway = run_gate(tmp_path, GOOD, GOOD)
    assert result.verdict == "no difference" and result.passed and result.mean_diff == 0.0
    assert result.candidate.ran == 0 and result.candidate.reused == N_TASKS and gateway.usage.calls == N_TASKS


def test_a_second_gate_reuses_the_first_ones_successful_rollouts(tmp_path):
    first, _ = run_gate(tmp_path, GOOD, BAD)
    second, gateway = run_gate(tmp_path, GOOD, BAD)
    assert gateway.usage.calls == 0 and second.baseline.ran == second.candidate.ran == 0
    assert second.candidate.reused == N_TASKS and second.verdict == first.verdict
    first_id = RunStore.open(first.run_dir).run_id
    traces = RunStore.open(second.run_dir).rollouts("baseline")
    assert len(traces) == N_TASKS and all(t.reused_from == f"{first_id}/baseline" for t in traces)
    assert [(r.charged, r.tokens) for r in RunStore.open(second.run_dir).ledger()] == [(0, 0), (0, 0)]  # nothing ran
    assert all(r.charged == N_TASKS and r.tokens > 0 for r in RunStore.open(first.run_dir).ledger())
    fresh, gateway = run_gate(tmp_path, GOOD, BAD, reuse=False)
    assert gateway.usage.calls == 2 * N_TASKS and fresh.baseline.reused == 0


def test_failed_rollouts_are_run_again_and_a_crashing_baseline_cannot_be_judged(tmp_path):
    first, _ = run_gate(tmp_path, CRASH, GOOD)
    assert first.passed is False and first.reason.startswith("cannot judge: every baseline rollout failed")
    assert "RuntimeError: harness bug" in first.reason
    again, _ = run_gate(tmp_path, CRASH, GOOD)
    assert again.baseline.ran == N_TASKS and again.baseline.reused == 0  # errors are never reused
    assert again.candidate.reused == N_TASKS


def test_assert_no_regression_raises_with_the_verdict_and_returns_the_result(tmp_path, monkeypatch):
    import harnessopt.regression_gate as rg

    real = rg.gate_async

    async def with_stub(*args, **kw):
        return await real(*args, gateway=StubGateway(lights_model), **kw)

    monkeypatch.setattr(rg, "gate_async", with_stub)
    good, bad = harness(tmp_path, "good", GOOD), harness(tmp_path, "bad", BAD)
    with pytest.raises(AssertionError, match=r"harness regression gate failed: worse: candidate 0.000 vs baseline 1.000"):
        assert_no_regression(good, bad, lights_benchmark(), out=str(tmp_path / "t"))
    assert assert_no_regression(bad, good, lights_benchmark(), out=str(tmp_path / "t")).verdict == "better"


def test_bad_options_are_one_line_errors_before_any_run_directory(tmp_path, capsys):
    from harnessopt.errors import UsageError

    with pytest.raises(UsageError, match="max_drop: must be at least 0"):
        run_gate(tmp_path, GOOD, BAD, max_drop=-0.1)
    with pytest.raises(UsageError, match="trails: not an option"):
        run_gate(tmp_path, GOOD, BAD, trails=2)
    assert not (tmp_path / "traces").exists()
    good = harness(tmp_path, "good", GOOD)
    for argv, expected in (
        (["gate", "--baseline", good, "--benchmark", "home_intents"], "the following arguments are required: --candidate"),
        (["gate", "--baseline", good, "--candidate", good, "--benchmark", "home_intents", "--max-drop", "-1"],
         "argument --max-drop: must be at least 0"),
        (["gate", "--baseline", good, "--candidate", str(tmp_path / "missing.py"), "--benchmark", "home_intents",
          "--out", str(tmp_path / "o")], "missing.py: harness file not found"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_gate_json_output_is_the_result_record(tmp_path, capsys, monkeypatch):
    import harnessopt.regression_gate as rg

    real = rg.gate_async

    async def with_stub(*args, **kw):
        return await real(*args, gateway=StubGateway(lights_model), **kw)

    monkeypatch.setattr(rg, "gate_async", with_stub)
    monkeypatch.setattr("harnessopt.benchmark.load_benchmark", lambda *a, **k: lights_benchmark())
    good, bad = harness(tmp_path, "good", GOOD), harness(tmp_path, "bad", BAD)
    code = main(["gate", "--baseline", good, "--candidate", bad, "--benchmark", "home_intents", "--out",
                 str(tmp_path / "t"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["verdict"] == "worse" and out["passed"] is False and out["n_tasks"] == N_TASKS
    code = main(["gate", "--baseline", bad, "--candidate", good, "--benchmark", "home_intents", "--out",
                 str(tmp_path / "t")])
    text = capsys.readouterr().out
    assert code == 0 and "PASS: better: candidate 1.000 vs baseline 0.000" in text
