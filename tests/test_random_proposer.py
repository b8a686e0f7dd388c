"""The random pattern proposer: the control arm. Seeded, same actions and budgets as an LLM."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from harnessopt.benchmark import Benchmark
from harnessopt.budget import Budget
from harnessopt.meta.random_proposer import RandomProposer
from harnessopt.records import LLMResponse
from harnessopt.optimizer import OptimizeConfig, make_proposer, optimize_async
from harnessopt.store import RunStore
from stubs import StubGateway

REPO = Path(__file__).resolve().parents[1]
LABELS = ["lights_on", "play_music", "set_alarm"]
WORDS = ["lights", "music", "alarm"]
N_SEARCH = 24


def bench() -> Benchmark:
    def item(i, split):
        return {"id": f"{split}-{i}", "input": f"{WORDS[i % 3]} request {i}", "target": LABELS[i % 3]}
    return Benchmark.from_records("cls", train=[item(i, "train") for i in range(9)],
                                  search=[item(i, "search") for i in range(N_SEARCH)],
                                  test=[item(i, "test") for i in range(6)],
                                  scorer="label", task_shape="classification", labels=LABELS)


def fewshot_only_model(prompt: str) -> str:
    """Right only when the prompt shows labelled examples, like a base model; else an echo."""
    if prompt.count("Label:") + prompt.count("=>") <= 1:
        return " I think it is about something"
    query = [line for line in prompt.splitlines() if "request" in line][-1]
    return " " + next(label for word, label in zip(WORDS, LABELS) if word in query.split("=>")[0])


class BaseModelStub(StubGateway):
    """Like a base model: chat turns come back as echoes; completions follow few-shot examples."""

    def __init__(self):
        super().__init__(fewshot_only_model)

    async def chat(self, model, messages, params=None, **kw):
        self.usage.calls += 1
        return LLMResponse(model=model, text=str(messages[-1].get("content", ""))[:60], prompt_tokens=1, completion_tokens=1)


def config(tmp_path: Path, seed: int = 0, iterations: int = 6, rollouts: int = 400) -> OptimizeConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "seed.py"
    path.write_text((REPO / "harnesses" / "home_intents_naive.py").read_text())
    return OptimizeConfig(harness=str(path), benchmark="cls", meta_model="random", seed=seed,
                          budget=Budget(iterations=iterations, rollouts=rollouts), out=str(tmp_path / "runs"))


def run(cfg: OptimizeConfig, gateway=None):
    gateway = gateway or StubGateway(fewshot_only_model)
    return asyncio.run(optimize_async(cfg, gateway=gateway, benchmark=bench())), gateway


def test_meta_model_random_selects_the_random_proposer(tmp_path):
    proposer = make_proposer(config(tmp_path, seed=3), gateway=None)  # no meta model is ever called
    assert isinstance(proposer, RandomProposer) and proposer.name == "random" and proposer.seed == 3


def test_each_iteration_screens_its_menu_picks_and_fully_evaluates_only_a_screen_winner(tmp_path):
    result, gateway = run(config(tmp_path, iterations=5), BaseModelStub())
    store = RunStore.open(result.run_dir)
    events = store.events()
    ledger = store.ledger()
    seen = {store.candidate_meta("c0000").harness_hash}
    for it in range(1, 6):
        acts = [e for e in events if e.kind == "action" and e.iter == it]
        made = [e.candidate for e in events if e.kind == "candidate" and e.iter == it]
        assert {e.action for e in acts} == {"propose"} and len(made) == 3  # three proposals per iteration
        metas = [store.candidate_meta(c) for c in made]
        assert all(m.origin == "propose" and m.hypothesis.startswith("random search: ") for m in metas)
        assert not {m.harness_hash for m in metas} & seen  # no proposal repeats earlier code
        seen |= {m.harness_hash for m in metas}
        spots = [r for r in ledger if r.kind == "spot" and r.iter == it]
        fulls = [r for r in ledger if r.kind == "full" and r.iter == it]
        assert [r.candidate for r in spots] == made and len({tuple(e.task_ids) for e in events
                                                              if e.kind == "spot_check" and e.iter == it}) == 1
        facts = {e.candidate: e for e in events if e.kind == "spot_check" and e.iter == it}
        best = max(spots, key=lambda r: r.score)
        if fulls:  # the ladder: only the best screen, and only when it beat the champion on the same tasks
            assert [r.candidate for r in fulls] == [best.candidate]
            assert best.score > (facts[best.candidate].champion_score or 0.0)
        else:
            assert best.score <= (facts[best.candidate].champion_score or 0.0)
    assert result.spend.meta.calls == 0 and result.spend.rollouts <= 400
    assert result.champion_test.score == 1.0  # the base-model stub's few-shot completion is found
    transcript = [json.loads(line) for line in (store.path / "meta" / "001.jsonl").read_text().splitlines()]
    assert json.loads(transcript[1]["content"])["action"] == "propose"


def test_random_search_finds_the_few_shot_move_on_a_base_model_stub(tmp_path):
    # completion_mode and retrieval_fewshot only pay together here: composition finds them
    result, _ = run(config(tmp_path, seed=1, iterations=4), BaseModelStub())  # seeds 1, 3, 4, 7 of 0-7 find it
    assert result.seed_search == 0.0
    assert result.champion_search == 1.0 and result.champion_test.score == 1.0
    assert "retrieval_fewshot" in result.champion_code and "RECIPE" in result.champion_code


def test_same_seed_same_proposals_other_seed_other_proposals(tmp_path):
    def proposals(seed, where):
        result, _ = run(config(tmp_path / where, seed=seed, iterations=4))
        store = RunStore.open(result.run_dir)
        return [store.candidate_meta(f"c{i:04d}").hypothesis for i in range(1, result.candidates)]
    a, b, c = proposals(1, "a"), proposals(1, "b"), proposals(2, "c")
    assert a == b and a != c and len(a) >= 4


def test_screens_what_fits_and_skips_a_full_evaluation_that_does_not(tmp_path):
    # seed full + noise = 48 rollouts; 30 more: a screen of 3 x 6 (18) leaves 12, short of a full
    # evaluation's 18 new rollouts; the next iteration can screen only 2 proposals (12)
    result, gateway = run(config(tmp_path, iterations=3, rollouts=48 + 30), BaseModelStub())
    store = RunStore.open(result.run_dir)
    ledger = store.ledger()
    assert [(r.iter, r.charged) for r in ledger if r.kind == "spot"] == [(1, 6), (1, 6), (1, 6), (2, 6), (2, 6)]
    assert not [r for r in ledger if r.kind == "full" and r.iter >= 1]
    assert result.spend.rollouts == 78
    skipped = [e.reason for e in store.events() if e.kind == "eval_skipped"]
    assert any("full evaluation" in r for r in skipped) and any("not enough to screen" in r for r in skipped)
