"""Is the promotion gate too strict? Replay finished runs' full evaluations under other gates.

A candidate replaces the champion only when the paired bootstrap interval of its search-score gain
excludes 0 (acceptance.py). With 20 search tasks and a deterministic task model, a candidate that
is never worse and better on 3 tasks (+0.15) is rejected: the 95% interval's lower end is exactly 0.
This script asks what other gates would have chosen, and what that would have been worth on
held-out test:

1. every candidate a finished run fully evaluated on search (promoted or not) is evaluated on the
   run's test tasks, with the run's task model and settings (cached under <out>);
2. the run's full evaluations are replayed in their order under each gate; each gate's last
   champion is its result, scored on test.

The replay is approximate in one way: with another gate the meta-agent would have seen another
champion and proposed other candidates; only the candidates this run made are replayed.

    python bench/gate_counterfactual.py <experiment or run dir> [...] --out traces/gates
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from harnessopt import evaluate
from harnessopt.acceptance import decide_paired
from harnessopt.stats import mean_ci
from harnessopt.store import RunStore

# name -> (confidence of the two-sided bootstrap interval whose lower end must clear 0, or None:
# any gain over the noise floor)
GATES = {"95% two-sided (current)": 0.95, "90% two-sided (one-sided 95%)": 0.90, "any gain": None}


def run_dirs(paths: list[Path]) -> list[Path]:
    out = []
    for p in paths:
        out += sorted({r.parent for r in p.rglob("run.json") if (r.parent / "ledger.tsv").is_file()})
    return [d for d in out if json.loads((d / "run.json").read_text()).get("finished")]


def per_task(store: RunStore, cid: str, split: str) -> dict[str, float]:
    scores: dict[str, list[float]] = {}
    for t in store.rollouts(cid):
        if t.split == split:
            scores.setdefault(t.task_id, []).append(t.score or 0.0)
    return {k: statistics.mean(v) for k, v in scores.items()}


def promotes(mine: dict[str, float], theirs: dict[str, float], confidence: float | None, noise: float,
             seed: int) -> bool:
    """The run's own promotion rule at another confidence; None: any mean gain over the noise floor."""
    if confidence is not None:
        return decide_paired(mine, theirs, noise_floor=noise, seed=seed, confidence=confidence).promote
    common = set(mine) & set(theirs)
    return bool(common) and statistics.mean(mine[t] - theirs[t] for t in common) > noise


def test_score(run: Path, config: dict, store: RunStore, cid: str, out: Path) -> float:
    """The candidate's test score: from the run when it was tested there, else evaluated now."""
    tested = per_task(store, cid, "test")
    if len(tested) >= config["test_limit"]:
        return statistics.mean(tested.values())
    target = out / f"{run.parent.parent.name}-{run.name}-{cid}"
    result = evaluate(run / "candidates" / cid / "harness.py", config["benchmark"], split="test",
                      limit=config["test_limit"], task_model=config["task_model"], data=config["data"],
                      seed=config["seed"], temperature=config["temperature"], max_tokens=config["max_tokens"],
                      timeout_s=config["timeout_s"], out=target, concurrency=1)
    return result.score


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dirs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, default=Path("traces/gates"))
    args = p.parse_args(argv)
    rows: dict[str, list[float]] = {g: [] for g in GATES}
    print("| run | full evaluations (search, promoted by the run) | " + " | ".join(GATES) + " |")
    print("|---|---|" + "---|" * len(GATES))
    for run in run_dirs(args.dirs):
        store = RunStore.open(run)
        info = json.loads((run / "run.json").read_text())
        config, noise = info["config"], info.get("result", {}).get("noise_floor") or 0.0
        fulls = [r for r in store.ledger() if r.kind == "full" and r.split == "search"]
        order = list(dict.fromkeys(r.candidate for r in fulls))
        search = {cid: per_task(store, cid, "search") for cid in order}
        shown = ", ".join(f"{cid} {statistics.mean(search[cid].values()):.2f}"
                          + ("*" if any(r.candidate == cid and r.decision == "promoted" for r in fulls) else "")
                          for cid in order)
        cells = []
        for name, confidence in GATES.items():
            champion = order[0]
            for cid in order[1:]:
                if promotes(search[cid], search[champion], confidence, noise, config["seed"]):
                    champion = cid
            score = test_score(run, config, store, champion, args.out)
            rows[name].append(score)
            cells.append(f"{champion} {score:.3f}")
        print(f"| {run.parent.parent.name}/{run.name} | {shown} | " + " | ".join(cells) + " |", flush=True)
    print("\n| gate | runs | mean test of the final champion (95% CI) |\n|---|---:|---:|")
    for name, scores in rows.items():
        m, lo, hi = mean_ci(scores) if len(scores) > 1 else (scores[0], scores[0], scores[0])
        print(f"| {name} | {len(scores)} | {m:.3f} ({lo:.3f}-{hi:.3f}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
