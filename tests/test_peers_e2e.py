"""bench/vs_gepa.py --quick end to end on the embedded models, then bench/rerun_cost.py on its runs.

GEPA, the LLM meta-agent and the sample arm on a handful of home_intents tasks; Qwen 0.5B is the
meta model and GEPA's reflection model. Then every finished run is rerun: 0 model calls.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("gepa")
pytest.importorskip("llama_cpp")
pytestmark = pytest.mark.e2e


def _bench(repo, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(repo / "src"), "HARNESSOPT_LOCAL_THREADS": os.environ.get(
        "HARNESSOPT_LOCAL_THREADS", "2")}
    return subprocess.run([sys.executable, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=1500)


def test_vs_gepa_quick_runs_every_arm_and_a_rerun_costs_no_model_call(repo, tmp_path):
    out = tmp_path / "bench"
    run = _bench(repo, "bench/vs_gepa.py", "--quick", "--meta-model", "local/qwen2.5-coder-0.5b", "--controls",
                 "S=sample", "--search-limit", "4", "--test-limit", "4", "--max-rollouts", "16", "--meta-steps", "3",
                 "--out", str(out))
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    (experiment,) = out.iterdir()
    gepa = json.loads((experiment / "gepa" / "gepa-seed0" / "run.json").read_text())
    stats = gepa["gepa"]
    # GEPA runs until its metric calls reach the cap, checked between iterations: the overshoot is counted.
    assert stats["metric_calls"] >= 16 and stats["overshoot"] == stats["metric_calls"] - 16
    ledger = (experiment / "gepa" / "gepa-seed0" / "ledger.tsv").read_text().splitlines()[1:]
    search = [row.split("\t") for row in ledger if row.split("\t")[4] == "search"]
    assert stats["charged"] == sum(int(r[8]) for r in search) <= stats["metric_calls"]
    assert gepa["config"]["meta_model"] == "local/qwen2.5-coder-0.5b" and gepa["finished"]
    sample = json.loads((experiment / "runs" / "traces-S-G-seed0" / "run.json").read_text())["sampling"]
    assert (sample["k"], sample["rollouts"]) == ((16 + 2 * 4) // 4, 6 * 4)  # the optimize run's search + test rollouts
    for arm in ("gepa", "traces-Q-G", "traces-S-G"):
        assert f"| {arm} | 1 |" in run.stdout
    assert "Sampling control" in run.stdout and "Predictions vs measured" in run.stdout

    # Arms merged from several experiments: a seed an arm already has is skipped, not counted twice.
    merged = _bench(repo, "bench/vs_gepa.py", "--summarize", str(experiment), str(experiment))
    assert merged.returncode == 0 and merged.stdout.count("(skipped ") == 3, merged.stdout + merged.stderr
    assert "| gepa | 1 |" in merged.stdout and "| traces-S-G | 1 |" in merged.stdout

    again = _bench(repo, "bench/rerun_cost.py", str(experiment))
    assert again.returncode == 0 and "total model calls in the reruns: 0" in again.stdout, again.stdout + again.stderr
    assert again.stdout.count("0 model calls;") == 3


def test_vs_gepa_without_the_llm_arm_needs_a_control(repo):
    run = _bench(repo, "bench/vs_gepa.py", "--no-llm-arm", "--controls", "")
    assert run.returncode == 2 and "--no-llm-arm needs at least one control" in run.stderr
