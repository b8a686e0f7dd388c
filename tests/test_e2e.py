"""End to end on the real embedded model (Gemma 3 270M via llama.cpp): small, but real."""

import json

import pytest

from harnessopt import evaluate
from harnessopt.budget import Budget
from harnessopt.optimizer import OptimizeConfig, optimize
from harnessopt.store import RunStore

pytestmark = pytest.mark.e2e


def test_fewshot_beats_naive_on_home_intents_with_full_traces(repo, tmp_path):
    few = evaluate(repo / "harnesses/home_intents_fewshot.py", "home_intents", split="test", limit=6, out=tmp_path)
    naive = evaluate(repo / "harnesses/home_intents_naive.py", "home_intents", split="test", limit=6, out=tmp_path)
    assert few.n_errors == 0 and few.n_rollouts == 6
    assert few.score >= 0.5 > naive.score
    trace = RunStore.open(few.run_dir).rollouts(few.candidate_id)[0]
    call = trace.model_calls[0]
    assert call.kind == "complete" and "Intent:" in call.prompt and call.response is not None
    assert call.prompt_tokens > 50 and call.completion_tokens >= 1 and call.latency_s > 0
    assert any(t.name == "examples.similar" for t in trace.tool_calls)
    assert few.usage.cost_usd == 0.0 and few.usage.tokens > 0


def test_failing_harnesses_become_failed_rollouts_with_the_real_model(tmp_path):
    src = tmp_path / "mixed.py"
    src.write_text(
        "import asyncio\n"
        "async def run(task, ctx):\n"
        "    text = await ctx.complete('Query: ' + task.input + '\\nIntent:', max_tokens=4, stop=['\\n'])\n"
        "    n = int(task.id[-1]) % 3\n"
        "    if n == 0:\n        raise RuntimeError('deliberate failure after ' + repr(text))\n"
        "    if n == 1:\n        await asyncio.sleep(30)\n"
        "    return len(text)\n"
    )
    r = evaluate(src, "home_intents", split="test", limit=4, timeout_s=3, out=tmp_path)
    traces = RunStore.open(r.run_dir).rollouts(r.candidate_id)
    assert len(traces) == 4 and all(t.status != "ok" for t in traces)
    kinds = {t.error.type for t in traces}
    assert kinds <= {"RuntimeError", "Timeout", "TypeError"} and len(kinds) >= 2
    raised = [t for t in traces if t.error.type == "RuntimeError"]
    assert all(t.model_calls and "deliberate failure" in t.error.traceback for t in raised)


def test_optimize_end_to_end_with_gemma_as_task_and_meta_model(repo, tmp_path):
    config = OptimizeConfig(
        harness=str(repo / "harnesses/home_intents_naive.py"), benchmark="home_intents", meta_model="local/gemma-3-270m",
        budget=Budget(iterations=1, rollouts=24, meta_steps_per_iteration=2), search_limit=4, test_limit=4,
        out=str(tmp_path),
    )
    result = optimize(config)
    store = RunStore.open(result.run_dir)
    ledger = store.ledger()
    assert [r.kind for r in ledger][:2] == ["full", "noise"] and ledger[-1].kind == "test"
    assert result.spend.rollouts <= 24 and result.spend.meta.calls >= 1
    assert result.champion_search >= result.seed_search
    # every candidate on disk is complete, every ledger candidate exists, transcripts were written
    assert all(store.has_candidate(r.candidate) for r in ledger if r.kind != "meta")
    assert (store.path / "meta" / "001.jsonl").is_file()
    actions = [e for e in store.events() if e.kind in ("action", "invalid_action")]
    assert actions, "the meta-agent took no step"
    info = json.loads((store.path / "run.json").read_text())
    assert info["finished"] is True and info["result"]["champion_id"] == result.champion_id


