"""Measured effect of each harness pattern on shipped benchmarks, with the embedded model.

Run from the repo root (one real-model job at a time on a small machine):
    python bench/patterns_effect.py --only banking77 [--limit 40] [--data-root ../shared/data]
    python bench/patterns_effect.py --only home_intents
    python bench/patterns_effect.py --only gsm8k --limit 15

For each benchmark it evaluates, on the first N tasks of the test split (seeded order, 1 trial):
  1. the naive shipped baseline (one zero-shot chat turn);
  2. the baseline + each applicable pattern alone (default params): the pattern's effect "cold";
  3. a base stack (completion_mode + retrieval_fewshot), then the base + each remaining pattern:
     the pattern's marginal effect on a harness that already works.
It prints one markdown row per harness (score, 95% CI, delta vs its "before", model calls per
task, wall time) and writes the rows as JSON beside the run directories.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harnessopt import evaluate, load_benchmark  # noqa: E402
from harnessopt.harness import harness_from_source  # noqa: E402
from harnessopt.patterns import apply_pattern  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# benchmark -> (naive harness, data subfolder or None, task shape, base stack, patterns on the base)
PLANS = {
    "banking77": ("banking77_naive.py", "banking77", "classification",
                  [("completion_mode", {}), ("retrieval_fewshot", {"k": 8})],
                  [("label_constraint", {}), ("label_constraint", {"mode": "grammar"}), ("self_consistency", {"n": 3}),
                   ("verify_retry", {}), ("format_repair", {})]),
    "home_intents": ("home_intents_naive.py", None, "classification",
                     [("completion_mode", {}), ("retrieval_fewshot", {"k": 8})],
                     [("label_constraint", {}), ("label_constraint", {"mode": "grammar"}),
                      ("self_consistency", {"n": 3}), ("verify_retry", {}), ("format_repair", {})]),
    "gsm8k": ("gsm8k_naive.py", "gsm8k", "math",
              [("completion_mode", {}), ("retrieval_fewshot", {"k": 4})],
              [("tool_use", {"tool": "calculator"}), ("tool_use", {"tool": "python"}), ("self_consistency", {"n": 3}),
               ("verify_retry", {}), ("format_repair", {})]),
}
# Patterns tried alone on the naive baseline (chat_mode is a no-op there: the baseline is chat).
ALONE = {
    "classification": [("retrieval_fewshot", {"k": 8}), ("completion_mode", {}), ("label_constraint", {}),
                       ("self_consistency", {"n": 3}), ("verify_retry", {}), ("format_repair", {})],
    "math": [("retrieval_fewshot", {"k": 4}), ("completion_mode", {}), ("tool_use", {"tool": "calculator"}),
             ("self_consistency", {"n": 3}), ("verify_retry", {}), ("format_repair", {})],
}


def label(name: str, params: dict) -> str:
    shown = ",".join(f"{k}={v}" for k, v in params.items())
    return f"{name}({shown})" if shown else name


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=sorted(PLANS), action="append", help="benchmark(s) to run (default all)")
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--limit", type=int, default=40, help="test tasks per evaluation")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per rollout")
    parser.add_argument("--out", default="traces/bench-patterns")
    parser.add_argument("--skip-alone", action="store_true",
                        help="skip the patterns-alone-on-naive rows (on GSM8K the naive chat harness echoes: all 0)")
    args = parser.parse_args()
    rows = []
    print("| benchmark | harness | before | score | 95% CI | delta | tasks | errors | calls/task | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for bench in args.only or list(PLANS):
        naive_file, sub, shape, base_stack, on_base = PLANS[bench]
        data = os.path.join(args.data_root, sub) if sub else None
        benchmark = load_benchmark(bench, data=data)
        naive = (REPO / "harnesses" / naive_file).read_text()

        def build(steps):
            src = naive
            for name, params in steps:
                src = apply_pattern(src, name, params, shape).source
            return src

        plan = [("naive", [], None)]
        if not args.skip_alone:
            plan += [(f"naive + {label(n, p)}", [(n, p)], "naive") for n, p in ALONE[shape]]
        base_name = "base = naive + " + " + ".join(label(n, p) for n, p in base_stack)
        plan.append((base_name, base_stack, "naive"))
        plan += [(f"base + {label(n, p)}", base_stack + [(n, p)], base_name) for n, p in on_base]
        scores: dict[str, float] = {}
        for name, steps, before in plan:
            source = build(steps)
            harness = harness_from_source(source, f"{bench}-{len(scores):02d}.py")
            started = time.time()
            r = evaluate(harness, benchmark, split="test", limit=args.limit, concurrency=args.concurrency,
                         timeout_s=args.timeout, out=args.out)
            wall = time.time() - started
            scores[name] = r.score
            delta = f"{r.score - scores[before]:+.3f}" if before else ""
            row = {"benchmark": bench, "harness": name, "before": before or "", "score": r.score, "ci_low": r.ci_low,
                   "ci_high": r.ci_high, "delta": delta, "tasks": r.n_tasks, "errors": r.n_errors,
                   "calls_per_task": r.usage.calls / max(1, r.n_rollouts), "wall_s": wall, "run_dir": r.run_dir}
            rows.append(row)
            print(f"| {bench} | {name} | {'base' if before == base_name else before or ''} | {r.score:.3f} | "
                  f"{r.ci_low:.2f}-{r.ci_high:.2f} | {delta} | {r.n_tasks} | {r.n_errors} | "
                  f"{row['calls_per_task']:.1f} | {wall:.0f} |", flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"patterns_effect-{'-'.join(args.only or list(PLANS))}-{int(time.time())}.json"
    path.write_text(json.dumps(rows, indent=1))
    print(f"rows written to {path}")


if __name__ == "__main__":
    main()
