"""The outer loop: seed baseline and noise floor, meta-agent iterations, stop rules, final test.

A run is deterministic given its caches: every rollout and every meta-model response is stored
in the run directory keyed by its exact request. `resume` therefore replays the run from the
start: what is on disk is reused (never paid again), append-only files skip rows already
written, and the run continues from where it was killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, ValidationError

from harnessopt import events as E
from harnessopt.benchmark import Benchmark, load_benchmark
from harnessopt.budget import BudgetExceeded, BudgetTracker, Spend
from harnessopt.errors import UsageError
from harnessopt.evaluation import Evaluator, check_tasks, package_versions
from harnessopt.executors import check_available, connect_early, executor_for
from harnessopt.harness import load_harness
from harnessopt.llm import Gateway, preflight_gateway
from harnessopt.meta.llm_proposer import LLMProposer
from harnessopt.meta.ranking import GREEDY_PROPOSER, GreedyProposer, RankingProposer
from harnessopt.meta.protocol import Proposer, ProtocolSettings
from harnessopt.meta.views import FeedbackView
from harnessopt.options import OptimizeConfig  # re-exported: part of the API
from harnessopt.meta.workbench import Workbench
from harnessopt.records import EvalResult, ModelParams, Record, Usage
from harnessopt.store import LedgerRow, RunStore, StoreError


class TestScore(Record):
    candidate: str
    score: float
    ci_low: float
    ci_high: float
    n_tasks: int


class OptimizeResult(Record):
    run_dir: str
    seed_id: str
    champion_id: str
    champion_path: str
    champion_code: str
    seed_search: float
    champion_search: float
    seed_test: TestScore
    champion_test: TestScore
    promoted_test: list[TestScore] = Field(default_factory=list)
    promotions: list[str] = Field(default_factory=list)
    noise_floor: float = 0.0
    candidates: int = 0
    history: list[LedgerRow] = Field(default_factory=list)
    spend: Spend = Field(default_factory=Spend)
    stop_reason: str = ""
    warnings: list[str] = Field(default_factory=list)  # e.g. a champion that scores below the seed on test


ProgressFn = Callable[[str], None]
RANDOM_PROPOSER = "random"  # the --meta-model value that selects random pattern search, not a model
NO_MODEL_PROPOSERS = (RANDOM_PROPOSER, GREEDY_PROPOSER)  # meta-side controls that call no meta model


def preflight_models(task_model: str, meta_model: str | None, gateway: Gateway | None = None) -> None:
    """Unknown model / missing key, before any run directory. `meta_model` None (a proposer object
    was given) or a NO_MODEL_PROPOSERS control means no meta model is called, so there is none to check."""
    preflight_gateway(gateway, task_model)
    if meta_model is not None and meta_model not in NO_MODEL_PROPOSERS:
        preflight_gateway(gateway, meta_model)


def protocol_settings(config: OptimizeConfig) -> ProtocolSettings:
    return ProtocolSettings(proposals=config.proposals, eval_policy=config.eval_policy,
                            screen_tasks=config.screen_tasks, inspect_steps=config.inspect_steps,
                            menu_order=config.menu_order, proposal_mode=config.proposal_mode,
                            pool_size=config.pool_size)


def make_proposer(config: OptimizeConfig, gateway: Gateway) -> Proposer:
    if config.meta_model == RANDOM_PROPOSER:  # uniform choices over the same menu: the control arm
        from harnessopt.meta.random_proposer import RandomProposer

        return RandomProposer(seed=config.seed, settings=protocol_settings(config))
    if config.meta_model == GREEDY_PROPOSER:  # the digest-ordered draws, no model: the protocol's own knowledge
        return GreedyProposer(seed=config.seed, settings=protocol_settings(config))
    chooser = RankingProposer if config.proposal_mode == "rank" else LLMProposer
    return chooser(gateway, config.meta_model, settings=protocol_settings(config), temperature=config.meta_temperature,
                       max_tokens=config.meta_max_tokens, seed=config.seed, templates_dir=config.prompts_dir,
                       task_model=config.task_model)


async def optimize_async(config: OptimizeConfig | None = None, *, resume: str | Path | None = None,
                         proposer: Proposer | None = None, gateway: Gateway | None = None,
                         executor: Any = None, progress: ProgressFn | None = None,
                         run_id: str | None = None, benchmark: Benchmark | None = None) -> OptimizeResult:
    """Run (or resume) one optimization. Inputs are checked before any run directory is made.

    `benchmark` passes an already-built Benchmark (e.g. `Benchmark.from_records`) instead of
    loading `config.benchmark`; pass it again when resuming such a run. A run directory has one
    writer at a time: resuming one that another live process is running is refused.
    """
    store: RunStore | None = None
    made: Any = None  # an executor built here: _search closes it, or this function if the run never starts
    try:
        if resume is not None:
            store = RunStore.open(resume, writer=True)  # takes its lock
            config, info = _resumed_config(store), store.info()
            store.check_whole()  # everything the replay builds on is readable, before anything runs
        elif config is None:
            raise UsageError("optimize needs a config or resume=RUN_DIR")
        harness = load_harness(config.harness)
        bench = benchmark or load_benchmark(config.benchmark, data=config.data, seed=config.seed)
        if resume is not None and info.get("benchmark_fingerprint") not in (None, bench.fingerprint):
            raise UsageError(f"{resume}: the benchmark's data changed since this run started (fingerprint "
                             f"{info.get('benchmark_fingerprint')}, now {bench.fingerprint}); resume with the same "
                             "data or start a new run")
        preflight_models(config.task_model, config.meta_model if proposer is None else None, gateway)
        if executor is None:
            check_available(config.executor, config.ray_address)
        if proposer is None and config.meta_model not in NO_MODEL_PROPOSERS:
            check_prompts_dir(config.prompts_dir)
        search_tasks = bench.tasks("search", limit=config.search_limit)
        test_tasks = bench.tasks("test", limit=config.test_limit)
        if not search_tasks or not test_tasks:
            raise UsageError(f"benchmark {bench.name!r} needs search and test tasks (has {len(search_tasks)} and "
                             f"{len(test_tasks)})")
        check_tasks(bench.name, "search", search_tasks)
        check_tasks(bench.name, "test", test_tasks)
        baseline_cost = len(search_tasks) * config.trials * (2 if config.measure_noise else 1)
        if config.budget.rollouts is not None and config.budget.rollouts < baseline_cost:
            raise UsageError(
                f"--max-rollouts {config.budget.rollouts} cannot cover the seed's baseline ({baseline_cost} rollouts: "
                f"{len(search_tasks)} search tasks x {config.trials} trials"
                f"{' x 2 for the noise floor' if config.measure_noise else ''}); raise it or lower --search-limit"
            )
        if executor is None:
            executor = made = executor_for(config)
            connect_early(executor)  # a bad cluster address is one line, before any run directory
        if store is None:
            store = RunStore.create(config.out, {
                "kind": "optimize", "config": config.model_dump(mode="json"),
                "benchmark_fingerprint": bench.fingerprint, "versions": package_versions(),
            }, run_id=run_id, label=f"opt-{bench.name}-{config.feedback}")
        store.start_clock()  # the run's clock: a resume continues it, never restarts it
        made = None
        return await _search(config, store, harness, bench, search_tasks, test_tasks, proposer=proposer,
                             gateway=gateway or Gateway(), executor=executor, say=progress or (lambda line: None))
    finally:
        if made is not None:
            await made.close()
        if store is not None:
            store.close()


def _resumed_config(store: RunStore) -> OptimizeConfig:
    info = store.info()
    if info.get("kind") != "optimize":
        raise UsageError(f"{store.path}: not an optimize run (kind {info.get('kind')!r}); resume only optimize runs")
    try:
        return OptimizeConfig.model_validate(info["config"])
    except (KeyError, TypeError, ValidationError) as exc:
        detail = str(exc).splitlines()[0][:160]
        raise StoreError(f"{store.path}/run.json: its config is incomplete or from another harnessopt version "
                         f"({detail}); start a new run") from None


def check_prompts_dir(prompts_dir: str | None) -> None:
    """A --prompts-dir must exist and hold templates that compile; otherwise the run would quietly
    use the packaged prompts, or fail only when the first iteration renders them."""
    if prompts_dir is None:
        return
    from jinja2 import TemplateError
    from jinja2 import meta as jinja_meta

    from harnessopt.meta.llm_proposer import PROMPTS_DIR, prompt_environment

    folder = Path(prompts_dir)
    names = sorted(p.name for p in PROMPTS_DIR.glob("*.j2"))
    if not folder.is_dir():
        raise UsageError(f"--prompts-dir {prompts_dir}: no such directory; pass a folder holding templates "
                         f"named like the packaged ones ({', '.join(names)})")
    overrides = sorted(p.name for p in folder.glob("*.j2") if p.name in names)
    if not overrides:
        raise UsageError(f"--prompts-dir {prompts_dir}: holds none of the meta prompt templates "
                         f"({', '.join(names)}), so it would change nothing; put the ones to override there")
    env = prompt_environment(folder)
    todo, seen = [(name, name) for name in overrides], set()
    while todo:  # each override compiles, and so does every template it includes or extends
        name, via = todo.pop()
        seen.add(name)
        try:
            source = env.loader.get_source(env, name)[0]
            env.get_template(name)
        except TemplateError as exc:
            where = f":{exc.lineno}" if getattr(exc, "lineno", None) else ""
            what = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
            if via != name:
                what = f"it uses {name}, which neither {folder} nor the packaged prompts hold ({what})"
            raise UsageError(f"{folder / via}{where}: {what}; fix the template") from None
        todo += [(t, via) for t in jinja_meta.find_referenced_templates(env.parse(source)) if t and t not in seen]


async def _search(config: OptimizeConfig, store: RunStore, harness: Any, bench: Benchmark, search_tasks: list,
                  test_tasks: list, *, proposer: Proposer | None, gateway: Gateway, executor: Any,
                  say: ProgressFn) -> OptimizeResult:
    budget = BudgetTracker(config.budget, clock=store.clock)
    params = ModelParams(temperature=config.temperature, max_tokens=config.max_tokens, seed=config.seed)
    evaluator = Evaluator(bench, store, model=config.task_model, params=params, gateway=gateway,
                          executor=executor, concurrency=config.concurrency, timeout_s=config.timeout_s,
                          budget=budget)
    tracker = _ProgressTracker(budget, say)
    wb = Workbench(store=store, evaluator=evaluator, benchmark=bench, budget=budget,
                   view=FeedbackView(config.feedback), search_tasks=search_tasks, trials=config.trials,
                   seed=config.seed, on_event=tracker.on_event, promotion_confidence=config.promotion_confidence)
    proposer = proposer or make_proposer(config, gateway)
    try:
        seed = wb.add_candidate(harness.source, parent=None, hypothesis="seed harness", origin=harness.path)
        wb.state.champion = seed.id
        seed_eval, _ = await wb.full_eval(seed.id, note="seed baseline")
        if config.measure_noise:
            rerun = await evaluator.evaluate(seed.harness, seed.id, search_tasks, trials=config.trials,
                                             split="search", first_trial=config.trials)
            wb.state.noise_floor = abs(rerun.score - seed_eval.score)
            store.append_ledger(LedgerRow.for_eval(rerun, kind="noise", decision="noise",
                                                   note=f"seed rerun: noise floor {wb.state.noise_floor:.4f}"))
            wb.event(E.NoiseFloorMeasured(value=wb.state.noise_floor, first=seed_eval.score, rerun=rerun.score))
        tracker.best = (seed.id, seed_eval.score)
        say(f"seed {seed.id}: search {seed_eval.score:.3f}, noise floor {wb.state.noise_floor:.3f} | {budget.describe()}")
        stop_reason = ""
        while True:
            stop_reason = budget.exhausted(new_iteration=True) or ""
            if stop_reason:
                break
            budget.spent.iterations += 1
            wb.state.iteration = budget.spent.iterations
            wb.event(E.IterationStarted(proposer=proposer.name))
            meta_before = budget.spent.meta.model_copy()
            try:
                await proposer.run_iteration(wb)
            except BudgetExceeded as exc:
                wb.event(E.MetaStopped(reason=str(exc)))
            store.append_ledger(_meta_row(wb.state.iteration, proposer.name, meta_before, budget.spent.meta))
            tracker.iteration_line(wb)
            if not store.history.catching_up():  # a replay's spend is older than what run.json holds
                store.update_info(spend=budget.snapshot().model_dump(), champion=wb.state.champion)
        wb.event(E.SearchFinished(reason=stop_reason, champion=wb.state.champion))
        # Held-out test: seed and final champion (and every promoted champion if asked), recorded
        # here and never shown to the meta-agent. These rollouts are outside the search budget.
        test_eval = Evaluator(bench, store, model=config.task_model, params=params, gateway=gateway,
                              executor=executor, concurrency=config.concurrency, timeout_s=config.timeout_s)
        to_test = [seed.id] + (wb.state.promotions if config.test_every_champion else []) + [wb.state.champion]
        tested: dict[str, TestScore] = {}
        for cid in dict.fromkeys(to_test):
            c = wb.candidates[cid]
            r = await test_eval.evaluate(c.harness, cid, test_tasks, trials=config.trials, split="test")
            store.append_ledger(LedgerRow.for_eval(r, kind="test", decision="test", iteration=wb.state.iteration,
                                                   note="held-out test"))
            tested[cid] = _test_score(cid, r)
            say(f"test {cid}: {r.score:.3f} ({r.ci_low:.3f}-{r.ci_high:.3f}) on {r.n_tasks} tasks")
        champion = wb.candidates[wb.state.champion]
        result = OptimizeResult(
            run_dir=str(store.path), seed_id=seed.id, champion_id=champion.id,
            champion_path=str(store.harness_path(champion.id)), champion_code=champion.source,
            seed_search=seed_eval.score,
            champion_search=champion.full_eval.score if champion.full_eval else seed_eval.score,
            seed_test=tested[seed.id], champion_test=tested[champion.id],
            promoted_test=[tested[c] for c in wb.state.promotions if c in tested],
            promotions=list(wb.state.promotions), noise_floor=wb.state.noise_floor,
            candidates=len(wb.candidates), history=store.ledger(), spend=budget.snapshot(),
            stop_reason=stop_reason, warnings=test_warnings(tested[seed.id], tested[champion.id]),
        )
        store.update_info(result=result.model_dump(exclude={"history", "champion_code"}), finished=True)
        wb.event(E.RunFinished(champion=champion.id, seed_test=result.seed_test.score,
                               champion_test=result.champion_test.score))
        return result
    finally:
        await executor.close()


def _meta_row(iteration: int, proposer: str, before: Usage, after: Usage) -> LedgerRow:
    """The meta-agent's spend in one iteration, as a ledger row."""
    calls = after.calls - before.calls
    failed = after.failed_calls - before.failed_calls
    return LedgerRow(iter=iteration, kind="meta", decision="meta", tokens=after.tokens - before.tokens,
                     cost_usd=after.cost_usd - before.cost_usd, status=f"{failed} failed" if failed else "ok",
                     note=f"{proposer}: {calls} meta-model call(s)")


