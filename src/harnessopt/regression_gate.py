"""A regression gate for a harness change: `harnessopt gate`, `harnessopt.gate()`, `assert_no_regression()`.

Both harnesses run on the same tasks and trials in one run directory (kind "gate"); rollouts
already made for the same code, model and parameters are reused (identical code within the run,
and successful rollouts of earlier runs under the same `--out`, see rollout_reuse.py). The two
are then compared with the project's paired test over tasks (stats.paired_arm_test: a sign-flip
permutation p-value and a bootstrap interval of the mean difference, candidate - baseline).

Verdict: "better" or "worse" only when the difference is distinguishable from noise (p below
alpha and the 95% CI excluding 0), otherwise "no difference". The gate fails (`passed` False,
exit 1) when the candidate is worse and the whole interval lies below `-max_drop`, or when it
cannot judge: every rollout of one side failed, so a score of 0 would say nothing about the code.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable, Literal

from pydantic import Field

from harnessopt.benchmark import Benchmark, load_benchmark
from harnessopt.evaluation import Evaluator, check_tasks, package_versions
from harnessopt.harness import HarnessFile, load_harness
from harnessopt.llm import Gateway, preflight_gateway
from harnessopt.options import GateOptions, build
from harnessopt.records import EvalResult, ModelParams, Record, RolloutTrace, Usage
from harnessopt.rollout_reuse import reuse_earlier_rollouts
from harnessopt.stats import paired_arm_test
from harnessopt.store import LedgerRow, RunStore

Verdict = Literal["better", "no difference", "worse"]
SIDES = ("baseline", "candidate")  # candidate ids in the gate's run directory


class GateSide(Record):
    """One harness's evaluation inside a gate."""

    harness: str
    harness_hash: str
    score: float
    ci_low: float
    ci_high: float
    n_rollouts: int
    n_failed: int  # errors (scorer errors included) and timeouts
    ran: int  # rollouts run now
    reused: int  # rollouts reused: identical code in this run, or an earlier run under --out
    errors_sample: list[str] = Field(default_factory=list)


class GateResult(Record):
    verdict: Verdict
    passed: bool
    reason: str  # one line: the verdict in words, or why the gate cannot judge
    mean_diff: float  # candidate - baseline, mean over tasks of per-task means over trials
    ci_low: float
    ci_high: float
    p_value: float
    alpha: float
    max_drop: float
    benchmark: str
    split: str
    model: str
    n_tasks: int
    trials: int
    baseline: GateSide
    candidate: GateSide
    run_dir: str


def judge(base: EvalResult, cand: EvalResult, *, max_drop: float = 0.0, alpha: float = 0.05,
          seed: int = 0) -> tuple[Verdict, bool, str, Any]:
    """Verdict, pass/fail, the reason in one line, and the paired test (candidate vs baseline)."""
    table = {s: {("0", t.task_id): t.mean for t in r.tasks} for s, r in (("b", base), ("c", cand))}
    test = paired_arm_test(table["c"], table["b"], arm_a="candidate", arm_b="baseline", alpha=alpha, seed=seed)
    verdict: Verdict = "no difference"
    if test.distinguishable:
        verdict = "better" if test.mean_diff > 0 else "worse"
    numbers = (f"candidate {cand.score:.3f} vs baseline {base.score:.3f}: {test.mean_diff:+.3f} "
               f"(95% CI {test.ci_low:+.3f}..{test.ci_high:+.3f}, p = {test.p_value:.3g}, {test.n_pairs} tasks "
               f"x {cand.trials} trial(s))")
    for side, r in (("baseline", base), ("candidate", cand)):
        if r.n_rollouts and r.n_errors + r.n_timeouts == r.n_rollouts:
            first = f"; first: {r.errors_sample[0]}" if r.errors_sample else ""
            return verdict, False, f"cannot judge: every {side} rollout failed{first}", test
    if verdict == "worse" and test.ci_high < -max_drop:
        beyond = f"by more than the tolerated drop {max_drop:g}" if max_drop else "(no drop tolerated)"
        return verdict, False, f"worse: {numbers}; significantly worse {beyond}", test
    if verdict == "worse":
        return verdict, True, f"worse but tolerated: {numbers}; the drop is not clearly beyond --max-drop {max_drop:g}", test
    if verdict == "better":
        return verdict, True, f"better: {numbers}", test
    return verdict, True, f"no difference: {numbers}; not distinguishable from noise", test


def _side(harness: HarnessFile, result: EvalResult) -> GateSide:
    return GateSide(harness=harness.path, harness_hash=harness.hash, score=result.score, ci_low=result.ci_low,
                    ci_high=result.ci_high, n_rollouts=result.n_rollouts,
                    n_failed=result.n_errors + result.n_timeouts, ran=result.n_rollouts - result.n_cached,
                    reused=result.n_cached, errors_sample=result.errors_sample)


