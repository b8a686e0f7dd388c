"""harnessopt vs GEPA vs sampling more, at one rollout budget.

One `harnessopt compare` experiment holds the harnessopt arms (the LLM meta-agent, random search)
and the sampling control (`sample`: the seed harness sampled K times per test task, majority
vote, K matched to an optimize run's search budget plus its test evaluations). Then, per seed,
GEPA 0.1.4 optimizes the seed harness's prompt into `<experiment>/gepa/gepa-seed<k>/` with the
same task model, the meta model as its reflection model, the same search tasks (its train and
validation set), the same test tasks and `max_metric_calls` = `--max-rollouts` (its overshoot is
counted). Printed per arm: held-out test score (95% CI over seeds) by the benchmark's scorer and
by a strict exact-label check, champion - seed with the paired test, rollouts actually used, GEPA's
metric calls and overshoot, wall time and meta tokens; then every arm against GEPA and against
the sample arm (sign-flip p over (seed, task) pairs, two-level bootstrap CI), the sampling
control's K / majority / pass@1 / pass@K (oracle), and the prediction calibration per arm.

Run from the repo root, one real-model job at a time on a small machine:

    python bench/vs_gepa.py --benchmark home_intents --harness harnesses/home_intents_naive.py --seeds 3
    python bench/vs_gepa.py --benchmark banking77 --data ../shared/data/banking77 \\
        --harness harnesses/banking77_naive.py --seeds 3
    python bench/vs_gepa.py --quick                     # 1 seed, tiny budget: a smoke run of a few minutes
    python bench/vs_gepa.py --resume traces/bench/<experiment>      # continue a killed one
    python bench/vs_gepa.py --summarize traces/bench/<experiment>   # only the tables

The harnessopt arms may come from experiments already run with the same benchmark, splits, task
model and budget (e.g. bench/meta_vs_random.py's): run only GEPA and the sample arm with
`--no-llm-arm --controls S=sample`, then give every experiment to `--summarize`:

    python bench/vs_gepa.py --no-llm-arm --controls S=sample --seeds 3
    python bench/vs_gepa.py --summarize traces/bench/<this one> traces/bench/<llm arm> traces/bench/<random arm>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from pathlib import Path

from harnessopt.benchmark import load_benchmark
from harnessopt.budget import Budget
from harnessopt.errors import UsageError
from harnessopt.comparison import COMPARABLE_FIELDS, Arm, GridSpec, compare, experiment_spec, make_grid, same_setup
from harnessopt.peers.gepa_adapter import strict_score
from harnessopt.peers.gepa_run import run_gepa_async
from harnessopt.report.calibration import calibrate
from harnessopt.report.data import load_run
from harnessopt.stats import mean_ci, paired_arm_test
from harnessopt.store import RunStore

REPO = Path(__file__).resolve().parents[1]
TASK = "G"
LLM = "Q"
GEPA_ARM = "gepa"
QUICK = dict(seeds="1", iterations=1, max_rollouts=24, meta_steps=4, search_limit=6, test_limit=8, proposals=1,
             inspect_steps=0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", default="home_intents")
    p.add_argument("--data", help="local data folder (banking77: ../shared/data/banking77)")
    p.add_argument("--harness", default=str(REPO / "harnesses" / "home_intents_naive.py"))
    p.add_argument("--task-model", default="local/gemma-3-270m")
    p.add_argument("--meta-model", default="local/qwen2.5-coder-1.5b", help="harnessopt's meta model and GEPA's reflection model")
    p.add_argument("--controls", default="R=random,S=sample", help="control arms: ALIAS=random, ALIAS=sample ('' for none)")
    p.add_argument("--no-llm-arm", action="store_true",
                   help="run only the controls and GEPA (the LLM arm comes from another experiment: see --summarize)")
    p.add_argument("--seeds", default="3")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--max-rollouts", type=int, default=200, help="search rollouts per run = GEPA's max_metric_calls")
    p.add_argument("--meta-steps", type=int, default=10)
    p.add_argument("--search-limit", type=int, default=20)
    p.add_argument("--test-limit", type=int, default=40)
    p.add_argument("--proposals", type=int, default=3)
    p.add_argument("--inspect-steps", type=int, default=2)
    p.add_argument("--eval-policy", default="ladder")
    p.add_argument("--sample-temperature", type=float, default=0.7)
    p.add_argument("--component", help="the seed harness's string constant GEPA optimizes (default: its prompt template)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per rollout (a loaded machine is slow)")
    p.add_argument("--quick", action="store_true", help="1 seed, tiny budget: a smoke run of a few minutes")
    p.add_argument("--name", default="vs-gepa")
    p.add_argument("--out", default="traces/bench")
    p.add_argument("--resume", help="continue this experiment directory")
    p.add_argument("--summarize", nargs="+", metavar="DIR",
                   help="only print the tables of these experiments (same benchmark, splits and budget; arms merged)")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    if args.summarize:
        try:
            summarize(*map(Path, args.summarize))
        except UsageError as exc:
            sys.exit(str(exc))
        return 0
    if args.resume:
        result = compare(resume=args.resume, progress=print)
    else:
        # LLM stays a model even without its arm: GEPA reflects with it
        models = {TASK: args.task_model, LLM: args.meta_model}
        for part in filter(None, args.controls.split(",")):
            alias, _, model = part.partition("=")
            models[alias.strip()] = model.strip()
        arms = [a for a in models if a != TASK and not (a == LLM and args.no_llm_arm)]
        if not arms:
            p.error("--no-llm-arm needs at least one control in --controls (e.g. S=sample)")
        spec = make_grid(
            name=args.name, harness=args.harness, benchmark=args.benchmark, data=args.data, feedback="traces",
            models=models, pairs=",".join(f"{a}:{TASK}" for a in arms), seeds=args.seeds, parallel=1,
            out=args.out, search_limit=args.search_limit, test_limit=args.test_limit, timeout_s=args.timeout,
            proposals=args.proposals, inspect_steps=args.inspect_steps, eval_policy=args.eval_policy,
            sample_temperature=args.sample_temperature,
            budget=Budget(iterations=args.iterations, rollouts=args.max_rollouts, meta_steps_per_iteration=args.meta_steps))
        result = compare(spec, progress=print)
    experiment = Path(result.experiment_dir)
    spec = experiment_spec(experiment)
    run_gepa_arm(experiment, spec, args.component)
    summarize(experiment)
    return 0 if result.finished else 1


def run_gepa_arm(experiment: Path, spec: GridSpec, component: str | None) -> None:
    """GEPA per seed, with the LLM arm's config (same models, budget, splits); finished seeds are skipped."""
    bench = load_benchmark(spec.benchmark, data=spec.data, seed=spec.split_seed)
    llm_arm = Arm(name=GEPA_ARM, feedback=spec.feedback[0], meta=LLM, task=TASK)  # its models, budget and splits
    folder = experiment / "gepa"
    for seed in spec.seeds:
        run_dir = folder / f"gepa-seed{seed}"
        if _finished(run_dir):
            print(f"[gepa-seed{seed}] already finished: skipped")
            continue
        config = spec.run_config(llm_arm, seed, folder)
        say = lambda line, s=seed: print(f"[gepa-seed{s}] {line}", flush=True)  # noqa: E731
        if (run_dir / "run.json").is_file():
            asyncio.run(run_gepa_async(resume=run_dir, benchmark=bench, progress=say))
        else:
            asyncio.run(run_gepa_async(config, component=component, benchmark=bench, progress=say, run_id=run_dir.name))


