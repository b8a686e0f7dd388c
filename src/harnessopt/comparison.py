"""Experiments (`harnessopt.compare`, `harnessopt compare`): a grid of arms (feedback mode x (meta model, task model) pairing) x seeds.

Each (arm, seed) is an independent optimize run with the same seed harness, benchmark, splits
and budgets, in its own run directory under the experiment directory:

    <out>/<experiment_id>/
      experiment.json                 the grid spec, the models, every run's status
      runs/<arm>-seed<k>/             an ordinary optimize run directory (see store.py)
      report.md, *.png, report.html   written by `harnessopt report` (and at the end of compare)

Arms and seeds run concurrently up to `parallel`; `resume` skips finished runs, resumes killed
ones from their own caches (nothing is paid twice) and starts runs that never began. Splits are
fixed: the benchmark is loaded once with `split_seed`, so every run searches and is tested on the
same tasks; a run's `seed` varies the meta-agent's sampling and the task model's seed. (So resume
an experiment's run through `compare --resume`, which passes that benchmark.)

Control arms sit on the meta side: `random` (random pattern search) and `sample` (no search: the
seed harness sampled K times per test task, sampling.py). `MODEL@t0.9` is the same weights decoded
at temperature 0.9 (`parse_model_spec`), labelled everywhere as not another model family.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, field_validator, model_validator

from harnessopt.errors import UsageError
from harnessopt.executors import shared_pool
from harnessopt.llm import LOCAL_MODEL
from harnessopt.meta.views import FEEDBACK_MODES, FeedbackMode
from harnessopt.model_specs import ModelSpec, _split_pair, parse_model_spec, parse_models_arg  # re-exported
from harnessopt import options
from harnessopt.optimizer import NO_MODEL_PROPOSERS, OptimizeConfig, OptimizeResult, preflight_models
from harnessopt.options import RunOptions, read_config_file
from harnessopt.records import Record
from harnessopt.runlock import DirectoryLock
from harnessopt.sampling import SAMPLE_ARM, run_sample_async
from harnessopt.store import atomic_write, new_run_id, safe_name

EXPERIMENT_FORMAT = 2  # 2: the spec's run options are OptimizeConfig's, with its defaults


class Arm(Record):
    name: str
    feedback: FeedbackMode
    meta: str  # model alias
    task: str  # model alias

    @property
    def same_model(self) -> bool:
        return self.meta == self.task


class RunEntry(Record):
    id: str  # directory name under runs/
    arm: str
    seed: int
    status: str = "pending"  # pending | running | finished | failed
    error: str = ""
    started_at: float | None = None
    finished_at: float | None = None


# --------------------------------------------------------------------------- the grid spec


class GridSpec(RunOptions):
    """What an experiment runs: the options every run shares (RunOptions: seed harness, benchmark,
    budgets, limits, ...) plus the grid's axes. Each arm is one feedback mode x one pairing."""

    name: str = Field("experiment", description="experiment name (part of its directory name)")
    feedback: list[FeedbackMode] = Field(default_factory=lambda: ["traces", "scores"],
                                         description=f"comma-separated feedback modes ({', '.join(FEEDBACK_MODES)})")
    models: dict[str, str] = Field(default_factory=lambda: {"A": LOCAL_MODEL},
                                   description="model aliases, e.g. A=local/gemma-3-270m,B=openai/gpt-4o-mini; "
                                               "MODEL@t0.9 = same model at temperature 0.9")
    pairs: list[str] = Field(default_factory=lambda: ["A:A"],  # "META:TASK", aliases or model strings
                             description="comma-separated META:TASK pairings of aliases, e.g. A:A,A:B,B:A,B:B")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2],
                             description="number of seeds (3 -> 0,1,2) or a comma-separated list")
    split_seed: int = Field(0, description="seed of the benchmark's splits, shared by every run")
    parallel: int = Field(2, ge=1, description="runs at once")
    sample_temperature: float = Field(0.7, ge=0, le=2, description="task temperature of a sample arm's K samples")

    @field_validator("models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> Any:
        return parse_models_arg(v) if isinstance(v, str) else v

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, v: Any) -> Any:
        if isinstance(v, str):  # from the command line: "3" or "0,1,2"
            try:
                v = [int(x) for x in v.split(",") if x.strip()] if "," in v else int(v)
            except ValueError:
                raise ValueError("give a count (3) or a list (0,1,2)") from None
        if isinstance(v, int) and not isinstance(v, bool):
            if v < 1:
                raise ValueError("seeds must be a positive count or a list of seeds")
            return list(range(v))
        return v

    @field_validator("feedback", "pairs", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        return [x.strip() for x in v.split(",") if x.strip()] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _check(self) -> "GridSpec":
        if not self.feedback:
            raise ValueError("feedback needs at least one mode")
        if not self.pairs:
            raise ValueError("pairs needs at least one META:TASK pairing")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ValueError("seeds must be non-empty and distinct")
        if len(set(self.feedback)) != len(self.feedback):
            raise ValueError("feedback modes must be distinct")
        specs = self.model_specs()  # validates aliases and pairs
        for arm in self.arms():
            if specs[arm.task].model in (*NO_MODEL_PROPOSERS, SAMPLE_ARM):
                raise ValueError(f"pair {arm.meta}:{arm.task}: '{specs[arm.task].model}' is a meta-side proposer (a control "
                                 f"arm), not a task model; put it on the meta side ({arm.task}:{arm.meta})")
        return self

    # ------------------------------------------------------------------ derived

    def model_specs(self) -> dict[str, ModelSpec]:
        specs = {alias: parse_model_spec(s, alias) for alias, s in self.models.items()}
        for pair in self.pairs:
            for side in _split_pair(pair, specs):
                if side not in specs:  # a model string used directly in a pair
                    specs[side] = parse_model_spec(side)
        return specs

    def arms(self) -> list[Arm]:
        specs = {alias: parse_model_spec(s, alias) for alias, s in self.models.items()}
        arms = []
        for fb in self.feedback:
            for pair in self.pairs:
                meta, task = _split_pair(pair, specs)
                if fb != self.feedback[0] and (specs.get(meta) or parse_model_spec(meta)).model == SAMPLE_ARM:
                    continue  # the sample arm has no meta-agent: one arm, not one per feedback mode
                arms.append(Arm(name=f"{fb}-{safe_name(meta)[:40]}-{safe_name(task)[:40]}", feedback=fb, meta=meta, task=task))
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arms repeat: {', '.join(sorted(n for n in set(names) if names.count(n) > 1))}")
        return arms

    def runs(self) -> list[RunEntry]:
        """Seed by seed (every arm of seed 0, then of seed 1, ...): an experiment cut short still
        has the arms on the same seeds, which is what the paired comparison needs."""
        return [RunEntry(id=f"{arm.name}-seed{seed}", arm=arm.name, seed=seed)
                for seed in self.seeds for arm in self.arms()]

    def run_config(self, arm: Arm, seed: int, runs_dir: Path) -> OptimizeConfig:
        specs = self.model_specs()
        meta, task = specs[arm.meta], specs[arm.task]
        shared = self.model_dump(include=set(RunOptions.model_fields))
        shared.update(out=str(runs_dir))
        if task.temperature is not None:  # MODEL@t<temperature>: this model's own decoding
            shared["temperature"] = task.temperature
        if meta.temperature is not None:
            shared["meta_temperature"] = meta.temperature
        if meta.model == SAMPLE_ARM and task.temperature is None:
            shared["temperature"] = self.sample_temperature
        return OptimizeConfig(**shared, task_model=task.model, meta_model=meta.model, feedback=arm.feedback, seed=seed)

    def budget_text(self) -> str:
        b = self.budget
        parts = [f"{b.iterations} iteration(s)", f"{b.rollouts} search rollouts" if b.rollouts else "unlimited rollouts",
                 f"{b.meta_steps_per_iteration} meta steps/iteration"]
        if self.search_limit:
            parts.append(f"{self.search_limit} search tasks")
        if self.test_limit:
            parts.append(f"{self.test_limit} test tasks")
        return ", ".join(parts)


def load_grid(path: str | Path, **overrides: Any) -> GridSpec:
    """A grid spec from a .toml, .yaml/.yml or .json file; relative paths resolve against its folder."""
    data = read_config_file(path, what="grid")
    return options.build(GridSpec, data, flags={k: v for k, v in overrides.items() if v is not None}, file=path)


def make_grid(**fields: Any) -> GridSpec:
    """A GridSpec with friendly errors (UsageError naming the field) instead of pydantic's."""
    return options.build(GridSpec, fields)


# --------------------------------------------------------------------------- results


class RunOutcome(Record):
    id: str
    arm: str
    seed: int
    status: str
    run_dir: str
    error: str = ""
    result: OptimizeResult | None = None


class ExperimentResult(Record):
    experiment_dir: str
    name: str
    runs: list[RunOutcome] = Field(default_factory=list)

    @property
    def finished(self) -> bool:
        return all(r.status == "finished" for r in self.runs)


ProgressFn = Callable[[str], None]
# Test seams: each (run entry, config) -> a gateway / proposer / executor for that run (None: default).
Factory = Callable[[RunEntry, OptimizeConfig], Any]


class _Experiment:
    """experiment.json and the runs folder; run statuses are rewritten atomically as they change."""

    def __init__(self, path: Path):
        self.path = path
        self.runs_dir = path / "runs"

    def read(self) -> dict[str, Any]:
        file = self.path / "experiment.json"
        if not file.is_file():
            raise UsageError(f"{self.path}: not an experiment directory (no experiment.json)")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UsageError(f"{file}: corrupt JSON at line {exc.lineno}") from None
        if data.get("format") != EXPERIMENT_FORMAT:
            raise UsageError(f"{file}: experiment format {data.get('format')!r} is not {EXPERIMENT_FORMAT}")
        return data

    def write(self, data: dict[str, Any]) -> None:
        atomic_write(self.path / "experiment.json", json.dumps(data, indent=2, default=str) + "\n")

    def set_run(self, entry: RunEntry) -> None:
        data = self.read()
        data["runs"] = [entry.model_dump() if r["id"] == entry.id else r for r in data["runs"]]
        self.write(data)


def experiment_spec(path: str | Path) -> GridSpec:
    """The grid spec of an experiment directory (a one-line UsageError when it is not one)."""
    return GridSpec.model_validate(_Experiment(Path(path)).read()["spec"])


# What experiments must share for their runs to be compared task by task on held-out test.
COMPARABLE_FIELDS = ("benchmark", "data", "split_seed", "search_limit", "test_limit", "budget")


def same_setup(experiments: list[Path], setup: Callable[[GridSpec], dict[str, Any]]) -> list[GridSpec]:
    """The experiments' specs when `setup` (the settings their runs must share) is equal for all of
    them; a UsageError naming the first setting that differs otherwise."""
    specs = [experiment_spec(e) for e in experiments]
    first = setup(specs[0])
    for experiment, spec in zip(experiments[1:], specs[1:]):
        for key, value in setup(spec).items():
            if value != first[key]:
                raise UsageError(f"{experiment}: its {key} ({value}) differs from {experiments[0]}'s ({first[key]}); "
                                 "compare runs with the same setup")
    return specs


def _run_finished(run_dir: Path) -> OptimizeResult | None:
    """The stored result of a finished run, or None if the run is absent or unfinished."""
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not info.get("finished") or "result" not in info:
        return None
    from harnessopt.store import RunStore

    data = dict(info["result"])  # run.json leaves out the code and the ledger: read them back
    try:
        store = RunStore.open(run_dir)
        data.setdefault("champion_code", store.candidate_source(data["champion_id"]))
        data.setdefault("history", store.ledger())
        return OptimizeResult.model_validate(data)
    except Exception:  # noqa: BLE001 - an older or hand-edited result: treat as unfinished
        return None


async def compare_async(spec: GridSpec | None = None, *, resume: str | Path | None = None,
                        benchmark: Any = None, progress: ProgressFn | None = None,
                        gateway_factory: Factory | None = None, proposer_factory: Factory | None = None,
                        executor_factory: Factory | None = None,
                        experiment_id: str | None = None) -> ExperimentResult:
    """Run (or resume) every (arm, seed) of a grid, at most `spec.parallel` at once.

    A run that raises is recorded as failed (its error in experiment.json) and the others go on;
    `resume` retries it. `benchmark` passes an already-built Benchmark (tests, custom data);
    pass it again on resume.
    """
    from harnessopt.benchmark import load_benchmark
    from harnessopt.evaluation import package_versions
    from harnessopt.harness import load_harness
    from harnessopt.optimizer import optimize_async

    say = progress or (lambda line: None)
    lock: DirectoryLock | None = None  # one process per experiment directory
    pool: Any = None  # with --executor ray: one pool of Ray workers that every run shares
    try:
        if resume is not None:
            exp = _Experiment(Path(resume))
            data = exp.read()
            lock = DirectoryLock(exp.path, "experiment.lock").acquire("experiment directory")
            spec = GridSpec.model_validate(data["spec"])
        elif spec is None:
            raise UsageError("compare needs a grid spec or resume=EXPERIMENT_DIR")
        load_harness(spec.harness)  # fail early on a bad seed harness, before any directory exists
        if gateway_factory is None:  # unknown model or missing key: one line, no experiment directory
            specs = spec.model_specs()
            for arm in spec.arms():
                preflight_models(specs[arm.task].model, None if specs[arm.meta].model == SAMPLE_ARM else specs[arm.meta].model)
        bench = benchmark or load_benchmark(spec.benchmark, data=spec.data, seed=spec.split_seed)
        if executor_factory is None and spec.executor == "ray":  # cells share one pool of Ray workers
            pool = shared_pool(spec, runs_at_once=spec.parallel)
            executor_factory = lambda entry, config: pool.share()  # noqa: E731
        if resume is None:
            exp_id = experiment_id or new_run_id(f"cmp-{spec.name}")
            exp = _Experiment(Path(spec.out) / exp_id)
            if exp.path.exists():
                raise UsageError(f"{exp.path}: experiment directory already exists; use --resume or another --out")
            exp.runs_dir.mkdir(parents=True)
            lock = DirectoryLock(exp.path, "experiment.lock").acquire("experiment directory")
            data = {
                "format": EXPERIMENT_FORMAT, "kind": "experiment", "id": exp_id, "created_at": time.time(),
                "spec": spec.model_dump(mode="json"),
                "models": {a: m.model_dump() for a, m in spec.model_specs().items()},
                "arms": [a.model_dump() for a in spec.arms()],
                "runs": [r.model_dump() for r in spec.runs()],
                "benchmark": bench.name, "benchmark_fingerprint": bench.fingerprint,
                "versions": package_versions(),
            }
            exp.write(data)
        elif data.get("benchmark_fingerprint") not in (None, bench.fingerprint):
            raise UsageError(f"{exp.path}: the benchmark differs from the one this experiment started with "
                             f"(fingerprint {bench.fingerprint} vs {data['benchmark_fingerprint']}); pass the same data")
        entries = [RunEntry.model_validate(r) for r in data["runs"]]
        arms = {a.name: a for a in spec.arms()}
        gate = asyncio.Semaphore(spec.parallel)
        outcomes: dict[str, RunOutcome] = {}
        stopping: list[BaseException] = []  # a kill (Ctrl-C, cancellation) stops new runs from starting

        async def one(entry: RunEntry) -> None:
            run_dir = exp.runs_dir / entry.id
            done = _run_finished(run_dir)
            if done is not None:
                outcomes[entry.id] = RunOutcome(id=entry.id, arm=entry.arm, seed=entry.seed, status="finished",
                                                run_dir=str(run_dir), result=done)
                if entry.status != "finished":
                    exp.set_run(entry.model_copy(update={"status": "finished", "error": ""}))
                say(f"[{entry.id}] already finished: skipped")
                return
            async with gate:
                if stopping:
                    return
                config = spec.run_config(arms[entry.arm], entry.seed, exp.runs_dir)
                entry = entry.model_copy(update={"status": "running", "error": "", "started_at": time.time()})
                exp.set_run(entry)
                kwargs: dict[str, Any] = {"benchmark": bench, "progress": lambda line: say(f"[{entry.id}] {line}")}
                for name, factory in (("gateway", gateway_factory), ("proposer", proposer_factory),
                                      ("executor", executor_factory)):
                    made = factory(entry, config) if factory else None
                    if made is not None:
                        kwargs[name] = made
                resuming = (run_dir / "run.json").is_file()
                if run_dir.is_dir() and not resuming and not any(run_dir.iterdir()):
                    run_dir.rmdir()  # killed between creating the directory and writing run.json
                say(f"[{entry.id}] {'resuming' if resuming else 'starting'}: feedback {config.feedback}, "
                    f"meta {config.meta_model} (t={config.meta_temperature:g}), task {config.task_model} (t={config.temperature:g})")
                run = run_sample_async if config.meta_model == SAMPLE_ARM else optimize_async  # sampling.py: same call shape
                try:
                    if resuming:
                        result = await run(resume=run_dir, **kwargs)
                    else:
                        result = await run(config, run_id=entry.id, **kwargs)
                except BaseException as exc:
                    if not isinstance(exc, Exception):  # killed: stop here; resume continues this run
                        stopping.append(exc)
                        raise
                    # one failed run must not sink the experiment: record it, go on with the others
                    error = f"{type(exc).__name__}: {exc}"
                    exp.set_run(entry.model_copy(update={"status": "failed", "error": error[:2000]}))
                    outcomes[entry.id] = RunOutcome(id=entry.id, arm=entry.arm, seed=entry.seed, status="failed",
                                                    run_dir=str(run_dir), error=error)
                    say(f"[{entry.id}] failed: {error}")
                    return
                exp.set_run(entry.model_copy(update={"status": "finished", "finished_at": time.time()}))
                outcomes[entry.id] = RunOutcome(id=entry.id, arm=entry.arm, seed=entry.seed, status="finished",
                                                run_dir=str(run_dir), result=result)
                say(f"[{entry.id}] finished: test {result.seed_test.score:.3f} -> {result.champion_test.score:.3f}")

        await asyncio.gather(*(one(e) for e in entries))
        missing = [e for e in entries if e.id not in outcomes]
        for e in missing:  # not started because the experiment was stopped
            outcomes[e.id] = RunOutcome(id=e.id, arm=e.arm, seed=e.seed, status="pending",
                                        run_dir=str(exp.runs_dir / e.id))
        return ExperimentResult(experiment_dir=str(exp.path), name=spec.name,
                                runs=[outcomes[e.id] for e in entries])
    finally:
        if pool is not None:
            await pool.close()
        if lock is not None:
            lock.release()


def compare(spec: GridSpec | None = None, **kwargs: Any) -> ExperimentResult:
    """Synchronous `compare_async`: run (or resume, with resume=DIR) a grid of optimize runs."""
    return asyncio.run(compare_async(spec, **kwargs))
