"""Run GEPA on a seed harness's prompt into an ordinary run directory (kind `gepa`).

    result = await run_gepa_async(config)     # config: an OptimizeConfig, as for optimize

What it shares with an optimize run of the same config: the seed harness, benchmark, search
tasks (GEPA's train and validation set both), held-out test tasks, task model and decoding, the
meta model (as GEPA's reflection model, at the meta temperature) and the rollout budget:
`max_metric_calls` = `--max-rollouts`. GEPA checks its budget only between iterations, so it may
overshoot; the run records GEPA's own metric-call count and the overshoot beside the rollouts
the task model really ran (`charged`: a rollout GEPA asks for twice is run once, like harnessopt
does). The seed and GEPA's best candidate (highest mean on the validation set) are then tested
on the test split, outside the budget, scored by the benchmark's own scorer.

The run directory reads like an optimize run's (ledger, candidates, rollouts, meta_cache, run.json
with an OptimizeResult), plus `gepa` in run.json: metric calls, overshoot, reflections, candidates
GEPA accepted, wall time. Running it again with `resume=RUN_DIR` replays GEPA (seeded) against the
run's caches: nothing already run is paid again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Callable

from harnessopt.benchmark import Benchmark, load_benchmark
from harnessopt.budget import Spend
from harnessopt.errors import UsageError
from harnessopt.evaluation import Evaluator, check_tasks, package_versions
from harnessopt.harness import HarnessFile, load_harness
from harnessopt.llm import Gateway, preflight_gateway
from harnessopt.options import OptimizeConfig
from harnessopt.peers.gepa_adapter import HarnessPromptAdapter, ReflectionModel, prompt_constant, reflection_template
from harnessopt.records import LabelledTask, ModelParams, Record, RolloutTrace, Usage
from harnessopt.runner import LocalProcessExecutor
from harnessopt.store import LedgerRow, RunStore

GEPA_VERSION = "0.1.4"
REFLECTION_MAX_TOKENS = 768  # a rewritten prompt and a little reasoning


class GepaStats(Record):
    component: str
    max_metric_calls: int
    metric_calls: int  # GEPA's own count (its budget unit)
    overshoot: int  # metric calls beyond max_metric_calls
    charged: int  # search rollouts the task model really ran
    reused: int  # metric calls answered from rollouts already run (same code, task and trial)
    reflections: int
    candidates: int  # distinct prompts evaluated (the seed included)
    accepted: int  # candidates GEPA added to its pool (beat their parent on a minibatch)
    best_candidate: str
    best_val: float
    wall_s: float
    reflection_tokens: int


class GepaBench:
    """What the adapter evaluates with: the evaluator, the store and the run's counts (event loop side)."""

    def __init__(self, store: RunStore, evaluator: Evaluator, bench: Benchmark, search: list[LabelledTask]):
        self.store, self.evaluator, self.bench = store, evaluator, bench
        self.search_ids = {t.id for t in search}
        self.iteration = 0  # reflections so far
        self.best = -1.0
        self.charged = self.reused = 0
        self.usage = Usage()  # task-model spend of the search rollouts run

    async def run_batch(self, harness: HarnessFile, cid: str, tasks: list[LabelledTask]) -> list[RolloutTrace]:
        result = await self.evaluator.evaluate(harness, cid, tasks, trials=1, split="search")
        self.charged += result.charged
        self.reused += result.reused
        self.usage.add(result.usage)
        whole = {t.id for t in tasks} == self.search_ids
        if not whole:
            decision, note = "spot", "GEPA minibatch"
        elif self.best < 0:
            decision, note = "baseline", "seed on GEPA's validation set (the search split)"
        else:
            decision = "promoted" if result.score > self.best else "rejected"
            note = f"GEPA validation set: {'new best' if decision == 'promoted' else 'not above the best'} " \
                   f"({result.score:.3f} vs {self.best:.3f})"
        if whole:
            self.best = max(self.best, result.score)
        self.store.append_ledger(LedgerRow.for_eval(result, kind="full" if whole else "spot", decision=decision,
                                                    iteration=self.iteration, note=note))
        ids = {t.id for t in tasks}
        return [t for t in self.store.rollouts(cid) if t.task_id in ids and t.trial == 0 and t.split == "search"]

    def on_reflection(self, response: Any) -> None:
        self.iteration += 1
        self.store.append_ledger(LedgerRow(iter=self.iteration, kind="meta", decision="meta",
                                           tokens=response.prompt_tokens + response.completion_tokens,
                                           cost_usd=response.cost_usd, note="gepa reflection: 1 meta-model call(s)"))