async def gate_async(baseline: str | Path | HarnessFile, candidate: str | Path | HarnessFile,
                     benchmark: str | Path | Benchmark, *, gateway: Gateway | None = None,
                     progress: Callable[[RolloutTrace], None] | None = None, run_id: str | None = None,
                     alpha: float = 0.05, **options: Any) -> GateResult:
    """Evaluate `baseline` and `candidate` on the same tasks and judge the change.

    `options` are GateOptions' fields (split, limit, trials, task_model, max_drop, out, data,
    seed, temperature, max_tokens, timeout_s, concurrency, reuse), validated like the CLI's flags.
    Bad input raises a UserError before any run directory is made.
    """
    harnesses = {side: h if isinstance(h, HarnessFile) else load_harness(h)
                 for side, h in zip(SIDES, (baseline, candidate), strict=True)}
    name = benchmark.name if isinstance(benchmark, Benchmark) else str(benchmark)
    opts: GateOptions = build(GateOptions, {"baseline": harnesses["baseline"].path,
                                            "candidate": harnesses["candidate"].path, "benchmark": name, **options})
    bench = benchmark if isinstance(benchmark, Benchmark) else load_benchmark(name, data=opts.data, seed=opts.seed)
    preflight_gateway(gateway, opts.task_model)
    tasks = bench.tasks(opts.split, limit=opts.limit)
    check_tasks(bench.name, opts.split, tasks)
    params = ModelParams(temperature=opts.temperature, max_tokens=opts.max_tokens, seed=opts.seed)
    store = RunStore.create(opts.out, {
        "kind": "gate", "baseline": harnesses["baseline"].path, "candidate": harnesses["candidate"].path,
        "harness_hashes": {s: h.hash for s, h in harnesses.items()}, "benchmark": bench.name,
        "benchmark_fingerprint": bench.fingerprint, "split": opts.split, "limit": opts.limit, "trials": opts.trials,
        "task_model": opts.task_model, "params": params.model_dump(), "max_drop": opts.max_drop,
        "seed": opts.seed, "versions": package_versions(),
    }, run_id=run_id, label=f"gate-{bench.name}")
    try:
        evaluator = Evaluator(bench, store, model=opts.task_model, params=params, gateway=gateway,
                              concurrency=opts.concurrency, timeout_s=opts.timeout_s)
        results: dict[str, EvalResult] = {}
        try:
            for side, harness in harnesses.items():
                evaluator.register_candidate(harness, side, origin=harness.path)
                if opts.reuse:
                    reuse_earlier_rollouts(store, evaluator, harness, side, tasks, opts.trials, opts.split,
                                           Path(opts.out))
                r = await evaluator.evaluate(harness, side, tasks, trials=opts.trials, split=opts.split,
                                             progress=progress)
                # The ledger says what ran now: rollouts copied from earlier runs cost nothing here.
                r.charged, r.reused = r.n_rollouts - r.n_cached, r.n_cached
                r.usage = Usage()
                for trace in store.rollouts(side):
                    if trace.reused_from is None:
                        r.usage.add(trace.usage)
                results[side] = r
                store.append_ledger(LedgerRow.for_eval(r, kind="eval", decision="eval", note=f"gate {side}"))
        finally:
            await evaluator.close()
        verdict, passed, reason, test = judge(results["baseline"], results["candidate"], max_drop=opts.max_drop,
                                              alpha=alpha, seed=opts.seed)
        gate_result = GateResult(
            verdict=verdict, passed=passed, reason=reason, mean_diff=test.mean_diff, ci_low=test.ci_low,
            ci_high=test.ci_high, p_value=test.p_value, alpha=alpha, max_drop=opts.max_drop, benchmark=bench.name,
            split=opts.split, model=opts.task_model, n_tasks=len(tasks), trials=opts.trials,
            baseline=_side(harnesses["baseline"], results["baseline"]),
            candidate=_side(harnesses["candidate"], results["candidate"]), run_dir=str(store.path),
        )
        store.update_info(result=gate_result.model_dump(), finished=True)
    finally:
        store.close()
    return gate_result


def gate(baseline: str | Path | HarnessFile, candidate: str | Path | HarnessFile,
         benchmark: str | Path | Benchmark, **kwargs: Any) -> GateResult:
    """Synchronous `gate_async`."""
    return asyncio.run(gate_async(baseline, candidate, benchmark, **kwargs))


def assert_no_regression(baseline: str | Path | HarnessFile, candidate: str | Path | HarnessFile,
                         benchmark: str | Path | Benchmark, **kwargs: Any) -> GateResult:
    """For a project's own tests: fail (AssertionError, with the verdict and the run directory)
    when the candidate is significantly worse than the baseline by more than `max_drop`, or when
    the gate cannot judge. Returns the GateResult otherwise.

        def test_prompt_change_does_not_regress():
            assert_no_regression("harness_main.py", "harness.py", "home_intents", limit=20)

    (In an async test, `await gate_async(...)` and assert on `.passed`.)
    """
    result = gate(baseline, candidate, benchmark, **kwargs)
    if not result.passed:
        raise AssertionError(f"harness regression gate failed: {result.reason} (traces: {result.run_dir})")
    return result


def print_gate_result(result: GateResult) -> None:
    """The gate's table and verdict line on stdout (the CLI's non-JSON output)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gate: {result.benchmark} / {result.split} / {result.model}")
    for column in ("side", "harness", "score", "95% CI", "failed", "ran", "reused"):
        table.add_column(column, justify="left" if column in ("side", "harness") else "right")
    for side in SIDES:
        s: GateSide = getattr(result, side)
        table.add_row(side, s.harness, f"{s.score:.3f}", f"{s.ci_low:.3f}-{s.ci_high:.3f}",
                      f"{s.n_failed}/{s.n_rollouts}", str(s.ran), str(s.reused))
    console = Console() if Console().is_terminal else Console(width=160)
    console.print(table)
    console.print(f"{'PASS' if result.passed else 'FAIL'}: {result.reason}", markup=False, highlight=False)
    console.print(f"run directory: {result.run_dir}", markup=False, highlight=False)


__all__ = ["GateResult", "GateSide", "assert_no_regression", "gate", "gate_async", "judge", "print_gate_result"]