def test_warnings(seed: TestScore, champion: TestScore) -> list[str]:
    """What a user must not miss about the held-out test: a champion worse than the seed harness
    (its search-split gain did not carry over; the optimizer exists to prevent exactly that)."""
    if champion.candidate == seed.candidate or champion.score >= seed.score:
        return []
    return [f"the champion {champion.candidate} scores below the seed harness on the held-out test "
            f"({champion.score:.3f} vs {seed.score:.3f}): its search-split gain did not carry over. Keep the seed "
            "harness, and check the search split (too few tasks, or a label mix unlike the test split's)"]


def _test_score(cid: str, r: EvalResult) -> TestScore:
    return TestScore(candidate=cid, score=r.score, ci_low=r.ci_low, ci_high=r.ci_high, n_tasks=r.n_tasks)


class _ProgressTracker:
    """Keeps what the live progress line shows: last candidate, last action, best search score."""

    def __init__(self, budget: BudgetTracker, say: ProgressFn):
        self.budget = budget
        self.say = say
        self.best: tuple[str, float] = ("", 0.0)
        self.last_action = "-"
        self.last_candidate = "-"

    def on_event(self, event: E.Event) -> None:
        if isinstance(event, E.ActionTaken):
            self.last_action = event.action
            self.last_candidate = event.args.get("candidate") or self.last_candidate
        elif isinstance(event, E.CandidateCreated):
            self.last_candidate = event.candidate
        elif isinstance(event, E.Promoted):
            self.say(f"  promoted {event.candidate}: {event.reason}")

    def iteration_line(self, wb: Workbench) -> None:
        champion = wb.candidates[wb.state.champion]
        score = champion.full_eval.score if champion.full_eval else 0.0
        self.say(f"iter {wb.state.iteration}/{self.budget.budget.iterations} | candidate {self.last_candidate} | "
                 f"action {self.last_action} | {self.budget.describe()} | best search {score:.3f} ({champion.id})")


def optimize(config: OptimizeConfig | None = None, **kwargs: Any) -> OptimizeResult:
    """Synchronous `optimize_async`."""
    return asyncio.run(optimize_async(config, **kwargs))


def print_progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
