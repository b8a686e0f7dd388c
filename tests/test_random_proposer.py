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


def test_each_iteration_composes_patterns_on_the_champion_and_fully_evaluates_the_result(tmp_path):
    result, gateway = run(config(tmp_path, iterations=5))
    store = RunStore.open(result.run_dir)
    events = store.events()
    champion, evaluated = "c0000", []
    for it in range(1, 6):
        acts = [e for e in events if e.kind == "action" and e.iter == it]
        names = [e.action for e in acts]
        assert 1 <= names.count("apply_pattern") <= 3 and names == ["apply_pattern"] * (len(names) - 1) + ["full_eval"]
        parents = [e.args["parent"] for e in acts[:-1]]
        made = [e.candidate for e in events if e.kind == "candidate" and e.iter == it]
        assert parents == [champion] + made[:-1]  # first on the champion, then each on the previous
        assert acts[-1].args["candidate"] == made[-1]
        evaluated.append(made[-1])
        promoted = [e.candidate for e in events if e.kind == "promoted" and e.iter == it]
        champion = promoted[-1] if promoted else champion
    metas = [store.candidate_meta(c) for c in evaluated]
    assert all(m.origin.startswith("apply_pattern:") and "random search" in m.hypothesis for m in metas)
    earlier = {store.candidate_meta("c0000").harness_hash}
    for m in metas:  # no evaluated proposal repeats the code of an earlier candidate
        assert m.harness_hash not in earlier
        earlier |= {x.harness_hash for x in store.candidates() if x.id <= m.id}
    ledger = store.ledger()
    assert [r.kind for r in ledger if r.split == "search"] == ["full", "noise"] + ["full"] * 5
    assert result.spend.meta.calls == 0 and result.spend.rollouts <= 400
    transcript = [json.loads(line) for line in (store.path / "meta" / "001.jsonl").read_text().splitlines()]
    assert json.loads(transcript[1]["content"])["action"] == "apply_pattern" and "[budget]" in transcript[2]["content"]


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


def test_stops_proposing_when_a_full_evaluation_no_longer_fits(tmp_path):
    # seed full + noise = 48 rollouts; 30 more leave room for one full evaluation (24), not two
    result, gateway = run(config(tmp_path, iterations=4, rollouts=48 + 30))
    store = RunStore.open(result.run_dir)
    fulls = [r for r in store.ledger() if r.kind == "full"]
    assert len(fulls) == 2 and result.spend.rollouts <= 78
    stops = [e for e in store.events() if e.kind == "meta_stop"]
    assert stops and "needs 24 rollouts" in stops[0].reason
