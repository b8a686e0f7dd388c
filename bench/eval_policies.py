"""The economics of spot-checks vs full reruns: `--eval-policy meta | ladder | always-full`.

Runs one `harnessopt compare` experiment per evaluation policy (same seed harness, benchmark,
splits, models, budget and seeds; only `--eval-policy` differs), under one folder, then prints
per policy:

  - held-out test of the final champion (mean, 95% CI over seeds) and its gain over the seed;
  - rollouts to reach the final champion (charged search rollouts up to the full evaluation that
    made it champion) and all search rollouts used;
  - spot-checks and full evaluations, promotions;
  - every policy against every other on held-out test (paired over seed x task);
  - how often one policy promoted code that another policy also proposed (same seed, same code
    hash) but did not promote (rejected after a full evaluation, or left after a screen).

The goal it checks: `meta` reaches the same or a better test score with at most 50% of
`always-full`'s rollouts to its final champion.

    python bench/eval_policies.py --seeds 5                           # home_intents, Qwen 1.5B meta model
    python bench/eval_policies.py --quick --meta-model random          # 1 seed, tiny budget: a smoke run
    python bench/eval_policies.py --resume traces/bench/<folder>       # continue; --summarize: tables only
    python bench/eval_policies.py --policies always-full --seeds 3,4   # only some policies and seeds
    python bench/eval_policies.py --summarize traces/bench/<folder> traces/bench/<compare experiment> ...
        # folders of this script and compare experiments (each one's policy read from its spec) merged,
        # when they share the benchmark, splits, models and budget
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from harnessopt.budget import Budget
from harnessopt.errors import UsageError
from harnessopt.comparison import COMPARABLE_FIELDS, GridSpec, compare, make_grid, same_setup
from harnessopt.report.data import load_run
from harnessopt.stats import mean_ci, paired_arm_test
from harnessopt.store import new_run_id

REPO = Path(__file__).resolve().parents[1]
POLICIES = ("meta", "ladder", "always-full")
QUICK = dict(seeds="1", iterations=1, max_rollouts=30, meta_steps=4, search_limit=6, test_limit=8)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", default="home_intents")
    p.add_argument("--data")
    p.add_argument("--harness", default=str(REPO / "harnesses" / "home_intents_naive.py"))
    p.add_argument("--task-model", default="local/gemma-3-270m")
    p.add_argument("--meta-model", default="local/qwen2.5-coder-1.5b")
    p.add_argument("--policies", default=",".join(POLICIES))
    p.add_argument("--seeds", default="5")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--max-rollouts", type=int, default=200)
    p.add_argument("--meta-steps", type=int, default=10)
    p.add_argument("--search-limit", type=int, default=20)
    p.add_argument("--test-limit", type=int, default=40)
    p.add_argument("--proposals", type=int, default=3)
    p.add_argument("--timeout", type=float, default=300.0)
    p.add_argument("--quick", action="store_true", help="1 seed, tiny budget")
    p.add_argument("--out", default="traces/bench")
    p.add_argument("--resume", help="continue this folder (made by an earlier run of this script)")
    p.add_argument("--summarize", nargs="+", metavar="DIR",
                   help="only print the tables of these folders or compare experiments (merged by policy)")
    args = p.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)
    if args.summarize:
        summarize(*map(Path, args.summarize))
        return 0
    root = Path(args.resume) if args.resume else Path(args.out) / new_run_id("eval-policies")
    index = root / "policies.json"
    done = json.loads(index.read_text()) if index.is_file() else {}
    finished = True
    for policy in [x.strip() for x in args.policies.split(",") if x.strip()]:
        if policy in done:
            result = compare(resume=done[policy], progress=lambda line, p=policy: print(f"[{p}] {line}", flush=True))
        else:
            spec = make_grid(
                name=f"policy-{policy}", harness=args.harness, benchmark=args.benchmark, data=args.data,
                feedback="traces", models={"M": args.meta_model, "G": args.task_model}, pairs="M:G", seeds=args.seeds,
                parallel=1, out=str(root), search_limit=args.search_limit, test_limit=args.test_limit,
                timeout_s=args.timeout, proposals=args.proposals, eval_policy=policy,
                budget=Budget(iterations=args.iterations, rollouts=args.max_rollouts,
                              meta_steps_per_iteration=args.meta_steps))
            root.mkdir(parents=True, exist_ok=True)
            result = compare(spec, progress=lambda line, p=policy: print(f"[{p}] {line}", flush=True))
            done[policy] = result.experiment_dir
            index.write_text(json.dumps(done, indent=2) + "\n")
        finished &= result.finished
    summarize(root)
    return 0 if finished else 1


def experiments_in(folders: tuple[Path, ...]) -> list[Path]:
    """The compare experiments: a folder of this script lists its own in policies.json (one per policy,
    whose spec says its --eval-policy); a folder still running has them inside, not yet indexed."""
    out = []
    for folder in folders:
        if (folder / "policies.json").is_file():
            out += [Path(e) for e in json.loads((folder / "policies.json").read_text()).values()]
            continue
        inside = sorted(d for d in folder.iterdir() if (d / "experiment.json").is_file()) if folder.is_dir() else []
        experiments = [folder] if (folder / "experiment.json").is_file() else inside
        if not experiments:
            sys.exit(f"{folder}: neither a folder of this script (policies.json) nor a compare experiment "
                     "(experiment.json)")
        out += experiments
    return out


def _setup(spec: GridSpec) -> dict:
    """The settings every compared run must share, the models by role (aliases differ between experiments)."""
    models = spec.model_specs()
    arm = spec.arms()[0]
    shared = {f: getattr(spec, f) for f in (*COMPARABLE_FIELDS, "proposals")}
    return {**shared, "harness": Path(spec.harness).name,  # checkouts differ in path
            "meta model": models[arm.meta].model, "task model": models[arm.task].model, "feedback": arm.feedback}


def summarize(*folders: Path) -> None:
    experiments = experiments_in(folders)
    try:
        specs = same_setup(experiments, _setup)
    except UsageError as exc:
        sys.exit(str(exc))
    runs: dict[str, dict[int, object]] = {}  # policy -> seed -> RunData
    for experiment, spec in zip(experiments, specs):
        policy = spec.eval_policy
        for d in sorted(experiment.glob("runs/*")):
            if (d / "run.json").is_file() and json.loads((d / "run.json").read_text()).get("finished"):
                r = load_run(d)
                if r.summary.seed in runs.get(policy, {}):
                    print(f"(skipped {d}: {policy} already has seed {r.summary.seed})")
                    continue
                runs.setdefault(policy, {})[r.summary.seed] = r
    print(f"\n## {', '.join(f.name for f in folders)}\n")
    print("| policy | seeds | champion test (95% CI) | champion - seed | rollouts to final champion | search rollouts "
          "| spot-checks | full evals | promotions |")
    print("|---|---|---|---|---|---|---|---|---|")
    tables, to_best = {}, {}
    for policy, by_seed in runs.items():
        s = [r.summary for r in by_seed.values()]
        m, lo, hi = mean_ci([x.champion_test or 0.0 for x in s])
        to_best[policy] = statistics.mean(x.rollouts_to_best or 0 for x in s)
        tables[policy] = {(str(x.seed), t): v for x in s for t, v in x.champion_test_tasks.items()}
        print(f"| {policy} | {len(s)} | {m:.3f} ({lo:.3f}-{hi:.3f}) | "
              f"{statistics.mean(x.improvement or 0 for x in s):+.3f} | {to_best[policy]:.0f} | "
              f"{statistics.mean(x.rollouts for x in s):.0f} | {sum(x.behaviour.spot_checks for x in s)} | "
              f"{sum(x.behaviour.full_evals for x in s)} | {sum(x.promoted for x in s)} |")
    names = list(runs)
    if len(names) > 1:
        print("\nPolicies compared on held-out test (paired over seed x task):\n")
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                print(f"- {paired_arm_test(tables[a], tables[b], arm_a=a, arm_b=b).sentence}")
        print("\nPromoted by one policy, proposed but not promoted by another (same seed, same code):\n")
        print("| promoted by | not by | promoted | also proposed there | not promoted there (rejected / only screened / never evaluated) |")
        print("|---|---|---|---|---|")
        for a in names:
            for b in names:
                if a != b:
                    print(disagreement_row(a, b, runs[a], runs[b]))
    if "meta" in to_best and "always-full" in to_best and "meta" in tables:
        t = paired_arm_test(tables["meta"], tables["always-full"], arm_a="meta", arm_b="always-full")
        share = to_best["meta"] / to_best["always-full"] if to_best["always-full"] else float("nan")
        met = t.mean_diff >= 0 and share <= 0.5
        if not any(r.summary.promoted for by_seed in runs.values() for r in by_seed.values()):
            print("\nNo policy promoted a candidate: every final champion is the seed harness, reached at its baseline, "
                  "so rollouts to the champion cannot tell the policies apart at this budget.")
        print(f"\nGoal (meta: same or better test with <= 50% of always-full's rollouts to its champion): "
              f"test meta - always-full {t.mean_diff:+.3f} ({t.ci_low:+.3f}..{t.ci_high:+.3f}, p {t.p_value:.3g}), "
              f"rollouts to champion {to_best['meta']:.0f} vs {to_best['always-full']:.0f} ({share:.0%}): "
              f"{'met' if met else 'not met'} at this budget.")


def disagreement_row(a: str, b: str, runs_a: dict, runs_b: dict) -> str:
    promoted = also = rejected = screened = never = 0
    for seed, ra in runs_a.items():
        rb = runs_b.get(seed)
        for c in ra.candidates:
            if not c.promoted:
                continue
            promoted += 1
            twin = next((x for x in rb.candidates if x.harness_hash == c.harness_hash), None) if rb else None
            if twin is None:
                continue
            also += 1
            if twin.promoted:
                continue
            kinds = {row.kind for row in rb.ledger if row.candidate == twin.id}
            rejected += "full" in kinds
            screened += "full" not in kinds and "spot" in kinds
            never += not kinds & {"full", "spot"}
    return f"| {a} | {b} | {promoted} | {also} | {rejected + screened + never} ({rejected} / {screened} / {never}) |"


if __name__ == "__main__":
    sys.exit(main())
