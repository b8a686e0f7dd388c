"""GEPA on harnessopt's machinery: strict metric, rollout accounting, overshoot, reruns (stub models)."""

from __future__ import annotations

import asyncio
import json

import pytest

from harnessopt.budget import Budget
from harnessopt.errors import UsageError
from harnessopt.options import OptimizeConfig
from harnessopt.records import LLMResponse, Usage
from harnessopt.report.data import load_run
from test_compare import InlineExecutor
from test_sampling import label_benchmark

gepa = pytest.importorskip("gepa")
from harnessopt.peers.gepa_adapter import prompt_constant, with_prompt  # noqa: E402
from harnessopt.peers.gepa_run import run_gepa_async  # noqa: E402

SEED = ('"""Label the input."""\n\nPROMPT = """List the labels for: {{ task.input }}"""\nOTHER = "x"\n\n\n'
        'async def run(task, ctx):\n'
        '    return (await ctx.complete(PROMPT.replace("{{ task.input }}", task.input))).strip()\n')
BETTER = "Label only: {{ task.input }}"


class TwoSidedGateway:
    """Task side (complete): every label for the seed prompt, the right one for BETTER's. Meta side
    (chat): a reflection that proposes BETTER. Counts the calls of each side."""

    def __init__(self):
        self.task_calls = self.meta_calls = 0
        self.usage = Usage()

    async def complete(self, model, prompt, params=None, **_):
        self.task_calls += 1
        text = prompt.split(": ", 1)[1].split()[0] if prompt.startswith("Label only:") else "alpha beta gamma"
        return LLMResponse(model=model, text=text, prompt_tokens=5, completion_tokens=3)

    async def chat(self, model, messages, params=None, **_):
        self.meta_calls += 1
        assert "keep every {{ ... }} placeholder" in messages[-1]["content"]
        return LLMResponse(model=model, text=f"A tighter prompt:\n```\n{BETTER}\n```", prompt_tokens=300,
                           completion_tokens=20)


def config(tmp_path, rollouts=20) -> OptimizeConfig:
    harness = tmp_path / "seed.py"
    harness.write_text(SEED)
    return OptimizeConfig(harness=str(harness), benchmark="labels3", out=str(tmp_path / "runs"), meta_model="stub-meta",
                          budget=Budget(rollouts=rollouts))


def test_the_prompt_constant_is_found_and_replaced_without_touching_the_rest():
    assert prompt_constant(SEED) == ("PROMPT", "List the labels for: {{ task.input }}")
    new = with_prompt(SEED, "PROMPT", 'He said "hi"\\n and """ left')
    assert prompt_constant(new, "PROMPT")[1] == 'He said "hi"\\n and """ left' and new.endswith(SEED.split("OTHER")[1])
    with pytest.raises(UsageError, match="no module-level string constant 'NOPE'"):
        prompt_constant(SEED, "NOPE")


def test_gepa_runs_on_the_evaluator_with_a_strict_metric_and_counts_its_overshoot(tmp_path):
    gw = TwoSidedGateway()
    result = asyncio.run(run_gepa_async(config(tmp_path), benchmark=label_benchmark(), gateway=gw,
                                        executor=InlineExecutor()))
    info = json.loads((tmp_path / "runs" / result.run_dir.split("/")[-1] / "run.json").read_text())
    stats = info["gepa"]
    # Seed on the 10 validation tasks, then one iteration: parent minibatch (3, already run), one
    # reflection, child minibatch (3), child on the validation set (10, 3 already run) = 26 metric calls.
    assert (stats["metric_calls"], stats["overshoot"], stats["charged"], stats["reused"]) == (26, 6, 20, 6)
    assert (stats["reflections"], stats["candidates"], stats["accepted"], stats["best_candidate"]) == (1, 2, 1, "c0001")
    assert gw.task_calls == 20 + 20 and gw.meta_calls == 1  # 20 search rollouts + 2 x 10 test rollouts
    # Strict: "alpha beta gamma" is never an exact label (GEPA's default containment metric would pass it);
    # the held-out test uses the benchmark's scorer like every arm (its first label: right for alpha tasks).
    assert (result.seed_search, result.champion_search) == (0.0, 1.0)
    assert (result.seed_test.score, result.champion_test.score) == (0.4, 1.0)
    run = load_run(result.run_dir)
    assert [(r.kind, r.charged, r.decision) for r in run.ledger if r.kind != "meta"] == [
        ("full", 10, "baseline"), ("spot", 0, "spot"), ("spot", 3, "spot"), ("full", 7, "promoted"),
        ("test", 10, "test"), ("test", 10, "test")]
    assert run.summary.rollouts == 20 and run.summary.meta_tokens == 320
    assert BETTER in (tmp_path / "runs" / run.run_id / "candidates" / "c0001" / "harness.py").read_text()
    # A rerun of the finished run replays GEPA against the run's caches: no model call at all.
    again = TwoSidedGateway()
    rerun = asyncio.run(run_gepa_async(resume=result.run_dir, benchmark=label_benchmark(), gateway=again,
                                       executor=InlineExecutor()))
    assert (again.task_calls, again.meta_calls) == (0, 0)
    assert rerun.champion_test == result.champion_test
    assert len(load_run(result.run_dir).ledger) == len(run.ledger)  # nothing written twice


def test_gepa_needs_a_rollout_budget(tmp_path):
    with pytest.raises(UsageError, match="max-rollouts"):
        asyncio.run(run_gepa_async(config(tmp_path, rollouts=None), benchmark=label_benchmark(),
                                   gateway=TwoSidedGateway(), executor=InlineExecutor()))