def _finished(run_dir: Path) -> bool:
    try:
        return bool(json.loads((run_dir / "run.json").read_text()).get("finished"))
    except (OSError, ValueError):
        return False


def arm_runs(experiment: Path) -> dict[str, list[Path]]:
    """Finished run directories per arm (the compare arms, then GEPA)."""
    arms: dict[str, list[Path]] = {}
    for folder, name_of in ((experiment / "runs", lambda d: d.name.rsplit("-seed", 1)[0]),
                            (experiment / "gepa", lambda d: GEPA_ARM)):
        for d in sorted(folder.glob("*")) if folder.is_dir() else []:
            if _finished(d):
                arms.setdefault(name_of(d), []).append(d)
    return arms


def _setup(spec: GridSpec) -> dict:
    """What the merged experiments must share: the task split, budget and task model (meta models differ by arm)."""
    return {**{f: getattr(spec, f) for f in COMPARABLE_FIELDS},
            "task model": sorted({spec.model_specs()[a.task].model for a in spec.arms()})}


def merged_arms(experiments: tuple[Path, ...]) -> tuple[GridSpec, dict[str, list[Path]]]:
    """The first experiment's spec and every experiment's finished runs per arm; an arm's seed run
    twice keeps its first run."""
    first = same_setup(list(experiments), _setup)[0]
    arms: dict[str, list[Path]] = {}
    seeds: dict[str, set[str]] = {}
    for e in experiments:
        for arm, dirs in arm_runs(e).items():
            for d in dirs:
                seed = d.name.rsplit("-seed", 1)[-1]
                if seed in seeds.setdefault(arm, set()):
                    print(f"(skipped {d}: {arm} already has this seed)")
                    continue
                seeds[arm].add(seed)
                arms.setdefault(arm, []).append(d)
    return first, arms


