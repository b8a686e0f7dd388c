"""bench/eval_policies.py --quick end to end on the embedded task model, with the random control as
the meta side (no meta model to wait for): one experiment per policy, the tables, and a merged
summary that keeps one run per policy and seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.e2e


def _bench(repo, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "HARNESSOPT_LOCAL_THREADS": os.environ.get(
        "HARNESSOPT_LOCAL_THREADS", "2")}
    return subprocess.run([sys.executable, "bench/eval_policies.py", *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=1200)


def _kinds(experiment) -> set[str]:
    """Evaluation kinds of the search rows after the seed's baseline (the seed is always evaluated in full)."""
    (run,) = (experiment / "runs").iterdir()
    rows = [r.split("\t") for r in (run / "ledger.tsv").read_text().splitlines()[1:]]
    header = (run / "ledger.tsv").read_text().splitlines()[0].split("\t")
    cand, kind, split = header.index("candidate"), header.index("kind"), header.index("split")
    return {r[kind] for r in rows if r[split] == "search" and r[cand] != "c0000"}


def test_eval_policies_quick_runs_each_policy_and_merges_summaries(repo, tmp_path):
    out = tmp_path / "bench"
    run = _bench(repo, "--quick", "--meta-model", "random", "--search-limit", "4", "--test-limit", "4",
                 "--max-rollouts", "16", "--out", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (folder,) = out.iterdir()
    experiments = {policy: type(folder)(e) for policy, e in json.loads((folder / "policies.json").read_text()).items()}
    assert set(experiments) == {"meta", "ladder", "always-full"}
    # always-full never screens; the ladder screens every proposal before any full evaluation.
    assert _kinds(experiments["always-full"]) == {"full"}
    assert "spot" in _kinds(experiments["ladder"])
    for policy in experiments:
        assert f"| {policy} | 1 |" in run.stdout
    assert "Goal (meta: same or better test" in run.stdout

    # The folder and one of its own experiments again: the repeated (policy, seed) run is skipped, not counted twice.
    merged = _bench(repo, "--summarize", str(folder), str(experiments["ladder"]))
    assert merged.returncode == 0, merged.stderr[-2000:]
    assert "(skipped " in merged.stdout and "| ladder | 1 |" in merged.stdout