class _FileLog:
    """GEPA's logger protocol, into the run directory (GEPA's own Logger redirects stdout)."""

    def __init__(self, path: Path):
        self.path = path

    def log(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(f"{message}\n")


def _gepa():
    try:
        import gepa
    except ImportError:
        raise UsageError("GEPA is not installed; install it with: pip install 'harnessopt[peers]'") from None
    return gepa


async def run_gepa_async(config: OptimizeConfig | None = None, *, resume: str | Path | None = None,
                         component: str | None = None, benchmark: Benchmark | None = None,
                         gateway: Gateway | None = None, executor: Any = None,
                         progress: Callable[[str], None] | None = None, run_id: str | None = None) -> Any:
    """Run (or rerun, with resume=RUN_DIR) GEPA on the seed harness's prompt; returns an OptimizeResult."""
    from harnessopt.optimizer import OptimizeResult, TestScore

    gepa = _gepa()
    say = progress or (lambda line: None)
    store = RunStore.open(resume, writer=True) if resume is not None else None
    try:
        if store is not None:
            info = store.info()
            config, component = OptimizeConfig.model_validate(info["config"]), info["gepa_component"]
        elif config is None:
            raise UsageError("run_gepa needs a config or resume=RUN_DIR")
        if config.budget.rollouts is None:
            raise UsageError("GEPA's metric calls are matched to --max-rollouts: give it")
        harness = load_harness(config.harness)
        component, _ = prompt_constant(harness.source, component)
        bench = benchmark or load_benchmark(config.benchmark, data=config.data, seed=config.seed)
        gateway = gateway or Gateway()
        preflight_gateway(gateway, config.task_model)
        preflight_gateway(gateway, config.meta_model)
        search, test = bench.tasks("search", limit=config.search_limit), bench.tasks("test", limit=config.test_limit)
        if not search or not test:
            raise UsageError(f"benchmark {bench.name!r} needs search and test tasks (has {len(search)} and {len(test)})")
        check_tasks(bench.name, "search", search)
        check_tasks(bench.name, "test", test)
        if store is None:
            store = RunStore.create(config.out, {
                "kind": "gepa", "config": config.model_dump(mode="json"), "gepa_component": component,
                "benchmark_fingerprint": bench.fingerprint, "versions": {**package_versions(), "gepa": GEPA_VERSION}},
                run_id=run_id, label=f"gepa-{bench.name}")
        started = time.time()
        params = ModelParams(temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed)
        executor = executor or LocalProcessExecutor(config.concurrency)
        evaluator = Evaluator(bench, store, model=config.task_model, params=params, gateway=gateway, executor=executor,
                              concurrency=config.concurrency, timeout_s=config.timeout_s)
        loop = asyncio.get_running_loop()
        wb = GepaBench(store, evaluator, bench, search)
        adapter = HarnessPromptAdapter(seed_source=harness.source, component=component, workbench=wb, loop=loop)
        reflect = ReflectionModel(gateway=gateway, model=config.meta_model, loop=loop, store=store, on_reply=wb.on_reflection,
                                  params=ModelParams(temperature=config.meta_temperature, seed=config.seed,
                                                     max_tokens=config.meta_max_tokens or REFLECTION_MAX_TOKENS))
        seed_text = prompt_constant(harness.source, component)[1]
        say(f"GEPA on {component}: {len(search)} search tasks, max_metric_calls {config.budget.rollouts}, "
            f"reflection model {config.meta_model}")
        try:
            result = await asyncio.to_thread(
                gepa.optimize, seed_candidate={component: seed_text}, trainset=search, valset=search, adapter=adapter,
                reflection_lm=reflect, reflection_prompt_template=reflection_template(),
                max_metric_calls=config.budget.rollouts, seed=config.seed, logger=_FileLog(store.path / "gepa_log.txt"),
                display_progress_bar=False, raise_on_exception=True)
            wall = time.time() - started
            best_text = result.candidates[result.best_idx][component]
            best_harness, best_id = adapter.candidate(best_text)
            tested: dict[str, TestScore] = {}
            to_test = {"c0000": adapter.candidate(seed_text)[0], best_id: best_harness}
            for cid, h in to_test.items():
                r = await evaluator.evaluate(h, cid, test, trials=1, split="test")
                store.append_ledger(LedgerRow.for_eval(r, kind="test", decision="test", iteration=wb.iteration,
                                                       note="held-out test"))
                tested[cid] = TestScore(candidate=cid, score=r.score, ci_low=r.ci_low, ci_high=r.ci_high, n_tasks=r.n_tasks)
                say(f"test {cid}: {r.score:.3f} on {r.n_tasks} tasks")
        finally:
            await evaluator.close()
        calls = int(result.total_metric_calls or 0)
        stats = GepaStats(
            component=component, max_metric_calls=config.budget.rollouts, metric_calls=calls,
            overshoot=max(0, calls - config.budget.rollouts), charged=wb.charged, reused=wb.reused,
            reflections=reflect.calls, candidates=len(adapter.ids), accepted=len(result.candidates) - 1,
            best_candidate=best_id, best_val=float(result.val_aggregate_scores[result.best_idx]), wall_s=wall,
            reflection_tokens=reflect.usage.tokens)
        out = OptimizeResult(
            run_dir=str(store.path), seed_id="c0000", champion_id=best_id, champion_path=str(store.harness_path(best_id)),
            champion_code=best_harness.source, seed_search=float(result.val_aggregate_scores[0]),
            champion_search=stats.best_val, seed_test=tested["c0000"], champion_test=tested[best_id],
            promotions=[] if best_id == "c0000" else [best_id], candidates=stats.candidates, history=store.ledger(),
            spend=Spend(iterations=reflect.calls, rollouts=wb.charged, task=wb.usage, meta=reflect.usage, elapsed_s=wall),
            stop_reason=f"GEPA: {calls} metric calls of {config.budget.rollouts} ({stats.overshoot} over)")
        store.update_info(gepa=stats.model_dump(), finished=True, result=out.model_dump(exclude={"history", "champion_code"}))
        say(f"GEPA: {calls} metric calls ({stats.overshoot} over), {wb.charged} rollouts run, {reflect.calls} reflections, "
            f"{stats.accepted} accepted; test {out.seed_test.score:.3f} -> {out.champion_test.score:.3f}")
        return out
    finally:
        if store is not None:
            store.close()


def run_gepa(config: OptimizeConfig, **kwargs: Any) -> Any:
    return asyncio.run(run_gepa_async(config, **kwargs))
