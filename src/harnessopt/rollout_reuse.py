"""Rollouts that earlier runs under the same root already made, reused by a new run.

A rollout's cache key names everything its outcome depends on: the harness code, the benchmark's
data, the task, the trial, the model and its parameters. A run directory reuses its own rollouts
by that key (store.py); this module lets a new run (`harnessopt gate`) look for the same keys in
the run directories beside it, so a CI job that keeps its `--out` folder between jobs does not
pay again for the unchanged baseline harness. Copies say where they came from (`reused_from`).

Only successful rollouts are reused: an error or a timeout may have been the machine's or the
provider's (a rate limit, a slow CI runner), not the harness's, so it is run again.
"""

from __future__ import annotations

import json
from pathlib import Path

from harnessopt.harness import HarnessFile
from harnessopt.history import StoreError
from harnessopt.records import LabelledTask, SplitName
from harnessopt.store import RunStore


def _same_benchmark(run_dir: Path, fingerprint: str) -> bool:
    """Cheap pre-check from run.json: only runs on the same data can hold matching keys."""
    try:
        info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get("benchmark_fingerprint") == fingerprint


def earlier_run_dirs(root: Path, fingerprint: str, exclude: Path) -> list[Path]:
    """Run directories directly under `root` on the same benchmark data, newest first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and p.resolve() != exclude.resolve()
             and (p / "rollouts").is_dir() and _same_benchmark(p, fingerprint)]
    return sorted(found, key=lambda p: p.name, reverse=True)


def reuse_earlier_rollouts(store: RunStore, evaluator, harness: HarnessFile, candidate_id: str,
                           tasks: list[LabelledTask], trials: int, split: SplitName, root: Path) -> int:
    """Copy into `store` every successful rollout an earlier run under `root` made with exactly
    this harness, task, trial, model and parameters; returns how many were copied. The
    evaluator then finds them in its own store and runs only the rest."""
    wanted = {evaluator.cache_key(harness, t, k) for t in tasks for k in range(trials)}
    wanted = {key for key in wanted if store.cached(key) is None}
    copied = 0
    for run_dir in earlier_run_dirs(root, evaluator.benchmark.fingerprint, store.path):
        if not wanted:
            break
        try:
            earlier = RunStore.open(run_dir)  # a reader: takes no lock, changes nothing
        except StoreError:
            continue  # another format or a damaged run.json: not a source of truth
        for key in sorted(wanted):
            trace = earlier.cached(key)
            if trace is None or trace.status != "ok":
                continue
            origin = f"{run_dir.name}/{trace.reused_from or trace.candidate_id}"
            store.write_rollout(trace.model_copy(update={"candidate_id": candidate_id, "split": split,
                                                          "reused_from": origin}))
            wanted.discard(key)
            copied += 1
    return copied
