"""Baseline scores of the shipped harnesses on the embedded model (issue: evaluation foundation).

Run from the repo root (data from the shared data folder beside the repo):
    python bench/baselines.py [--data-root ../shared/data] [--only banking77]
Prints one row per (harness, benchmark): score with 95% CI, tasks, errors, tokens, wall time.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from harnessopt import evaluate  # noqa: E402

RUNS = [
    # (harness, benchmark, data subfolder or None, split, limit)
    ("harnesses/banking77_naive.py", "banking77", "banking77", "test", 100),
    ("harnesses/banking77_fewshot.py", "banking77", "banking77", "test", 100),
    ("harnesses/home_intents_naive.py", "home_intents", None, "test", 100),
    ("harnesses/home_intents_fewshot.py", "home_intents", None, "test", 100),
    ("harnesses/gsm8k_naive.py", "gsm8k", "gsm8k", "test", 50),
    ("harnesses/humaneval_naive.py", "humaneval", None, "test", 50),
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--only", help="run only this benchmark")
    parser.add_argument("--out", default="traces/bench")
    # The embedded model serves one call at a time: a long generation (GSM8K, HumanEval) waits
    # behind the other rollouts' calls, so give rollouts room instead of timing them out.
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    rows = []
    for harness, bench, sub, split, limit in RUNS:
        if args.only and bench != args.only:
            continue
        data = os.path.join(args.data_root, sub) if sub else None
        started = time.time()
        r = evaluate(harness, bench, data=data, split=split, limit=limit, concurrency=args.concurrency,
                     timeout_s=args.timeout, out=args.out)
        rows.append((harness, bench, r))
        print(f"{harness:38s} {bench:12s} score {r.score:.3f} ({r.ci_low:.3f}-{r.ci_high:.3f}) "
              f"tasks {r.n_tasks} errors {r.n_errors} timeouts {r.n_timeouts} tokens {r.usage.tokens} "
              f"wall {time.time() - started:.0f}s run {r.run_dir}", flush=True)


if __name__ == "__main__":
    main()
