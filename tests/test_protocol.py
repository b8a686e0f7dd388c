"""The proposal protocol end to end with scripted meta models and a stub task model (no real LLM).

Each rule of the protocol has a test that fails without it: finish is refused before a proposal,
code travels outside JSON (fenced files, search/replace edits) and a broken file gets its reason
back, repeats are refused, a cached re-evaluation is free and says so, the digest differs per
feedback mode, bulk proposals are charged exactly, and the champion line changes only on a change.
"""

from __future__ import annotations

import asyncio
import json

from harnessopt.budget import Budget
from harnessopt.meta.llm_proposer import LLMProposer
from harnessopt.meta.protocol import ProtocolSettings
from harnessopt.meta.random_proposer import RandomProposer
from harnessopt.optimizer import optimize_async
from harnessopt.store import RunStore
from scripted import ScriptedMetaGateway
from stubs import StubGateway
from test_optimize import GOOD, MARKER, NOISY, SEED, arith_benchmark, config, double_model

BROKEN = "async def run(task, ctx)\n    return 'x'\n"


def write(code: str, hypothesis: str = "double the number instead of echoing it", parent: str | None = None) -> str:
    header = {"action": "write", "predicted": 0.5, "hypothesis": hypothesis, **({"parent": parent} if parent else {})}
    return json.dumps(header) + "\n```python\n" + code + "```\n"


def edit(search: str, replace: str, parent: str) -> str:
    header = {"action": "edit", "parent": parent, "predicted": 0.5, "hypothesis": "fix the signature"}
    return json.dumps(header) + f"\n```python\n<<<<<<< SEARCH\n{search}\n=======\n{replace}\n>>>>>>> REPLACE\n```"


def screen(cands, tasks, rationale="screen them on failing tasks"):
    return {"action": "screen", "candidates": cands, "task_ids": tasks, "rationale": rationale}


def full(cand, rationale="it beat the champion on the screen"):
    return {"action": "full_eval", "candidate": cand, "rationale": rationale}


def run(tmp_path, replies, *, settings=None, budget=None, feedback="traces", harness=SEED):
    meta = ScriptedMetaGateway(replies)
    proposer = LLMProposer(meta, "scripted-meta", settings=settings or ProtocolSettings(proposals=1))
    cfg = config(tmp_path, harness=harness, budget=budget or Budget(iterations=1, rollouts=400), feedback=feedback)
    result = asyncio.run(optimize_async(cfg, proposer=proposer, gateway=StubGateway(double_model),
                                        benchmark=arith_benchmark()))
    store = RunStore.open(result.run_dir)
    return result, meta, store


def observations(store: RunStore) -> list[str]:
    return [m["content"] for m in store.transcripts()["001"] if m["role"] == "user"][1:]


def test_finish_before_a_proposal_is_refused_and_the_iteration_still_proposes(tmp_path):
    result, meta, store = run(tmp_path, [{"action": "finish", "note": "looks fine"}, write(GOOD),
                                         screen(["c0001"], ["search-1", "search-2"]), full("c0001")])
    seen = observations(store)
    assert "'finish' is not available now" in seen[0] and "finish comes after a proposal" in seen[0]
    assert result.champion_id == "c0001" and result.promotions == ["c0001"]
    assert any("champion is now c0001 (was c0000)" in s for s in seen)


def test_a_fenced_file_is_a_candidate_and_a_broken_one_gets_its_reason_back_for_repair(tmp_path):
    result, _, store = run(tmp_path, [write(BROKEN), edit("async def run(task, ctx)", "async def run(task, ctx):", "c0001"),
                                      full("c0002")])
    seen = observations(store)
    assert "created c0001, but it cannot run" in seen[0] and "harness.py:1: syntax error" in seen[0] and "Repair it" in seen[0]
    assert store.candidate_source("c0002") == "async def run(task, ctx):\n    return 'x'\n"
    assert store.candidate_meta("c0002").parent == "c0001"
    # The repaired file ran: the full evaluation of c0002 is in the ledger (it scores 0 and is rejected).
    assert [(r.candidate, r.kind, r.decision) for r in result.history if r.kind == "full"][-1] == ("c0002", "full", "rejected")