def summarize(*experiments: Path) -> None:
    spec, arms = merged_arms(experiments)
    bench = load_benchmark(spec.benchmark, data=spec.data, seed=spec.split_seed)
    tables, strict_tables, data = {}, {}, {}
    print(f"\n## {', '.join(e.name for e in experiments)}: {spec.benchmark}, {spec.budget_text()}\n")
    print("| arm | runs | seed test | champion test (95% CI) | strict exact-label test | champion - seed (two-level CI) "
          "| p | search rollouts run | GEPA metric calls (over cap) | wall s | meta tokens |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for arm, dirs in sorted(arms.items()):
        runs = [load_run(d) for d in dirs]
        data[arm] = runs
        champ = {(str(r.summary.seed), t): s for r in runs for t, s in r.summary.champion_test_tasks.items()}
        seed = {(str(r.summary.seed), t): s for r in runs for t, s in r.summary.seed_test_tasks.items()}
        tables[arm], strict_tables[arm] = champ, strict_table(runs, bench)
        vs_seed = paired_arm_test(champ, seed, arm_a=f"{arm} champion", arm_b="seed")
        c = [r.summary.champion_test or 0.0 for r in runs]
        c_mean, c_lo, c_hi = mean_ci(c)
        strict = statistics.mean(strict_tables[arm].values()) if strict_tables[arm] else float("nan")
        infos = [json.loads((Path(r.path) / "run.json").read_text()) for r in runs]
        gepa = [i["gepa"] for i in infos if "gepa" in i]
        calls = (f"{statistics.mean(g['metric_calls'] for g in gepa):.0f} (+{statistics.mean(g['overshoot'] for g in gepa):.0f})"
                 if gepa else "-")
        wall = statistics.mean(float((i.get("result") or {}).get("spend", {}).get("elapsed_s", 0.0)) for i in infos)
        rollouts = statistics.mean(r.summary.rollouts for r in runs)
        print(f"| {arm} | {len(runs)} | {statistics.mean(r.summary.seed_test or 0 for r in runs):.3f} | "
              f"{c_mean:.3f} ({c_lo:.3f}-{c_hi:.3f}) | {strict:.3f} | {vs_seed.mean_diff:+.3f} "
              f"({vs_seed.ci_low:+.3f}..{vs_seed.ci_high:+.3f}) | {vs_seed.p_value:.3g} | {rollouts:.0f} | {calls} | "
              f"{wall:.0f} | {statistics.mean(r.summary.meta_tokens for r in runs):,.0f} |")
    print("\nThe sample arm's 'seed test' is pass@1 at its sampling temperature; its search rollouts are 0 "
          "(it spends its budget on test samples).")
    names = sorted(tables)
    anchors = [a for a in names if a == GEPA_ARM or any(r.summary.sampling for r in data[a])]
    done: set[frozenset] = set()
    if len(names) > 1:
        print("\nEvery arm against GEPA and against the sample arm on held-out test (paired over seed x task):\n")
        for anchor in anchors:
            for other in (n for n in names if n != anchor and frozenset((n, anchor)) not in done):
                done.add(frozenset((other, anchor)))
                print(f"- {paired_arm_test(tables[other], tables[anchor], arm_a=other, arm_b=anchor).sentence}")
    sampled = [(arm, r) for arm, runs in data.items() for r in runs if r.summary.sampling]
    if sampled:
        print("\nSampling control (majority vote is the arm's score; pass@K picks by the test labels: an oracle):\n")
        print("| run | K | temperature | test rollouts | majority vote | pass@1 | pass@K (oracle) |")
        print("|---|---|---|---|---|---|---|")
        for arm, r in sampled:
            x = r.summary.sampling
            print(f"| {r.run_id} | {x.k} | {x.temperature} | {x.rollouts} | {x.majority:.3f} | {x.pass1:.3f} | {x.pass_k:.3f} |")
    print("\nPredictions vs measured score changes (proposals of every seed pooled):\n")
    print("| arm | proposals | measured (full/spot) | made things worse | direction right | Pearson r | Spearman rho |")
    print("|---|---|---|---|---|---|---|")
    for arm, runs in sorted(data.items()):
        cal = calibrate([p for r in runs for p in r.summary.calibration.points])
        if not cal.proposals:
            continue
        fmt = lambda x: "-" if x is None else f"{x:+.2f}"  # noqa: E731
        share = lambda n: f"{n} ({n / cal.measured:.0%})" if cal.measured else "-"  # noqa: E731
        print(f"| {arm} | {cal.proposals} | {cal.measured} ({cal.by_full}/{cal.by_spot}) | {share(cal.worse)} | "
              f"{share(cal.direction_right)} | {fmt(cal.pearson)} | {fmt(cal.spearman)} |")


def strict_table(runs: list, bench) -> dict[tuple[str, str], float]:
    """Per (seed, task): the final champion's test answers under the strict exact-label check, mean
    over trials. The sample arm's voted answer is a label or has none, so its vote's score is strict."""
    out: dict[tuple[str, str], list[float]] = {}
    for r in runs:
        s = r.summary
        if s.sampling:
            for v in s.sampling.votes:
                out[(str(s.seed), v.task_id)] = [v.score]
            continue
        for t in RunStore.open(r.path).rollouts(s.champion_id):
            if t.split == "test":
                out.setdefault((str(s.seed), t.task_id), []).append(strict_score(t, bench.task(t.task_id), bench.labels))
    return {k: sum(v) / len(v) for k, v in out.items()}


if __name__ == "__main__":
    sys.exit(main())
