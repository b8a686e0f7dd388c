"""Evaluate a harness on a set of tasks: cache lookup, sandboxed rollouts, scoring, traces, ledger.

`Evaluator` is the reusable piece (the optimizer calls it for spot-checks and full evaluations);
`evaluate()` is the one-call public API behind `harnessopt eval`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import platform
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from harnessopt.benchmark import Benchmark, load_benchmark
from harnessopt.budget import BudgetExceeded, BudgetTracker
from harnessopt.errors import UsageError
from harnessopt.executors import check_available, connect_early, make_executor
from harnessopt.harness import HarnessFile, load_harness
from harnessopt import records
from harnessopt.llm import LOCAL_MODEL, CallRequest, Gateway, LLMError, metered_call, preflight_gateway
from harnessopt.records import (
    EvalResult,
    Example,
    LabelledTask,
    ModelCall,
    ModelParams,
    RolloutError,
    RolloutTrace,
    SplitName,
    TaskResult,
    ToolCall,
    Usage,
)
from harnessopt.runner import Executor, LocalProcessExecutor, RolloutJob
from harnessopt.stats import mean_ci
from harnessopt.store import CandidateMeta, LedgerRow, RunStore, safe_name
from harnessopt.tools import ToolRegistry, default_tools

DEFAULT_MAX_TOKENS = records.DEFAULT_MAX_TOKENS
ProgressFn = Callable[[RolloutTrace], None]


class GatewayBroker:
    """Serves a rollout's model and tool calls through the gateway and tool registry."""

    def __init__(self, gateway: Gateway, tools: ToolRegistry, benchmark: Benchmark,
                 budget: BudgetTracker | None = None):
        self.gateway = gateway
        self.tools = tools
        self.benchmark = benchmark
        self.budget = budget
        self._examples: list[Example] | None = None

    def examples(self, key: str) -> tuple[list[Example], list[str] | None]:
        if self._examples is None:
            self._examples = self.benchmark.examples()
        return self._examples, self.benchmark.labels

    async def model_call(self, job: RolloutJob, kind: str, args: dict[str, Any]) -> ModelCall:
        asked = dict(args.get("params") or {})
        response_format = asked.pop("response_format", None)
        params = merge_params(job.params, asked)
        call = ModelCall(
            kind="chat" if kind == "chat" else "complete",
            model=job.model,
            messages=args.get("messages") if kind == "chat" else None,
            prompt=args.get("prompt") if kind == "complete" else None,
            params=params,
            started_at=time.time(),
        )
        chat = call.kind == "chat"
        try:
            request = CallRequest(kind=call.kind, model=job.model, params=params, response_format=response_format,
                                  messages=list(args.get("messages") or []) if chat else None,
                                  prompt=None if chat else str(args.get("prompt", "")))
            response = await metered_call(self.gateway, request, meter=self.budget, side="task")
        except (LLMError, BudgetExceeded, ValidationError) as exc:
            call.error = str(exc)
            call.latency_s = time.time() - call.started_at
            return call
        call.response = response.text
        call.prompt_tokens = response.prompt_tokens
        call.completion_tokens = response.completion_tokens
        call.latency_s = response.latency_s
        call.cost_usd = response.cost_usd
        return call

    async def tool_call(self, job: RolloutJob, name: str, args: dict[str, Any]) -> ToolCall:
        started = time.perf_counter()
        record = ToolCall(name=name, args=self.tools.recorded_args(name, args), started_at=time.time())
        try:
            record.result = await self.tools.call(name, args)
        except Exception as exc:  # noqa: BLE001 - any tool failure is reported to the harness
            record.error = f"{type(exc).__name__}: {exc}"
        record.latency_s = time.perf_counter() - started
        return record


def merge_params(defaults: ModelParams, asked: dict[str, Any]) -> ModelParams:
    """The harness's own parameters win; the run's defaults (seed per trial, max_tokens) fill gaps."""
    merged = defaults.model_dump(exclude_none=True, exclude={"extra"})
    merged.update({k: v for k, v in asked.items() if v is not None})
    return ModelParams.model_validate(merged)