def test_a_repeated_proposal_is_refused_and_then_only_menu_picks_are_accepted(tmp_path):
    result, _, store = run(tmp_path, [write(SEED), write(GOOD), {"action": "propose", "moves": [1], "predicted": 0.1,
                                                                 "hypothesis": "few-shot examples show the format"},
                                      full("c0001")])
    seen = observations(store)
    assert "that code is already candidate c0000" in seen[0] and "Pick moves from the menu" in seen[0]
    assert "'write' is not available now" in seen[1]  # after a repeat: menu picks only
    assert "created c0001" in seen[2] and store.candidate_meta("c0001").origin == "propose"
    assert result.candidates == 2


def test_full_eval_of_an_already_evaluated_candidate_is_cached_free_and_keeps_the_champion(tmp_path):
    result, _, store = run(tmp_path, [write(GOOD), full("c0000", "recheck the seed"), full("c0001")])
    seen = observations(store)
    assert "cached: c0000 was already fully evaluated" in seen[1] and "nothing charged" in seen[1]
    fulls = [(r.candidate, r.decision) for r in result.history if r.kind == "full"]
    assert fulls == [("c0000", "baseline"), ("c0001", "promoted")]  # no second row for the seed
    assert result.spend.rollouts == 30 + 30 + 30


def test_the_champion_line_appears_only_on_a_change(tmp_path):
    worse = 'async def run(task, ctx):\n    return "nothing"\n'
    _, _, store = run(tmp_path, [write(worse), full("c0001")])
    seen = "\n".join(observations(store))
    assert "champion unchanged: c0000" in seen and "champion is now" not in seen


def test_bulk_proposals_are_screened_and_charged_exactly(tmp_path):
    other = GOOD.replace("double ", "double  ")  # different code, same behaviour after the stub's split
    replies = [write(GOOD), write(other), {"action": "propose", "moves": [1], "predicted": 0.0,
                                             "hypothesis": "few-shot examples might show the format"},
               screen(["c0001", "c0002", "c0003"], ["search-1", "search-2", "search-3", "search-4"]), full("c0001")]
    result, _, store = run(tmp_path, replies, settings=ProtocolSettings(proposals=3))
    rows = [(r.candidate, r.kind, r.charged, r.reused, r.decision) for r in result.history if r.kind in ("spot", "full")]
    assert rows == [("c0000", "full", 30, 0, "baseline"),
                    ("c0001", "spot", 4, 0, "spot"), ("c0002", "spot", 4, 0, "spot"), ("c0003", "spot", 4, 0, "spot"),
                    ("c0001", "full", 26, 4, "promoted")]
    assert result.spend.rollouts == 30 + 30 + 3 * 4 + 26
    choices = [e for e in store.events() if e.kind == "eval_choice"]
    assert [(e.choice, e.candidates, e.rationale) for e in choices][:2] == [
        ("spot", ["c0001", "c0002", "c0003"], "screen them on failing tasks"),
        ("full", ["c0001"], "it beat the champion on the screen")]


def test_the_digest_in_the_prompt_differs_per_feedback_mode(tmp_path):
    prompts = {}
    for mode in ("traces", "summary", "scores"):
        _, meta, _ = run(tmp_path / mode, [write(GOOD), full("c0001")], feedback=mode, harness=NOISY,
                         settings=ProtocolSettings(proposals=1, menu_order="digest"))
        prompts[mode] = meta.prompts[0]
    assert MARKER in prompts["traces"].split("## Failure digest")[1].split("## Tried")[0]
    assert "the harness raised ValueError" in prompts["summary"]
    digest = {m: p.split("## Failure digest of the champion")[1].split("## Tried so far")[0] for m, p in prompts.items()}
    assert MARKER not in digest["summary"] and "e.g." not in digest["summary"]
    assert "ValueError" not in digest["scores"] and "below 1" in digest["scores"]
    # the menu says which failures each move addresses, and leads with those, except in scores mode
    menus = {m: p.split("## Menu of moves")[1] for m, p in prompts.items()}
    assert "\n1. " in menus["traces"] and "[addresses: wrong_answer" in menus["traces"].split("\n2. ")[0]
    assert "[addresses" not in menus["scores"]
    _, meta, _ = run(tmp_path / "shuffled", [write(GOOD), full("c0001")], harness=NOISY)  # the default
    assert "[addresses" not in meta.prompts[0].split("## Menu of moves")[1]


