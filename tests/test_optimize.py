"""The optimize loop with scripted meta-agents and a stub task model (unit tests, no real LLM)."""

import asyncio
import json

import pytest

from harnessopt.benchmark import Benchmark
from harnessopt.budget import Budget
from harnessopt.errors import UsageError
from harnessopt.meta.llm_proposer import LLMProposer
from harnessopt.meta.protocol import ProtocolSettings
from harnessopt.optimizer import OptimizeConfig, optimize_async
from harnessopt.store import RunStore
from scripted import Crash, ScriptedMetaGateway, ScriptedProposer
from stubs import StubGateway

N_SEARCH = 30
SEED = 'async def run(task, ctx):\n    return (await ctx.complete("echo " + task.input)).strip()\n'
GOOD = 'async def run(task, ctx):\n    return (await ctx.complete("double " + task.input)).strip()\n'
SLIGHT = ('async def run(task, ctx):\n    verb = "double " if task.input == "3" else "echo "\n'
          '    return (await ctx.complete(verb + task.input)).strip()\n')
WORSE = 'async def run(task, ctx):\n    return "nothing"\n'
MARKER = "ZEBRA-TRACE-MARKER"
NOISY = ('async def run(task, ctx):\n'
         f'    print("{MARKER} stdout")\n    ctx.log("{MARKER} log")\n'
         f'    if task.input == "1":\n        raise ValueError("{MARKER} error")\n'
         f'    return "{MARKER} answer"\n')


def double_model(prompt: str) -> str:
    verb, _, n = prompt.partition(" ")
    return f" {int(n) * 2}" if verb == "double" else f" {n}"


def arith_benchmark() -> Benchmark:
    def item(n, split):
        return {"id": f"{split}-{n}", "input": str(n), "target": str(2 * n)}
    return Benchmark.from_records(
        "arith", train=[item(n, "train") for n in range(100, 110)],
        search=[item(n, "search") for n in range(1, N_SEARCH + 1)], test=[item(n, "test") for n in range(50, 60)],
        scorer="exact",
    )


def config(tmp_path, harness=SEED, **kw) -> OptimizeConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "seed.py"
    path.write_text(harness)
    budget = kw.pop("budget", Budget(iterations=2, rollouts=400))
    return OptimizeConfig(harness=str(path), benchmark="arith", budget=budget, out=str(tmp_path / "runs"),
                          meta_model="scripted", **kw)


def run(cfg, proposer, gateway=None, **kw):
    gateway = gateway or StubGateway(double_model)
    result = asyncio.run(optimize_async(cfg, proposer=proposer, gateway=gateway, benchmark=arith_benchmark(), **kw))
    return result, gateway


def write(code, hypothesis="h"):
    return {"action": "write_harness", "code": code, "hypothesis": hypothesis}


