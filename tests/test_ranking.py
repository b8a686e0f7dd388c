"""Proposal mode `rank`: an LLM chooses among the random control's draws (scripted meta doubles).

The comparison with the control is fair only if the pool's first round is exactly what the
control proposes from the same state; these tests fail if the draws drift apart, if the model's
order is not kept, or if an unusable reply is not replaced by the pool's order.
"""

from __future__ import annotations

import asyncio

from harnessopt.budget import Budget
from harnessopt.meta.draws import what_it_does
from harnessopt.meta.protocol import ProtocolSettings
from harnessopt.meta.random_proposer import RandomProposer
from harnessopt.meta.ranking import RankingProposer, chosen_draws
from harnessopt.optimizer import make_proposer, optimize_async
from harnessopt.options import OptimizeConfig
from harnessopt.store import RunStore
from scripted import ScriptedMetaGateway
from stubs import StubGateway
from test_optimize import NOISY, SEED, arith_benchmark, config, double_model

SETTINGS = ProtocolSettings(proposals=3, eval_policy="ladder", screen_tasks=4, proposal_mode="rank", pool_size=6)


def run(tmp_path, proposer, harness=SEED):
    cfg = config(tmp_path, harness=harness, budget=Budget(iterations=1, rollouts=400))
    result = asyncio.run(optimize_async(cfg, proposer=proposer, gateway=StubGateway(double_model),
                                        benchmark=arith_benchmark()))
    store = RunStore.open(result.run_dir)
    made = [c for c in store.candidates() if c.id != "c0000"]
    return store, made, [store.candidate_source(c.id) for c in made], result


def ranked(tmp_path, replies, seed=4, settings=SETTINGS, harness=SEED):
    meta = ScriptedMetaGateway(replies)
    store, made, sources, _ = run(tmp_path, RankingProposer(meta, "scripted-meta", settings=settings, seed=seed), harness)
    return meta, store, made, sources


def pool_lines(prompt: str) -> dict[int, str]:
    block = prompt.split("## Candidate changes")[1].split("\n", 1)[1].split("\n\n")[0]
    return {int(line.split(".")[0]): line.split(". ", 1)[1] for line in block.splitlines()}


def does(store, c) -> str:
    return what_it_does(store.candidate_source(c.id), arith_benchmark().spec.task_shape)


def test_the_pools_first_round_is_exactly_what_the_random_control_proposes(tmp_path):
    for seed in (0, 4, 9):
        control = RandomProposer(seed=seed, settings=SETTINGS.model_copy(update={"proposal_mode": "compose"}))
        _, _, random_sources, _ = run(tmp_path / f"r{seed}", control)
        meta, _, made, sources = ranked(tmp_path / f"k{seed}", [{"action": "rank", "hypothesis": "in order",
                                                                  "picks": [1, 2, 3]}], seed=seed)
        assert sources == random_sources and len(sources) == 3
        assert len(pool_lines(meta.prompts[0])) == 6  # and three more draws to choose from


def test_the_models_picks_are_proposed_in_its_order_and_filled_up_in_pool_order(tmp_path):
    meta, store, made, _ = ranked(tmp_path, [{"action": "rank", "hypothesis": "fix the echo first",
                                              "picks": [5, 2, 2, 99]}])
    lines = pool_lines(meta.prompts[0])
    assert [does(store, c) for c in made] == [lines[5], lines[2], lines[1]]
    assert made[0].hypothesis.startswith("ranked 5 of 6: fix the echo first")
    told = [m["content"] for m in store.transcripts()["001"] if m["role"] == "user"][-1]
    assert "1 filled in pool order" in told
    prompt = meta.prompts[0]
    assert "## Failure digest of the champion" in prompt and "## Tried so far" in prompt and "## The patterns" in prompt
    assert len(meta.prompts) == 1  # one reply per iteration


def test_an_unusable_reply_is_asked_again_then_the_pools_order_decides_and_counts_as_invalid(tmp_path):
    meta, store, made, sources = ranked(tmp_path, ["I think move 2", {"action": "propose", "moves": [1]}])
    assert len(meta.prompts) == 2
    lines = pool_lines(meta.prompts[0])
    assert [does(store, c) for c in made] == [lines[1], lines[2], lines[3]]
    invalid = [e for e in store.events() if e.kind == "invalid_action"]
    assert len(invalid) == 2 and "'propose' is not available now" in invalid[1].error


