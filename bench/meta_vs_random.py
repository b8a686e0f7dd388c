"""Does the LLM meta-agent beat random search over harness patterns at the same budget?

Run from the repo root (one real-model job at a time on a small machine):
    python bench/meta_vs_random.py [--data ../shared/data/banking77] [--seeds 0 1 2]
        [--iterations 3] [--meta-steps 4] [--search-limit 30] [--test-limit 40]

Both arms start from the naive Banking77 harness, use the embedded model as task model, and get
an identical budget (iterations, search rollouts, meta steps per iteration, search and test
tasks). The benchmark is loaded once, so every run searches and is tested on the same tasks; a
run's seed varies only the proposer's sampling and the task model's seed. Prints one row per
run (seed and champion, search and test scores, promotions, proposals, wall time) and the means.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harnessopt import load_benchmark  # noqa: E402
from harnessopt.budget import Budget  # noqa: E402
from harnessopt.llm import LOCAL_MODEL  # noqa: E402
from harnessopt.optimizer import OptimizeConfig, optimize_async  # noqa: E402
from harnessopt.store import RunStore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "banking77"))
    parser.add_argument("--harness", default=str(REPO / "harnesses" / "banking77_naive.py"))
    parser.add_argument("--proposers", nargs="+", default=[LOCAL_MODEL, "random"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--meta-steps", type=int, default=4)
    parser.add_argument("--rollouts", type=int, default=200, help="search rollouts per run (incl. seed + noise rerun)")
    parser.add_argument("--search-limit", type=int, default=30)
    parser.add_argument("--test-limit", type=int, default=40)
    parser.add_argument("--out", default="traces/bench-meta-vs-random")
    args = parser.parse_args()
    bench = load_benchmark("banking77", data=args.data)
    budget = Budget(iterations=args.iterations, rollouts=args.rollouts, meta_steps_per_iteration=args.meta_steps)
    rows = []
    print(f"budget: {args.iterations} iterations, {args.rollouts} search rollouts, {args.meta_steps} meta steps/iteration, "
          f"{args.search_limit} search tasks, {args.test_limit} test tasks")
    print("| proposer | seed | search seed -> champion | test seed -> champion | champion | promotions | "
          "proposals | pattern / free-form / invalid actions | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for proposer in args.proposers:
        for seed in args.seeds:
            config = OptimizeConfig(harness=args.harness, benchmark="banking77", data=args.data, meta_model=proposer,
                                    budget=budget, seed=seed, search_limit=args.search_limit,
                                    test_limit=args.test_limit, out=args.out, timeout_s=120)
            started = time.time()
            r = asyncio.run(optimize_async(config, benchmark=bench))
            wall = time.time() - started
            events = RunStore.open(r.run_dir).events()
            acts = [e.action for e in events if e.kind == "action"]
            invalid = sum(e.kind == "invalid_action" for e in events)
            pattern = sum(a == "apply_pattern" for a in acts)
            free = sum(a in ("write_harness", "edit_harness") for a in acts)
            row = {"proposer": proposer, "seed": seed, "seed_search": r.seed_search, "champion_search": r.champion_search,
                   "seed_test": r.seed_test.score, "champion_test": r.champion_test.score, "champion": r.champion_id,
                   "promotions": len(r.promotions), "proposals": r.candidates - 1, "pattern_actions": pattern,
                   "free_form_actions": free, "invalid_actions": invalid, "actions": len(acts), "wall_s": wall,
                   "rollouts": r.spend.rollouts, "run_dir": r.run_dir}
            rows.append(row)
            print(f"| {proposer} | {seed} | {r.seed_search:.3f} -> {r.champion_search:.3f} | "
                  f"{r.seed_test.score:.3f} -> {r.champion_test.score:.3f} | {r.champion_id} | {len(r.promotions)} | "
                  f"{r.candidates - 1} | {pattern} / {free} / {invalid} of {len(acts) + invalid} | {wall:.0f} |", flush=True)
    print()
    print("| proposer | mean search (champion) | mean test (champion) | test per seed |")
    print("|---|---|---|---|")
    for proposer in args.proposers:
        mine = [x for x in rows if x["proposer"] == proposer]
        if mine:
            per_seed = ", ".join(format(x["champion_test"], ".3f") for x in mine)
            print(f"| {proposer} | {statistics.mean(x['champion_search'] for x in mine):.3f} | "
                  f"{statistics.mean(x['champion_test'] for x in mine):.3f} | "
                  f"{per_seed} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"meta_vs_random-{int(time.time())}.json"
    path.write_text(json.dumps(rows, indent=1))
    print(f"rows written to {path}")


if __name__ == "__main__":
    main()