def test_full_win_promotes_and_spot_check_and_full_are_charged(tmp_path):
    proposer = ScriptedProposer([[
        write(GOOD, "double instead of echo"),
        {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"], "trials": 1},
        {"action": "full_eval", "candidate": "c0001"},
    ]])
    result, gateway = run(config(tmp_path), proposer)
    assert "informs only" in proposer.observations[1] and "mean 1.000" in proposer.observations[1]
    assert result.champion_id == "c0001" and result.promotions == ["c0001"]
    assert result.seed_search == 0.0 and result.champion_search == 1.0
    assert result.seed_test.score == 0.0 and result.champion_test.score == 1.0
    # seed full + noise rerun (30 + 30), spot-check 2, full eval of c0001 28 new (2 reused from the spot-check)
    assert result.spend.rollouts == 30 + 30 + 2 + 28
    # The ledger alone says what each evaluation charged and reused, and what was decided.
    assert [(r.iter, r.candidate, r.kind, r.charged, r.reused, r.decision) for r in result.history] == [
        (0, "c0000", "full", 30, 0, "baseline"), (0, "c0000", "noise", 30, 0, "noise"),
        (1, "c0001", "spot", 2, 0, "spot"), (1, "c0001", "full", 28, 2, "promoted"),
        (1, "", "meta", 0, 0, "meta"), (2, "", "meta", 0, 0, "meta"),
        (2, "c0000", "test", 10, 0, "test"), (2, "c0001", "test", 10, 0, "test")]
    assert sum(r.charged for r in result.history if r.split == "search") == result.spend.rollouts
    promoting = result.history[3]
    assert promoting.note.startswith("promoted: +1.000") and promoting.parent == "c0000"
    assert promoting.tokens == sum(t.usage.tokens for t in RunStore.open(result.run_dir).rollouts("c0001")
                                   if t.split == "search" and t.task_id not in ("search-1", "search-2"))
    assert gateway.usage.calls == 90 + 20  # search rollouts + 2 x 10 test rollouts, each one model call
    store = RunStore.open(result.run_dir)
    assert [e.candidate for e in store.events() if e.kind == "promoted"] == ["c0001"]
    assert store.candidate_meta("c0001").parent == "c0000" and "double" in store.candidate_meta("c0001").diff


def test_spot_checks_never_promote(tmp_path):
    proposer = ScriptedProposer([[write(GOOD), {"action": "spot_check", "candidate": "c0001",
                                                "task_ids": [f"search-{i}" for i in range(1, N_SEARCH + 1)]}]])
    result, _ = run(config(tmp_path), proposer)
    assert result.champion_id == "c0000" and result.promotions == []


def test_an_insignificant_win_is_not_promoted(tmp_path):
    proposer = ScriptedProposer([[write(SLIGHT), {"action": "full_eval", "candidate": "c0001"}]])
    result, _ = run(config(tmp_path), proposer)
    assert result.champion_id == "c0000"
    assert "includes 0" in proposer.observations[1]


def test_a_worse_candidate_never_replaces_the_champion(tmp_path):
    proposer = ScriptedProposer([
        [write(GOOD), {"action": "full_eval", "candidate": "c0001"}],
        [write(WORSE), {"action": "full_eval", "candidate": "c0002"}],
    ])
    result, _ = run(config(tmp_path), proposer)
    assert result.champion_id == "c0001"
    store = RunStore.open(result.run_dir)
    assert store.has_candidate("c0002") and len(store.rollouts("c0002")) == N_SEARCH  # kept on disk


def test_test_split_and_unknown_things_are_refused_with_error_observations(tmp_path):
    proposer = ScriptedProposer([[
        {"action": "spot_check", "candidate": "c0000", "task_ids": ["test-50"]},
        {"action": "read_trace", "candidate": "c0000", "task_id": "test-51"},
        {"action": "spot_check", "candidate": "c0009", "task_ids": ["search-1"]},
        {"action": "edit_harness", "search": "not in the code", "replace": "x", "hypothesis": "h"},
        write("def run(:\n"),
        {"action": "full_eval", "candidate": "c0001"},
    ]])
    result, _ = run(config(tmp_path), proposer)
    obs = proposer.observations
    assert obs[0].startswith("error:") and "held-out test split" in obs[0]
    assert obs[1].startswith("error:") and "held-out test split" in obs[1]
    assert "unknown candidate" in obs[2]
    assert "does not occur" in obs[3]
    assert "cannot run" in obs[4] and "syntax error" in obs[4]
    assert obs[5].startswith("error:")
    assert all("[budget]" in o for o in obs)
    store = RunStore.open(result.run_dir)
    meta_visible = [t for t in store.rollouts("c0000") if t.split == "test" and t.candidate_id == "c0000"]
    assert {t.task_id for t in meta_visible} == {f"test-{n}" for n in range(50, 60)}  # only the final test eval
    assert all(row.kind == "test" for row in store.ledger() if row.split == "test")


def test_gaming_literals_are_flagged_and_never_promoted(tmp_path):
    cheat = ('ANSWERS = {"search-1": "2", "search-2": "4", "search-3": "6"}\n'
             'async def run(task, ctx):\n    return str(2 * int(task.input))\n')
    proposer = ScriptedProposer([[write(cheat), {"action": "full_eval", "candidate": "c0001"}]])
    result, _ = run(config(tmp_path), proposer)
    store = RunStore.open(result.run_dir)
    assert any("gaming" in f for f in store.candidate_meta("c0001").findings)
    assert result.champion_id == "c0000" and "not promoted: gaming" in proposer.observations[1]


def test_rollout_budget_is_reserved_before_launching_and_never_exceeded(tmp_path):
    cfg = config(tmp_path, budget=Budget(iterations=3, rollouts=75), concurrency=4)
    proposer = ScriptedProposer([
        [write(GOOD), {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"]}],
        [{"action": "full_eval", "candidate": "c0001"}],  # needs 28 more, only 13 left: refused
        [{"action": "spot_check", "candidate": "c0001", "task_ids": [f"search-{i}" for i in range(3, 16)]}],
    ])
    result, gateway = run(cfg, proposer)
    assert "error: needs 28 rollouts but only 13" in proposer.observations[2]
    assert result.spend.rollouts == 75 and result.stop_reason.startswith("rollout budget used")
    assert gateway.usage.calls == 75 + 10  # search calls never exceed the cap; plus the seed's test eval


def test_baseline_that_cannot_fit_is_refused_before_any_run_directory(tmp_path):
    with pytest.raises(UsageError, match="cannot cover the seed's baseline"):
        run(config(tmp_path, budget=Budget(iterations=1, rollouts=10)), ScriptedProposer([]))
    assert not (tmp_path / "runs").exists()


def test_identical_code_reuses_rollouts_instead_of_paying(tmp_path):
    proposer = ScriptedProposer([[write(SEED, "same code"), {"action": "full_eval", "candidate": "c0001"}]])
    result, gateway = run(config(tmp_path), proposer)
    assert gateway.usage.calls == 60 + 10  # seed + noise rerun + one test eval (c0000 stays champion)
    reused = RunStore.open(result.run_dir).rollouts("c0001")
    assert len(reused) == N_SEARCH and all(t.reused_from == "c0000" for t in reused)


def test_kill_and_resume_loses_nothing_and_pays_nothing_twice(tmp_path):
    script = [
        [write(GOOD), {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"]},
         {"action": "full_eval", "candidate": "c0001"}],
        [write(WORSE), {"action": "full_eval", "candidate": "c0002"}, {"action": "note", "text": "worse"}],
    ]
    whole, whole_gw = run(config(tmp_path / "a"), ScriptedProposer(script))

    gateway = StubGateway(double_model)
    with pytest.raises(Crash):
        run(config(tmp_path / "b"), ScriptedProposer(script, crash_at=4), gateway=gateway)
    run_dir = next((tmp_path / "b" / "runs").iterdir())
    ledger_before = RunStore.open(run_dir).ledger()
    resumed, _ = run(None, ScriptedProposer(script), gateway=gateway, resume=run_dir)

    assert gateway.usage.calls == whole_gw.usage.calls  # nothing paid twice across kill + resume
    assert resumed.champion_id == whole.champion_id == "c0001"
    assert resumed.champion_test == whole.champion_test and resumed.spend.rollouts == whole.spend.rollouts
    store = RunStore.open(run_dir)
    ledger = store.ledger()
    assert ledger[: len(ledger_before)] == ledger_before  # history kept, not rewritten
    assert [r.kind for r in ledger] == [r.kind for r in whole.history]
    assert [e.kind for e in store.events()] == [e.kind for e in RunStore.open(whole.run_dir).events()]
    assert (store.path / "notebook.md").read_text().count("worse") == 1


def fenced(code: str, hypothesis: str = "double the number") -> str:
    return json.dumps({"action": "write", "predicted": 0.5, "hypothesis": hypothesis}) + "\n```python\n" + code + "```"


@pytest.mark.parametrize("mode, leaks", [("traces", True), ("summary", False), ("scores", False)])
def test_feedback_modes_control_what_reaches_the_meta_model(tmp_path, mode, leaks):
    replies = [
        {"action": "list_failures", "candidate": "c0000"},
        {"action": "read_trace", "candidate": "c0000", "task_id": "search-1"},
        {"action": "read_trace", "candidate": "c0000", "task_id": "search-2"},
        {"action": "search_traces", "pattern": "ZEBRA"},
        fenced(GOOD),
        {"action": "full_eval", "candidate": "c0001"},  # a promotion: the iteration's choices end there
    ]
    meta = ScriptedMetaGateway(replies)
    cfg = config(tmp_path, harness=NOISY, feedback=mode, budget=Budget(iterations=1, rollouts=400))
    proposer = LLMProposer(meta, "scripted-meta", settings=ProtocolSettings(proposals=1, inspect_steps=4))
    result, _ = run(cfg, proposer)
    sent = "\n".join(meta.prompts).replace(NOISY, "")  # the harness code itself may be shown
    assert len(meta.prompts) == len(replies)
    assert (MARKER in sent) is leaks
    if mode == "scores":
        assert "ValueError" not in sent and "stdout" not in sent
    if mode == "summary":
        assert "error ValueError" in sent  # error type yes, message no
    assert result.spend.meta.calls == len(replies)


def test_invalid_meta_output_gets_an_error_observation_and_the_loop_goes_on(tmp_path):
    meta = ScriptedMetaGateway(["not json at all", '{"action": "fly"}', fenced(GOOD),
                                {"action": "full_eval", "candidate": "c0001"}])
    result, _ = run(config(tmp_path, budget=Budget(iterations=1, rollouts=400)),
                    LLMProposer(meta, "m", settings=ProtocolSettings(proposals=1)))
    assert "error: no JSON object in the reply" in meta.prompts[1]
    assert "error: unknown action 'fly'; reply with one of: propose, write, edit" in meta.prompts[2]
    assert result.champion_id == "c0001"


def test_the_reply_grammar_only_allows_known_candidate_and_search_task_ids(tmp_path):
    """Under grammar-constrained decoding a small meta model cannot invent ids: the id fields are
    enums of the run's candidates (growing as candidates are made) and its search tasks, and a
    decision can name only candidates that can run."""
    broken = "async def run(task, ctx)\n    return 1\n"
    meta = ScriptedMetaGateway([fenced(broken), fenced(GOOD), {"action": "full_eval", "candidate": "c0002"}])
    run(config(tmp_path, budget=Budget(iterations=1, rollouts=400)),
        LLMProposer(meta, "local/scripted-meta", settings=ProtocolSettings(proposals=1)))
    grammars = [k["response_format"]["grammar"] for k in meta.kwargs]
    assert all(k["response_format"]["type"] == "grammar" for k in meta.kwargs)
    first, second, decide = grammars[:3]
    assert '"\\"c0000\\""' in first and "c0001" not in first and "search-1" in first
    assert "c0001" in second  # a broken candidate may be the parent of its repair
    assert "c0002" in decide and "c0001" not in decide  # but it cannot be evaluated
