"""Baselines of the agent-loop harnesses on `workspace_tasks`, one evaluation at a time.

Run from the repo root:
    python bench/agentic_baselines.py --model local/qwen2.5-coder-1.5b --limit 21
    python bench/agentic_baselines.py --model local/gemma-3-270m --limit 21 --harness agent
Prints one row per harness: score with 95% CI, tasks, errors and timeouts, mean model calls,
tool calls and tool errors per rollout, rollouts that hit the step cap, per-family scores, tokens
and wall time, and appends them as JSON lines to --results. Agent rollouts make many model calls:
a small local model needs a long --timeout; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

from harnessopt import evaluate  # noqa: E402
from harnessopt.records import RolloutTrace  # noqa: E402

HARNESSES = {"naive": "harnesses/workspace_tasks_naive.py", "agent": "harnesses/workspace_tasks_agent.py"}


def loop_stats(run_dir: str) -> dict:
    traces = [RolloutTrace.model_validate_json(p.read_text()) for p in Path(run_dir).glob("rollouts/*/*/*.json")]
    n = max(len(traces), 1)
    family: dict[str, list[float]] = defaultdict(list)
    for t in traces:
        family[t.task_id.split("-")[0]].append(t.score)
    return {
        "model_calls": sum(len(t.model_calls) for t in traces) / n,
        "tool_calls": sum(len(t.tool_calls) for t in traces) / n,
        "tool_errors": sum(c.error is not None for t in traces for c in t.tool_calls) / n,
        "step_cap": sum(any("step cap" in line.msg for line in t.logs) for t in traces),
        "families": {f: round(sum(s) / len(s), 2) for f, s in sorted(family.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="local/qwen2.5-coder-1.5b")
    parser.add_argument("--harness", choices=sorted(HARNESSES), action="append",
                        help="run only these (default: both, naive first)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=21)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--out", default="traces/bench")
    parser.add_argument("--results", default="traces/bench/agentic_baselines.jsonl")
    args = parser.parse_args()
    for name in args.harness or ["naive", "agent"]:
        started = time.time()
        r = evaluate(HARNESSES[name], "workspace_tasks", split=args.split, limit=args.limit, task_model=args.model,
                     concurrency=args.concurrency, timeout_s=args.timeout, out=args.out)
        stats = loop_stats(r.run_dir)
        row = {"harness": name, "model": args.model, "split": args.split, "tasks": r.n_tasks, "score": r.score,
               "ci": [r.ci_low, r.ci_high], "errors": r.n_errors, "timeouts": r.n_timeouts,
               "tokens": r.usage.tokens, "wall_s": round(time.time() - started), "run_dir": r.run_dir, **stats}
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{name:6s} {args.model}: score {r.score:.3f} ({r.ci_low:.3f}-{r.ci_high:.3f}) tasks {r.n_tasks} "
              f"errors {r.n_errors} timeouts {r.n_timeouts} | per rollout {stats['model_calls']:.1f} model calls, "
              f"{stats['tool_calls']:.1f} tool calls, {stats['tool_errors']:.1f} tool errors; step cap hit "
              f"{stats['step_cap']} | {stats['families']} | tokens {r.usage.tokens} wall {row['wall_s']}s "
              f"run {r.run_dir}", flush=True)


if __name__ == "__main__":
    main()