def test_the_ladder_fully_evaluates_only_a_screen_winner(tmp_path):
    worse = 'async def run(task, ctx):\n    return "nothing"\n'
    settings = ProtocolSettings(proposals=2, eval_policy="ladder", screen_tasks=5)
    result, _, store = run(tmp_path, [write(worse), write(GOOD)], settings=settings)
    assert result.champion_id == "c0002"
    rows = [(r.candidate, r.kind, r.charged) for r in result.history if r.kind in ("spot", "full")][1:]
    assert rows == [("c0001", "spot", 5), ("c0002", "spot", 5), ("c0002", "full", 25)]
    settings = ProtocolSettings(proposals=1, eval_policy="ladder", screen_tasks=5)
    result, _, _ = run(tmp_path / "again", [write(worse)], settings=settings)
    assert [r.kind for r in result.history if r.kind in ("spot", "full")] == ["full", "spot"]  # no full for a loser


def test_random_search_runs_the_same_protocol_and_is_seeded(tmp_path):
    def one(path):
        cfg = config(path, budget=Budget(iterations=2, rollouts=400))
        proposer = RandomProposer(seed=3, settings=ProtocolSettings(proposals=2, eval_policy="ladder", screen_tasks=4))
        result = asyncio.run(optimize_async(cfg, proposer=proposer, gateway=StubGateway(double_model),
                                            benchmark=arith_benchmark()))
        return result, RunStore.open(result.run_dir)

    first, store = one(tmp_path / "a")
    second, _ = one(tmp_path / "b")
    made = [c for c in store.candidates() if c.id != "c0000"]
    assert len(made) == 4 and all(c.origin == "propose" for c in made)
    assert [(r.candidate, r.kind, r.charged) for r in first.history] == [(r.candidate, r.kind, r.charged) for r in second.history]
    spots = [r for r in first.history if r.kind == "spot"]
    assert len(spots) == 4 and all(r.n_tasks == 4 for r in spots)


def test_evaluation_choices_end_at_a_promotion_or_a_repeated_choice(tmp_path):
    # After the promotion the script would go on evaluating; the iteration's choices end instead.
    _, meta, store = run(tmp_path / "a", [write(GOOD), full("c0001"), full("c0001"), full("c0001")])
    assert len(meta.prompts) == 2 and "A new champion: this iteration's evaluation is done." in observations(store)[-1]
    worse = 'async def run(task, ctx):\n    return "nothing"\n'
    other = 'async def run(task, ctx):\n    return "something"\n'
    again = screen(["c0001"], ["search-1"])
    _, meta, store = run(tmp_path / "b", [write(worse), write(other), again, again, again],
                         settings=ProtocolSettings(proposals=2))
    assert len(meta.prompts) == 4 and "The same choice twice" in observations(store)[-1]


def test_choosing_the_champion_instead_of_a_proposal_is_refused_and_the_ladder_screens_them(tmp_path):
    # Qwen 1.5B re-picked the cached champion until its choices ran out, leaving three proposals unseen.
    worse = 'async def run(task, ctx):\n    return "nothing"\n'
    result, meta, store = run(tmp_path, [write(worse), write(GOOD), full("c0000"), full("c0000")],
                         settings=ProtocolSettings(proposals=2))
    told = "\n".join(observations(store))
    assert "c0000 is not a proposal still to evaluate; choose among c0001, c0002" in told
    fallback = [e for e in store.events() if e.kind == "eval_choice" and e.choice == "fallback"]
    assert len(fallback) == 1 and "the ladder decides" in fallback[0].rationale
    spots = [e for e in store.events() if e.kind == "spot_check"]
    assert {e.candidate for e in spots} == {"c0001", "c0002"}  # the ladder screened both
    assert result.champion_id == "c0002"  # and promoted the one that works
