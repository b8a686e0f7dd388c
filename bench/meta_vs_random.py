"""Does the LLM meta-agent beat random search at the same budget? (and: which feedback mode wins?)

Runs one `harnessopt compare` experiment (the same seed harness, benchmark, splits and budgets for
every arm; arms differ only in the meta model and the feedback mode), then prints what the
acceptance of the meta-agent asks for, per arm:

  - held-out test: seed -> champion mean, and the paired test of champion vs seed (sign-flip p over
    (seed, task) pairs, two-level bootstrap CI over seeds then tasks);
  - iterations that produced a runnable candidate, invalid-output rate, seconds per meta call;
  - and every pair of arms compared on held-out test (the same statistics).

Run from the repo root, one real-model job at a time on a small machine, e.g.

    python bench/meta_vs_random.py --benchmark home_intents --harness harnesses/home_intents_naive.py \\
        --arms Q=local/qwen2.5-coder-1.5b,R=random --seeds 5
    python bench/meta_vs_random.py --benchmark banking77 --data ../shared/data/banking77 \\
        --harness harnesses/banking77_naive.py --arms Q=local/qwen2.5-coder-1.5b,R=random --seeds 3
    python bench/meta_vs_random.py --arms Q=local/qwen2.5-coder-1.5b --feedback summary,scores --seeds 5
    python bench/meta_vs_random.py --summarize traces/bench/<experiment>   # tables of a finished one
    python bench/meta_vs_random.py --summarize traces/bench/<llm arm> traces/bench/<random arm>
        # arms run as separate experiments (e.g. one per core) with the same benchmark, splits and budgets

An interrupted experiment continues where it stopped: run the same command with --resume DIR.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import get_args

from harnessopt.budget import Budget
from harnessopt.comparison import compare, make_grid
from harnessopt.events import InvalidAction
from harnessopt.options import MenuOrder, ProposalMode
from harnessopt.report.data import load_run
from harnessopt.stats import mean_ci, paired_arm_test
from harnessopt.store import RunStore

REPO = Path(__file__).resolve().parents[1]
TASK = "G"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", default="home_intents")
    p.add_argument("--data", help="local data folder (banking77: ../shared/data/banking77)")
    p.add_argument("--harness", default=str(REPO / "harnesses" / "home_intents_naive.py"))
    p.add_argument("--task-model", default="local/gemma-3-270m")
    p.add_argument("--arms", default="Q=local/qwen2.5-coder-1.5b,R=random",
                   help="meta-side aliases: ALIAS=model or ALIAS=random")
    p.add_argument("--feedback", default="traces")
    p.add_argument("--seeds", default="5")
    p.add_argument("--menu-order", default="shuffled", choices=get_args(MenuOrder),
                   help="the LLM's move menu: seeded shuffle, or led by the moves that address the digest's failures")
    p.add_argument("--proposal-mode", default="compose", choices=get_args(ProposalMode),
                   help="LLM arms: compose (pick menu moves or write code) or rank (choose among random draws)")
    p.add_argument("--pool-size", type=int, default=9, help="draws an LLM arm chooses among (--proposal-mode rank)")
    p.add_argument("--iterations", type=int, default=4)
    p.add_argument("--max-rollouts", type=int, default=200)
    p.add_argument("--meta-steps", type=int, default=10)
    p.add_argument("--search-limit", type=int, default=20)
    p.add_argument("--test-limit", type=int, default=40)
    p.add_argument("--proposals", type=int, default=3)
    p.add_argument("--eval-policy", default="ladder")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per rollout (a loaded machine is slow)")
    p.add_argument("--name", default="meta-vs-random")
    p.add_argument("--out", default="traces/bench")
    p.add_argument("--resume", help="continue this experiment directory")
    p.add_argument("--summarize", nargs="+", metavar="DIR",
                   help="only print the tables of these experiment directories (arms run as separate "
                        "experiments on the same benchmark and splits are paired too)")
    args = p.parse_args()
    if args.summarize:
        summarize(*map(Path, args.summarize))
        return
    models = {TASK: args.task_model}
    for part in args.arms.split(","):
        alias, _, model = part.partition("=")
        models[alias.strip()] = model.strip()
    pairs = ",".join(f"{alias}:{TASK}" for alias in models if alias != TASK)
    if args.resume:
        result = compare(resume=args.resume, progress=print)
    else:
        spec = make_grid(
            name=args.name, harness=args.harness, benchmark=args.benchmark, data=args.data, feedback=args.feedback,
            models=models, pairs=pairs, seeds=args.seeds, parallel=1, out=args.out, search_limit=args.search_limit,
            test_limit=args.test_limit, timeout_s=args.timeout, proposals=args.proposals, eval_policy=args.eval_policy,
            menu_order=args.menu_order, proposal_mode=args.proposal_mode, pool_size=args.pool_size,
            budget=Budget(iterations=args.iterations, rollouts=args.max_rollouts,
                          meta_steps_per_iteration=args.meta_steps))
        result = compare(spec, progress=print)
    summarize(Path(result.experiment_dir))


def arm_of(run_id: str) -> str:
    return run_id.rsplit("-seed", 1)[0]


def meta_seconds(run_dir: Path) -> list[float]:
    out = []
    for path in (run_dir / "meta_cache").glob("*.json"):
        try:
            out.append(float(json.loads(path.read_text())["latency_s"]))
        except (ValueError, KeyError, OSError):
            continue
    return out


def summarize(*experiments: Path) -> None:
    runs = {}
    for experiment in experiments:
        for run_dir in sorted(p for p in (experiment / "runs").iterdir() if (p / "run.json").is_file()):
            data = load_run(run_dir)
            if data.summary.finished:
                runs[run_dir.name] = (run_dir, data)
    arms: dict[str, list] = {}
    for rid, (run_dir, data) in runs.items():
        arms.setdefault(arm_of(rid), []).append((run_dir, data))
    print(f"\n## {', '.join(e.name for e in experiments)}: {len(runs)} finished runs\n")
    print("| arm | runs | seed test | champion test (95% CI) | champion - seed (two-level CI) | p (champion vs seed) "
          "| runnable-candidate iterations | invalid outputs | s per meta call | rollouts |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tables = {}
    for arm, items in sorted(arms.items()):
        champ = {(str(d.summary.seed), t): s for _, d in items for t, s in d.summary.champion_test_tasks.items()}
        seed = {(str(d.summary.seed), t): s for _, d in items for t, s in d.summary.seed_test_tasks.items()}
        tables[arm] = champ
        vs_seed = paired_arm_test(champ, seed, arm_a=f"{arm} champion", arm_b="seed")
        runnable, iterations, invalid, calls, seconds, rollouts = 0, 0, 0, 0, [], []
        for run_dir, d in items:
            store = RunStore.open(run_dir)
            events = store.events()
            made = {c.id: c for c in store.candidates()}
            for it in sorted({e.iter for e in events if e.kind == "iteration_start"}):
                iterations += 1
                ok = [c for c in made.values() if c.id != d.summary.seed_id and _iteration_of(events, c.id) == it
                      and not any(f.startswith("invalid") for f in c.findings)]
                runnable += bool(ok)
            invalid += sum(1 for e in events if isinstance(e, InvalidAction))
            calls += sum(int(r.note.split(": ")[-1].split()[0]) for r in d.ledger if r.kind == "meta" and ": " in r.note
                         and r.note.split(": ")[-1].split()[0].isdigit())
            seconds += meta_seconds(run_dir)
            rollouts.append(d.summary.rollouts)
        s_mean = statistics.mean(d.summary.seed_test or 0 for _, d in items)
        c_scores = [d.summary.champion_test or 0 for _, d in items]
        c_mean, c_lo, c_hi = mean_ci(c_scores) if len(c_scores) > 1 else (c_scores[0], c_scores[0], c_scores[0])
        per_call = f"{statistics.mean(seconds):.1f}" if seconds else "-"
        inv = f"{invalid}/{calls} ({invalid / calls:.0%})" if calls else "-"
        print(f"| {arm} | {len(items)} | {s_mean:.3f} | {c_mean:.3f} ({c_lo:.3f}-{c_hi:.3f}) | "
              f"{vs_seed.mean_diff:+.3f} ({vs_seed.ci_low:+.3f}..{vs_seed.ci_high:+.3f}) | {vs_seed.p_value:.3g} | "
              f"{runnable}/{iterations} ({runnable / max(1, iterations):.0%}) | {inv} | {per_call} | "
              f"{statistics.mean(rollouts):.0f} |")
    names = sorted(tables)
    if len(names) > 1:
        print("\nArms compared on held-out test (paired over shared seed x task):\n")
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                t = paired_arm_test(tables[a], tables[b], arm_a=a, arm_b=b)
                print(f"- {t.sentence}")
    for arm, items in sorted(arms.items()):
        print(f"\nPer seed, {arm}: " + "; ".join(
            f"seed {d.summary.seed}: test {d.summary.seed_test:.3f} -> {d.summary.champion_test:.3f} "
            f"({d.summary.champion_id}, {d.summary.promoted} promotions)" for _, d in items))


def _iteration_of(events: list, cid: str) -> int:
    return next((e.iter for e in events if e.kind == "candidate" and e.candidate == cid), -1)


if __name__ == "__main__":
    main()