def test_chosen_draws_keeps_distinct_known_picks_and_fills_the_rest():
    class D:
        def __init__(self, n):
            self.number = n
    pool = [D(n) for n in range(1, 6)]
    chosen, own = chosen_draws([4, 4, 7, 2, 5], pool, 3)
    assert [d.number for d in chosen] == [4, 2, 5] and own == 3
    chosen, own = chosen_draws([], pool, 2)
    assert [d.number for d in chosen] == [1, 2] and own == 0


def test_proposal_mode_rank_makes_a_ranking_proposer_and_random_stays_random():
    cfg = OptimizeConfig(harness="h.py", benchmark="home_intents", meta_model="local/qwen2.5-coder-0.5b",
                         proposal_mode="rank", pool_size=5)
    proposer = make_proposer(cfg, gateway=None)
    assert isinstance(proposer, RankingProposer) and proposer.settings.pool_size == 5
    assert isinstance(make_proposer(cfg.model_copy(update={"meta_model": "random"}), gateway=None), RandomProposer)


def test_menu_order_digest_leads_the_pool_with_the_draws_that_address_the_most_failures(tmp_path):
    meta, store, made, _ = ranked(tmp_path, [{"action": "rank", "hypothesis": "the top ones", "picks": [1, 2, 3]}],
                                  seed=0, settings=SETTINGS.model_copy(update={"menu_order": "digest"}), harness=NOISY)
    prompt = meta.prompts[0]
    assert "the ones that address the most failures come first" in prompt
    lines = pool_lines(prompt)
    counts = [sum(int(hit.split(" ")[-1].split("/")[0]) for hit in line.split("[addresses: ")[1].rstrip("]").split(", "))
              if "[addresses: " in line else 0 for _, line in sorted(lines.items())]
    assert counts == sorted(counts, reverse=True) and counts[0] > 0 and counts[-1] < counts[0]
    assert [does(store, c) for c in made] == [lines[n].split(" [addresses")[0] for n in (1, 2, 3)]


def test_the_greedy_control_proposes_the_digest_ordered_pools_first_draws_without_a_model(tmp_path):
    from harnessopt.meta.ranking import GreedyProposer

    meta = ScriptedMetaGateway([{"action": "rank", "hypothesis": "top three", "picks": [1, 2, 3]}])
    digest_settings = SETTINGS.model_copy(update={"menu_order": "digest"})
    *_, top, _ = run(tmp_path / "llm", RankingProposer(meta, "scripted-meta", settings=digest_settings, seed=0), NOISY)
    *_, greedy, result = run(tmp_path / "greedy", GreedyProposer(seed=0, settings=SETTINGS), NOISY)
    assert greedy == top and len(greedy) == 3
    assert result.spend.meta.calls == 0
    *_, control, _ = run(tmp_path / "random", RandomProposer(seed=0, settings=SETTINGS), NOISY)
    assert greedy != control  # the digest reordered the pool (seed 0: draws 4-6 address no cluster)


def test_greedy_is_a_meta_side_control_like_random():
    from harnessopt.meta.ranking import GreedyProposer
    from harnessopt.model_specs import parse_model_spec

    cfg = OptimizeConfig(harness="h.py", benchmark="home_intents", meta_model="greedy", eval_policy="meta")
    proposer = make_proposer(cfg, gateway=None)
    assert isinstance(proposer, GreedyProposer) and proposer.settings.eval_policy == "ladder"
    assert proposer.settings.menu_order == "digest" and proposer.settings.proposal_mode == "rank"
    assert "no model" in parse_model_spec("greedy").label


def test_the_memory_says_what_each_tried_harness_does_in_the_pools_words(tmp_path):
    cfg = config(tmp_path, harness=SEED, budget=Budget(iterations=2, rollouts=400))
    meta = ScriptedMetaGateway([{"action": "rank", "hypothesis": "h", "picks": [1, 2, 3]}] * 2)
    result = asyncio.run(optimize_async(cfg, proposer=RankingProposer(meta, "scripted-meta", settings=SETTINGS, seed=4),
                                        gateway=StubGateway(double_model), benchmark=arith_benchmark()))
    store = RunStore.open(result.run_dir)
    first = [c for c in store.candidates() if c.id != "c0000"][:3]
    memory = meta.prompts[1].split("## Tried so far")[1].split("\n## ")[0]
    for c in first:  # listed by what the harness does (as its pool line said), not by the steps composed
        assert f"{c.id} (parent c0000): {does(store, c)} -> " in memory
        assert c.moves not in memory