def test_cli_optimize_with_the_random_proposer_on_the_real_model(repo, tmp_path, capsys):
    """`--meta-model random` is not a model string: it must pass the CLI and optimizer preflights
    and run pattern search with the embedded task model."""
    from harnessopt.cli import main

    code = main(["optimize", "--harness", str(repo / "harnesses/home_intents_naive.py"), "--benchmark", "home_intents",
                 "--meta-model", "random", "--iterations", "1", "--max-rollouts", "16", "--search-limit", "4",
                 "--test-limit", "4", "--out", str(tmp_path), "--seed", "1"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    store = RunStore.open(run_dir)
    actions = [e.action for e in store.events() if e.kind == "action"]
    assert actions and set(actions) == {"propose"}  # menu picks, through the same protocol as a model
    # 8 rollouts left after the baseline: the ladder screens the first two proposals on 4 tasks each
    assert [(r.candidate, r.charged) for r in store.ledger() if r.kind == "spot"] == [("c0001", 4), ("c0002", 4)]
    assert store.info()["result"]["spend"]["meta"]["calls"] == 0


def test_optimize_end_to_end_with_gemma_task_and_qwen_meta_model(repo, tmp_path):
    """Two embedded models in one process: Gemma runs the harness, Qwen (0.5B here, to keep the
    suite short) drives the proposal protocol under its reply grammar. Every iteration yields a
    runnable candidate: after two failed proposals only menu picks are accepted."""
    config = OptimizeConfig(
        harness=str(repo / "harnesses/home_intents_naive.py"), benchmark="home_intents",
        meta_model="local/qwen2.5-coder-0.5b", proposals=1, eval_policy="ladder", screen_tasks=3,
        budget=Budget(iterations=1, rollouts=40, meta_steps_per_iteration=6), search_limit=6, test_limit=4,
        out=str(tmp_path),
    )
    result = optimize(config)
    store = RunStore.open(result.run_dir)
    made = [c for c in store.candidates() if c.id != "c0000" and not any(f.startswith("invalid") for f in c.findings)]
    assert made, [e for e in store.events() if e.kind in ("invalid_action", "action")]
    assert not [e for e in store.events() if e.kind == "invalid_action"]  # the grammar keeps every reply readable
    assert result.spend.meta.calls >= 1 and result.spend.rollouts <= 40
    assert [r.candidate for r in store.ledger() if r.kind == "spot"] == [made[0].id]
    transcript = store.transcripts()["001"]
    assert transcript[0]["role"] == "system" and "# Improve a harness" in transcript[0]["content"]


def test_the_embedded_qwen_ranks_the_random_controls_draws_under_its_grammar(repo, tmp_path):
    """Proposal mode rank on the real models: one reply per iteration that names exactly
    `proposals` draws of the pool, and the ladder screens them."""
    config = OptimizeConfig(
        harness=str(repo / "harnesses/home_intents_naive.py"), benchmark="home_intents",
        meta_model="local/qwen2.5-coder-0.5b", proposals=2, eval_policy="ladder", screen_tasks=2,
        proposal_mode="rank", pool_size=4, budget=Budget(iterations=1, rollouts=30), search_limit=6, test_limit=3,
        out=str(tmp_path),
    )
    result = optimize(config)
    store = RunStore.open(result.run_dir)
    assert result.spend.meta.calls == 1 and not [e for e in store.events() if e.kind == "invalid_action"]
    ranked = [c for c in store.candidates() if c.id != "c0000"]
    assert len(ranked) == 2 and all(c.hypothesis.startswith("ranked ") for c in ranked)
    assert "## Candidate changes" in store.transcripts()["001"][1]["content"]
    assert sorted(r.candidate for r in store.ledger() if r.kind == "spot") == [c.id for c in ranked]


def test_optimize_changes_the_agent_loop_on_workspace_tasks_with_the_real_model(repo, tmp_path, capsys):
    """From the naive ReAct harness, the proposals are agent-loop moves (JSON actions, step cap,
    recovery, ...): new loops that run on the embedded model (Qwen 0.5B, which ends its turns)."""
    from harnessopt.cli import main
    from harnessopt.patterns import applicable

    code = main(["optimize", "--harness", str(repo / "harnesses/workspace_tasks_naive.py"),
                 "--benchmark", "workspace_tasks", "--task-model", "local/qwen2.5-coder-0.5b", "--meta-model", "random",
                 "--iterations", "1", "--proposals", "2", "--screen-tasks", "1", "--max-rollouts", "6",
                 "--search-limit", "1", "--test-limit", "1", "--no-noise-rerun", "--timeout", "600",
                 "--out", str(tmp_path), "--seed", "2"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    store = RunStore.open(run_dir)
    made = [c for c in store.candidates() if c.id != "c0000"]
    assert len(made) == 2
    loop_moves = {p.name for p in applicable("agent")}
    for c in made:
        applied = {step.split("(")[0] for step in c.moves.split(" + ")}
        assert applied and applied <= loop_moves, c.moves
        source = store.candidate_source(c.id)
        assert "'task_shape': 'agent'" in source and "MAX_STEPS" in source
    spots = [r for r in store.ledger() if r.kind == "spot"]
    assert {r.candidate for r in spots} == {c.id for c in made}
    for rollout in (run_dir / "rollouts").glob("*/*/*.json"):
        trace = json.loads(rollout.read_text())
        assert trace["status"] == "ok" and trace["model_calls"], trace.get("error")
