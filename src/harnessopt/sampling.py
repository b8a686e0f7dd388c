"""The `sample` arm of an experiment: no optimization, the seed harness sampled K times per test task.

A budget-matched control for optimizing: instead of spending rollouts on a search, spend them on
the held-out test tasks directly. K is chosen so that the arm's test rollouts equal what an
optimize run of the same experiment may spend in all (its search budget plus the test evaluations
of the seed and the final champion):

    K = (max_rollouts + 2 x test tasks x trials) // test tasks

The K samples run at `--sample-temperature` (greedy samples would all be the same). Reported:

- majority vote (the arm's score, the "champion test" of its run): per task, the answers are
  reduced to what the scorer compares (the label, the final number, else the normalised text),
  the most frequent one wins (ties: the one that came first), and that answer is scored. It uses
  no test label, so it is a deployable answer;
- pass@1: the mean score of single samples (the run's "seed test");
- pass@K: a task counts when any sample scores 1. It picks by the test labels (an oracle), so it
  is reported as such, never as the arm's score.

The run directory is an ordinary one (kind `sample`: the seed harness as `c0000`, one `test`
ledger row with K trials, every sample's rollout file); the votes are in run.json under
`sampling`. No search split is run, so the result's search scores are 0 and it has no search
rollouts. Resuming reuses every sample already on disk.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from harnessopt.benchmark import Benchmark, load_benchmark
from harnessopt.budget import Spend
from harnessopt.errors import UsageError
from harnessopt.evaluation import Evaluator, check_tasks, package_versions
from harnessopt.harness import load_harness
from harnessopt.llm import Gateway, preflight_gateway
from harnessopt.options import OptimizeConfig
from harnessopt.records import ModelParams, Record, RolloutTrace
from harnessopt.runner import LocalProcessExecutor
from harnessopt.scorers import extract_number, match_label, normalize_text
from harnessopt.stats import mean_ci
from harnessopt.store import LedgerRow, RunStore

SAMPLE_ARM = "sample"  # the meta-side name of this arm in --models / --pairs
SAMPLE_LABEL = "no optimization: the seed harness sampled K times per test task, majority vote"
K_RULE = "K = (max_rollouts + 2 x test tasks x trials) // test tasks"


class TaskVote(Record):
    task_id: str
    samples: int
    vote: str  # the voted answer, as scored
    votes_for: int  # samples that gave it
    score: float  # the voted answer's score
    pass1: float  # mean score of the samples
    pass_k: float  # 1.0 when any sample scored 1 (an oracle: uses the test label)


class SamplingSummary(Record):
    k: int
    temperature: float
    rule: str = K_RULE
    test_tasks: int
    rollouts: int  # test rollouts charged
    majority: float
    pass1: float
    pass_k: float
    votes: list[TaskVote]


def samples_per_task(config: OptimizeConfig, n_test: int) -> int:
    if config.budget.rollouts is None:
        raise UsageError("the sample arm matches an optimize run's rollouts: give --max-rollouts")
    return max(1, (config.budget.rollouts + 2 * n_test * config.trials) // n_test)


def vote_key(answer: str | None, scorer: str, labels: list[str] | None) -> tuple[Any, str] | None:
    """What the scorer compares in an answer, and the answer text that stands for it (None: nothing)."""
    text = "" if answer is None else str(answer)
    if labels and scorer == "label":
        found = match_label(text, labels)
        return (found[0], found[0]) if found else None
    if scorer == "numeric":
        got = extract_number(text)
        return (got[0], got[1]) if got else None
    norm = normalize_text(text)
    return (norm, text) if norm else None


def majority(answers: list[str | None], scorer: str, labels: list[str] | None) -> tuple[str, int]:
    """The most frequent answer (by what the scorer compares; ties: the first seen) and its count.
    Answers without a label or number take part only if no sample has one."""
    keys = [vote_key(a, scorer, labels) for a in answers]
    counted = Counter(k[0] for k in keys if k is not None)
    if not counted:
        return ("" if not answers or answers[0] is None else str(answers[0])), len(answers)
    first = {}
    for k in keys:
        if k is not None:
            first.setdefault(k[0], k[1])
    best = max(counted, key=lambda v: (counted[v], -list(first).index(v)))
    return first[best], counted[best]


def tally(bench: Benchmark, tasks: list, traces: list[RolloutTrace]) -> list[TaskVote]:
    by_task: dict[str, list[RolloutTrace]] = {}
    for t in sorted(traces, key=lambda t: t.trial):
        by_task.setdefault(t.task_id, []).append(t)
    out = []
    for task in tasks:
        mine = by_task.get(task.id, [])
        if not mine:
            continue
        vote, n = majority([t.answer for t in mine], bench.spec.scorer.name, bench.labels)
        scores = [t.score for t in mine]
        out.append(TaskVote(task_id=task.id, samples=len(mine), vote=vote, votes_for=n,
                            score=bench.score(task, vote).value, pass1=sum(scores) / len(scores),
                            pass_k=1.0 if max(scores) >= 1.0 else 0.0))
    return out


async def run_sample_async(config: OptimizeConfig | None = None, *, resume: str | Path | None = None,
                           benchmark: Benchmark | None = None, gateway: Gateway | None = None,
                           executor: Any = None, progress: Callable[[str], None] | None = None,
                           run_id: str | None = None, proposer: Any = None) -> Any:
    """Run (or resume) the sample arm; the same call shape as optimize_async, so compare can run
    either. Returns an OptimizeResult whose champion test is the majority vote."""
    from harnessopt.optimizer import OptimizeResult, TestScore

    say = progress or (lambda line: None)
    store = RunStore.open(resume, writer=True) if resume is not None else None
    try:
        if store is not None:
            config = OptimizeConfig.model_validate(store.info()["config"])
        elif config is None:
            raise UsageError("the sample arm needs a config or resume=RUN_DIR")
        harness = load_harness(config.harness)
        bench = benchmark or load_benchmark(config.benchmark, data=config.data, seed=config.seed)
        preflight_gateway(gateway, config.task_model)
        tasks = bench.tasks("test", limit=config.test_limit)
        if not tasks:
            raise UsageError(f"benchmark {bench.name!r} has no test tasks")
        check_tasks(bench.name, "test", tasks)
        k = samples_per_task(config, len(tasks))
        if store is None:
            store = RunStore.create(config.out, {
                "kind": "sample", "config": config.model_dump(mode="json"), "benchmark_fingerprint": bench.fingerprint,
                "versions": package_versions(), "sampling_rule": K_RULE}, run_id=run_id, label=f"sample-{bench.name}")
        started = time.time()
        # Each seed samples with its own model seeds (seed x K + trial), so seeds are independent draws.
        params = ModelParams(temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed * k)
        evaluator = Evaluator(bench, store, model=config.task_model, params=params, gateway=gateway or Gateway(),
                              executor=executor or LocalProcessExecutor(config.concurrency),
                              concurrency=config.concurrency, timeout_s=config.timeout_s)
        if not store.has_candidate("c0000"):
            evaluator.register_candidate(harness, "c0000", hypothesis="seed harness, sampled", origin=harness.path)
        say(f"sampling the seed harness: {k} samples x {len(tasks)} test tasks at temperature {config.temperature:g}")
        try:
            result = await evaluator.evaluate(harness, "c0000", tasks, trials=k, split="test")
        finally:
            await evaluator.close()
        store.append_ledger(LedgerRow.for_eval(result, kind="test", decision="test",
                                               note=f"{k} samples per task at temperature {config.temperature:g}"))
        votes = tally(bench, tasks, [t for t in store.rollouts("c0000") if t.split == "test" and t.trial < k])
        summary = SamplingSummary(
            k=k, temperature=config.temperature, test_tasks=len(tasks), rollouts=result.charged,
            majority=_mean(v.score for v in votes), pass1=_mean(v.pass1 for v in votes),
            pass_k=_mean(v.pass_k for v in votes), votes=votes)

        def test_score(values: list[float]) -> TestScore:
            m, lo, hi = mean_ci(values)
            return TestScore(candidate="c0000", score=m, ci_low=lo, ci_high=hi, n_tasks=len(values))

        spend = Spend(task=result.usage, elapsed_s=time.time() - started)
        out = OptimizeResult(
            run_dir=str(store.path), seed_id="c0000", champion_id="c0000", champion_path=str(store.harness_path("c0000")),
            champion_code=harness.source, seed_search=0.0, champion_search=0.0,
            seed_test=test_score([v.pass1 for v in votes]), champion_test=test_score([v.score for v in votes]),
            candidates=1, history=store.ledger(), spend=spend,
            stop_reason=f"sampled: {k} samples per test task (majority {summary.majority:.3f}, pass@1 "
                        f"{summary.pass1:.3f}, pass@{k} {summary.pass_k:.3f} with an oracle)")
        store.update_info(sampling=summary.model_dump(), finished=True,
                          result=out.model_dump(exclude={"history", "champion_code"}))
        say(f"majority vote {summary.majority:.3f}, pass@1 {summary.pass1:.3f}, pass@{k} (oracle) {summary.pass_k:.3f}")
        return out
    finally:
        if store is not None:
            store.close()


def _mean(values: Any) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def run_sample(config: OptimizeConfig, **kwargs: Any) -> Any:
    return asyncio.run(run_sample_async(config, **kwargs))
