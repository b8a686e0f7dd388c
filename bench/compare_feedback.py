"""A real comparison on the embedded model (issue: experiments and reports).

Feedback traces vs scores, 3 seeds each, on the shipped home_intents benchmark, starting from
harnesses/home_intents_naive.py, with budgets that fit a CI-sized machine (2 cores, under 30 min):
2 iterations x 4 meta-agent steps, 20 search tasks, 30 test tasks, 120 search rollouts per run.

Run from the repo root (the embedded model is CPU-heavy: do not overlap it with other runs):
    python bench/compare_feedback.py                       # traces vs scores, 3 seeds
    python bench/compare_feedback.py --cross               # same vs cross pairing grid (2 local configs)
    python bench/compare_feedback.py --resume traces/experiments/<id>

The cross grid has no second model family offline, so model B is the same Gemma weights decoded
at another temperature (`local/gemma-3-270m@t0.9`), and is labelled as such in every report.
See docs/EXPERIMENTS.md for real cross-family pairings with API keys.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harnessopt.budget import Budget  # noqa: E402
from harnessopt.comparison import compare, make_grid  # noqa: E402
from harnessopt.optimizer import print_progress  # noqa: E402
from harnessopt.report import write_report  # noqa: E402
from harnessopt.report.experiment_data import load_experiment  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cross", action="store_true", help="run the pairing grid A:A,A:B,B:A,B:B instead")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=2)
    parser.add_argument("--search-limit", type=int, default=20)
    parser.add_argument("--test-limit", type=int, default=30)
    parser.add_argument("--max-rollouts", type=int, default=120)
    parser.add_argument("--meta-steps", type=int, default=4)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--out", default="traces/experiments")
    parser.add_argument("--resume", help="experiment directory to continue")
    args = parser.parse_args()
    started = time.time()
    if args.resume:
        result = compare(resume=args.resume, progress=print_progress)
    else:
        common = dict(
            harness="harnesses/home_intents_naive.py", benchmark="home_intents", seeds=args.seeds,
            search_limit=args.search_limit, test_limit=args.test_limit, parallel=args.parallel, out=args.out,
            budget=Budget(iterations=args.iterations, rollouts=args.max_rollouts,
                          meta_steps_per_iteration=args.meta_steps),
        )
        if args.cross:
            spec = make_grid(name="pairing", feedback=["traces"], pairs=["A:A", "A:B", "B:A", "B:B"],
                             models={"A": "local/gemma-3-270m", "B": "local/gemma-3-270m@t0.9"}, **common)
        else:
            spec = make_grid(name="feedback", feedback=["traces", "scores"], pairs=["A:A"],
                             models={"A": "local/gemma-3-270m"}, **common)
        result = compare(spec, progress=print_progress)
    write_report(result.experiment_dir)
    exp = load_experiment(result.experiment_dir)
    print(f"\n{'arm':<22} {'seeds':>5} {'seed test':>9} {'champion test':>13} {'95% CI':>13} {'improvement':>11} "
          f"{'rollouts':>8} {'to best':>7} {'spot/full':>9} {'agree':>6}")
    for a in exp.arms:
        b = a.behaviour
        ci = f"{a.champion_test_ci[0]:.3f}-{a.champion_test_ci[1]:.3f}" if a.champion_test_ci else "-"
        print(f"{a.name:<22} {a.runs_finished:>5} {a.seed_test or 0:>9.3f} {a.champion_test or 0:>13.3f} {ci:>13} "
              f"{a.improvement or 0:>+11.3f} {a.rollouts:>8.0f} {a.rollouts_to_best or 0:>7.0f} "
              f"{b.spot_checks:>4}/{b.full_evals:<4} {b.agreements}/{b.followed_by_full}")
    for c in exp.comparisons:
        print(f"- {c.sentence}")
    print(f"\nwall {time.time() - started:.0f} s; report: {result.experiment_dir}/report.md, report.html")


if __name__ == "__main__":
    main()