def rollout_cache_key(*, harness_hash: str, benchmark: str, task: LabelledTask, trial: int,
                      model: str, params: ModelParams) -> str:
    identity = {
        "harness": harness_hash, "benchmark": benchmark, "task": task.id,
        "input": hashlib.sha256(task.input.encode()).hexdigest(), "trial": trial, "model": model,
        "params": params.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


class Evaluator:
    """Runs harnesses on tasks for one run directory, reusing every rollout already on disk.

    With a budget, an evaluation reserves its rollouts before any starts and each model call
    reserves tokens/USD before it is made. A rollout is charged the first time this run asks for
    it; rollouts found on disk (an identical earlier candidate, or a killed run being resumed) are
    reused without calling any model.
    """

    def __init__(self, benchmark: Benchmark, store: RunStore, *, model: str = LOCAL_MODEL,
                 params: ModelParams | None = None, gateway: Gateway | None = None,
                 executor: Executor | None = None, tools: ToolRegistry | None = None,
                 concurrency: int = 2, timeout_s: float = 60.0, memory_mb: int = 2048,
                 budget: BudgetTracker | None = None):
        self.benchmark = benchmark
        self.store = store
        self.model = model
        self.params = params or ModelParams(temperature=0.0, max_tokens=DEFAULT_MAX_TOKENS, seed=0)
        self.gateway = gateway or Gateway()
        self.executor = executor or LocalProcessExecutor(concurrency, memory_mb=memory_mb)
        self.budget = budget
        self.broker = GatewayBroker(self.gateway, tools or default_tools(), benchmark, budget)
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.charged: set[str] = set()  # cache keys this run has already paid for (logically)
        self.from_disk: set[str] = set()  # cache keys served from rollouts already on disk

    def register_candidate(self, harness: HarnessFile, candidate_id: str, **meta: Any) -> None:
        self.store.add_candidate(harness.source, CandidateMeta(id=candidate_id, harness_hash=harness.hash, **meta))

    def trial_params(self, trial: int) -> ModelParams:
        base_seed = self.params.seed or 0
        return self.params.model_copy(update={"seed": base_seed + trial})

    def cache_key(self, harness: HarnessFile, task: LabelledTask, trial: int) -> str:
        return rollout_cache_key(harness_hash=harness.hash, benchmark=self.benchmark.fingerprint,
                                 task=task, trial=trial, model=self.model, params=self.trial_params(trial))

    def rollouts_needed(self, harness: HarnessFile, tasks: list[LabelledTask], trials: int) -> int:
        """How many rollouts an evaluation would charge (what a spot-check or full rerun costs)."""
        keys = {self.cache_key(harness, t, k) for t in tasks for k in range(trials)}
        return len(keys - self.charged)

    async def evaluate(self, harness: HarnessFile, candidate_id: str, tasks: list[LabelledTask], *,
                       trials: int = 1, split: SplitName, progress: ProgressFn | None = None,
                       wall_clock_s: float | None = None, first_trial: int = 0) -> EvalResult:
        """Run (or reuse) every (task, trial); raises BudgetExceeded before starting if it cannot fit.

        With `wall_clock_s`, rollouts still running at the limit are cancelled and the result is
        scored on what finished (status "cut"). The result says how many rollouts it charged and
        how many it reused; the caller writes its ledger row (with what it decided).
        """
        started = time.time()
        pairs = [(t, k) for t in tasks for k in range(first_trial, first_trial + trials)]
        keys = {self.cache_key(harness, t, k) for t, k in pairs}
        new_keys = keys - self.charged
        if self.budget is not None:
            self.budget.reserve_rollouts(len(new_keys))
        gate = asyncio.Semaphore(self.concurrency)

        async def one(task: LabelledTask, trial: int) -> RolloutTrace:
            async with gate:
                trace = await self.rollout(harness, candidate_id, task, trial, split)
            if progress:
                progress(trace)
            return trace

        jobs = [asyncio.create_task(one(t, k)) for t, k in pairs]
        try:
            done, pending = await asyncio.wait(jobs, timeout=wall_clock_s) if jobs else (set(), set())
        finally:
            # Interrupted (Ctrl-C, cancellation) or cut: stop every rollout still running before
            # anything else happens, so none of them can finish later as a bogus result.
            for job in jobs:
                job.cancel()
            await asyncio.gather(*jobs, return_exceptions=True)
        traces = [j.result() for j in jobs if j in done and not j.cancelled() and j.exception() is None]
        failures = [j.exception() for j in jobs if j in done and not j.cancelled() and j.exception() is not None]
        finished_keys = {t.cache_key for t in traces}
        # Cancelled rollouts may have spent tokens already: they count as used.
        charged = len(new_keys) if pending else len(new_keys & finished_keys)
        if self.budget is not None:
            self.budget.settle_rollouts(len(new_keys), charged)
            for trace in traces:  # charge reused traces this run had not paid for (resume)
                # (a resumed run replays its own rollouts from disk too: their tokens count again,
                # as in the run that paid for them, so a resumed run's spend equals an unbroken one's)
                if trace.cache_key in new_keys and trace.cache_key in self.from_disk:
                    self.budget.spent.task.add(trace.usage)
        self.charged |= new_keys
        if failures:
            raise failures[0]
        finished_tasks = [t for t in tasks if any(tr.task_id == t.id for tr in traces)]
        result = summarize(
            traces, finished_tasks, run_dir=str(self.store.path), candidate_id=candidate_id, harness=harness,
            benchmark=self.benchmark.name, split=split, model=self.model, trials=trials,
            wall_s=time.time() - started, paid=new_keys,
        )
        failed = result.n_errors + result.n_timeouts
        result.charged, result.reused = charged, len(keys - new_keys)
        result.status = "cut" if pending else (f"{failed} failed" if failed else "ok")
        return result

    async def rollout(self, harness: HarnessFile, candidate_id: str, task: LabelledTask, trial: int,
                      split: SplitName) -> RolloutTrace:
        params = self.trial_params(trial)
        key = self.cache_key(harness, task, trial)
        cached = self.store.cached(key)
        if cached is not None:
            self.from_disk.add(key)
            if cached.candidate_id == candidate_id:
                return cached
            # Same code, task, trial, model and params under another candidate: copy, never re-pay.
            copy = cached.model_copy(update={"candidate_id": candidate_id,
                                             "reused_from": cached.reused_from or cached.candidate_id})
            self.store.write_rollout(copy)
            return copy
        job = RolloutJob(
            job_id=uuid.uuid4().hex, candidate_id=candidate_id, harness_source=harness.source,
            harness_path=harness.path, harness_hash=harness.hash, task=task.public(), trial=trial,
            model=self.model, params=params, timeout_s=self.timeout_s,
            examples_key=self.benchmark.fingerprint,
        )
        outcome = await self.executor.run(job, self.broker)
        trace = RolloutTrace(
            cache_key=key, candidate_id=candidate_id, task_id=task.id, task_input=task.input,
            task_extra=task.extra, trial=trial, split=split, harness_hash=harness.hash,
            model=self.model, params=params, **outcome.model_dump(exclude={"usage"}),
            usage=outcome.usage,
        )
        if outcome.status == "ok" and outcome.answer is not None:
            try:
                score = await asyncio.to_thread(self.benchmark.score, task, outcome.answer,
                                                workspace=outcome.workspace_changes)
                problem = scorer_problem(score)
                if problem is None:
                    trace.score, trace.explanation = score.value, score.explanation
            except Exception as exc:  # noqa: BLE001 - a scorer crash is recorded, not fatal
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:  # counted as a scorer error, never as a score
                trace.status, trace.score, trace.explanation = "error", 0.0, f"scorer error: {problem}"[:500]
                trace.error = RolloutError(type="ScorerError", message=problem[:2000])
        else:
            trace.explanation = f"no answer: {trace.error.type if trace.error else 'unknown'}"
        self.store.write_rollout(trace)
        return trace

    async def close(self) -> None:
        await self.executor.close()


def scorer_problem(score: Any) -> str | None:
    """Why a scorer's verdict is not a usable score (None: it is). A scorer that raised is
    reported by Benchmark.score as a Score with `error` set."""
    value = getattr(score, "value", None)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"the scorer returned {type(score).__name__}, not a Score"
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        return f"the scorer returned {value!r}, outside [0, 1]"
    error = getattr(score, "error", None)
    return str(error) if error else None


def error_sample(traces: list[RolloutTrace], n: int = 3) -> list[str]:
    """The first few distinct errors of an evaluation, one line each ("task: Type: message")."""
    out: list[str] = []
    seen: set[str] = set()
    for t in sorted(traces, key=lambda t: (t.task_id, t.trial)):
        if t.error is None:
            continue
        what = f"{t.error.type}: {' '.join(t.error.message.split())[:200]}"
        if what not in seen:
            seen.add(what)
            out.append(f"{t.task_id} (trial {t.trial}): {what}")
        if len(out) == n:
            break
    return out


def summarize(traces: list[RolloutTrace], tasks: list[LabelledTask], *, run_dir: str, candidate_id: str,
              harness: HarnessFile, benchmark: str, split: SplitName, model: str, trials: int,
              wall_s: float, paid: set[str] | None = None) -> EvalResult:
    """Per-task and overall scores; `usage` sums the rollouts in `paid` (cache keys; None: all)."""
    by_task: dict[str, TaskResult] = {t.id: TaskResult(task_id=t.id, scores=[]) for t in tasks}
    usage = Usage()
    for trace in traces:
        result = by_task[trace.task_id]
        result.scores.append(trace.score)
        result.errors += int(trace.status != "ok")
        if paid is None or trace.cache_key in paid:
            usage.add(trace.usage)
    score, low, high = mean_ci([r.mean for r in by_task.values()])
    return EvalResult(
        run_dir=run_dir, candidate_id=candidate_id, harness_path=harness.path, harness_hash=harness.hash,
        benchmark=benchmark, split=split, model=model, n_tasks=len(tasks), trials=trials,
        score=score, ci_low=low, ci_high=high, n_rollouts=len(traces),
        n_errors=sum(t.status == "error" for t in traces),
        n_timeouts=sum(t.status == "timeout" for t in traces),
        n_scorer_errors=sum(t.error is not None and t.error.type == "ScorerError" for t in traces),
        errors_sample=error_sample(traces),
        n_cached=sum(t.reused_from is not None for t in traces),
        usage=usage, wall_s=wall_s, tasks=list(by_task.values()),
    )


def check_tasks(benchmark: str, split: str, tasks: list[LabelledTask]) -> None:
    """Refuse tasks whose input or target came out empty (a null or missing value in the data)."""
    for field in ("input", "target"):
        empty = [t.id for t in tasks if not getattr(t, field).strip()]
        if empty:
            raise UsageError(
                f"benchmark {benchmark!r}: {len(empty)} {split} task(s) have an empty {field} (e.g. {empty[0]}): a "
                f"null or missing value in the data; fix those rows, or fields.{field} in the benchmark spec"
            )


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("harnessopt", "litellm", "pydantic", "datasets", "llama-cpp-python"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


async def evaluate_async(harness: str | Path | HarnessFile, benchmark: str | Path | Benchmark, *,
                         split: SplitName = "test", limit: int | None = None, trials: int = 1,
                         task_model: str = LOCAL_MODEL, concurrency: int = 2, out: str | Path = "traces",
                         data: str | Path | None = None, seed: int = 0, temperature: float = 0.0,
                         max_tokens: int = DEFAULT_MAX_TOKENS, timeout_s: float = 60.0,
                         memory_mb: int = 2048, run_id: str | None = None,
                         progress: ProgressFn | None = None, gateway: Gateway | None = None,
                         executor: Executor | str = "local", ray_address: str | None = None,
                         ray_worker_cpus: float = 1.0) -> EvalResult:
    """Evaluate one harness on one split. Inputs are checked before any run directory is made.

    `executor` is "local" (worker processes on this machine), "ray" (the same workers on a Ray
    cluster at `ray_address`; None starts Ray here) or an Executor object, which the caller keeps
    and closes."""
    if trials < 1:
        raise UsageError(f"trials must be at least 1, got {trials}")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    harness_file = harness if isinstance(harness, HarnessFile) else load_harness(harness)
    bench = benchmark if isinstance(benchmark, Benchmark) else load_benchmark(str(benchmark), data=data, seed=seed)
    preflight_gateway(gateway, task_model)  # unknown model / missing key: before any run directory
    tasks = bench.tasks(split, limit=limit)
    if not tasks:
        raise UsageError(f"benchmark {bench.name!r} has no tasks in split {split!r}")
    check_tasks(bench.name, split, tasks)
    owned = isinstance(executor, str)  # built (and closed) here
    kind = executor if owned else type(executor).__name__
    if owned:
        check_available(executor)
        executor = make_executor(executor, concurrency=concurrency, memory_mb=memory_mb, ray_address=ray_address,
                                 ray_worker_cpus=ray_worker_cpus)
    params = ModelParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
    store: RunStore | None = None
    try:
        if owned:
            connect_early(executor)  # a bad cluster address is one line, before any run directory
        store = RunStore.create(out, {
            "kind": "eval", "harness": harness_file.path, "harness_hash": harness_file.hash,
            "benchmark": bench.name, "benchmark_fingerprint": bench.fingerprint, "split": split,
            "limit": limit, "trials": trials, "task_model": task_model, "params": params.model_dump(),
            "concurrency": concurrency, "timeout_s": timeout_s, "seed": seed, "versions": package_versions(),
            "executor": kind,
        }, run_id=run_id, label=f"eval-{bench.name}")
        candidate_id = safe_name(Path(harness_file.path).stem)
        evaluator = Evaluator(bench, store, model=task_model, params=params, gateway=gateway, executor=executor,
                              concurrency=concurrency, timeout_s=timeout_s, memory_mb=memory_mb)
        evaluator.register_candidate(harness_file, candidate_id, origin=harness_file.path)
        result = await evaluator.evaluate(harness_file, candidate_id, tasks, trials=trials, split=split,
                                          progress=progress)
        store.append_ledger(LedgerRow.for_eval(result, kind="eval", decision="eval"))
        store.update_info(result=result.model_dump(exclude={"tasks"}))
    finally:
        if owned:
            await executor.close()
        if store is not None:
            store.close()
    return result


def evaluate(harness: str | Path | HarnessFile, benchmark: str | Path | Benchmark, **kwargs: Any) -> EvalResult:
    """Synchronous `evaluate_async`: evaluate a harness file on a benchmark split."""
    return asyncio.run(evaluate_async(harness, benchmark, **kwargs))
