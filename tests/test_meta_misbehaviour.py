"""A misbehaving meta-agent: invalid actions, enormous outputs, loops of the same action, edits
that target the test split or the scorer. Each is refused with an error observation, the run
finishes within its budget, and nothing the meta-agent sends grows without bound."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path


from harnessopt.benchmark import Benchmark
from harnessopt.budget import Budget
from harnessopt.meta.llm_proposer import LLMProposer
from harnessopt.meta.protocol import ProtocolSettings
from harnessopt.optimizer import OptimizeConfig, optimize_async
from harnessopt.records import LLMResponse
from harnessopt.store import RunStore
from stubs import StubGateway

SEED = 'async def run(task, ctx):\n    return (await ctx.complete("echo " + task.input)).strip()\n'
GOOD = 'async def run(task, ctx):\n    return (await ctx.complete("double " + task.input)).strip()\n'
MAX_PROMPT = 20_000  # the proposer's prompt budget in these tests


def double_model(prompt: str) -> str:
    verb, _, n = prompt.partition(" ")
    return f" {int(n) * 2}" if verb == "double" else f" {n}"


def bench() -> Benchmark:
    def item(n, split):
        return {"id": f"{split}-{n}", "input": str(n), "target": str(2 * n)}

    return Benchmark.from_records("arith", train=[item(n, "train") for n in range(100, 104)],
                                  search=[item(n, "search") for n in range(1, 9)],
                                  test=[item(n, "test") for n in range(50, 54)], scorer="exact")


class RawMeta:
    """A meta 'model' that sends the given raw texts, one per call, then `finish`."""

    def __init__(self, replies: list[str | dict], tokens: int = 100):
        self.replies = [r if isinstance(r, str) else json.dumps(r) for r in replies]
        self.prompts: list[str] = []
        self.tokens = tokens

    def supports_tools(self, model):
        return False

    async def chat(self, model, messages, params=None, **_):
        self.prompts.append("\n".join(m["content"] for m in messages))
        text = self.replies.pop(0) if self.replies else '{"action": "finish"}'
        return LLMResponse(model=model, text=text, prompt_tokens=self.tokens, completion_tokens=self.tokens)


def write(code: str, hypothesis: str = "double the number", **header) -> str:
    return json.dumps({"action": "write", "predicted": 0.5, "hypothesis": hypothesis, **header}) + "\n```python\n" + code + "```"


def run(tmp_path: Path, replies: list, budget: Budget | None = None, settings: ProtocolSettings | None = None, **kw):
    seed = tmp_path / "seed.py"
    seed.write_text(SEED)
    meta = RawMeta(replies, **kw)
    config = OptimizeConfig(harness=str(seed), benchmark="arith", meta_model="meta",
                            budget=budget or Budget(iterations=1, rollouts=200, meta_steps_per_iteration=40),
                            out=str(tmp_path / "runs"))
    proposer = LLMProposer(meta, "meta", max_prompt_chars=MAX_PROMPT,
                           settings=settings or ProtocolSettings(proposals=1, inspect_steps=4))
    result = asyncio.run(optimize_async(config, proposer=proposer, gateway=StubGateway(double_model),
                                        benchmark=bench()))
    store = RunStore.open(result.run_dir)
    return result, meta, store


def last_turn(prompt: str) -> str:
    return prompt[prompt.rfind("error:"):] if "error:" in prompt else prompt[-600:]


def test_invalid_replies_are_refused_and_the_loop_goes_on(tmp_path):
    replies = [
        "I think we should improve the harness.",                     # prose, no JSON
        "{not json at all",                                            # broken JSON
        {"action": "fly_to_the_moon"},                                 # unknown action
        {"action": "read_harness", "candidate": "c0000"},              # (a usable reply in between)
        {"action": "propose"},                                         # missing moves
        {"action": "propose", "moves": "1"},                           # wrong type
        {"action": "propose", "moves": [1], "predicted": "lots"},      # not a number
        {"action": "read_harness", "candidate": "c0000"},
        {"action": "write", "sudo": True},                             # unknown field
        [1, 2, 3],
        write(GOOD),                                                   # a good one after all that
        {"action": "full_eval", "candidate": "c0001"},
        {"action": "finish"},
    ]
    result, meta, store = run(tmp_path, replies)
    invalid = [e for e in store.events() if e.kind == "invalid_action"]
    assert len(invalid) == 8
    for i in (1, 2, 3, 5, 6, 7, 9, 10):
        assert "error:" in last_turn(meta.prompts[i]) and "[budget]" in last_turn(meta.prompts[i])
    assert result.champion_id == "c0001"  # the valid replies that followed worked


def test_enormous_outputs_are_refused_or_cut(tmp_path):
    huge_code = GOOD + "#" + "x" * 200_000 + "\n"
    replies = [
        "x" * 2_000_000,                                                  # 2 MB of noise
        write(huge_code),                                                 # file too long: refused
        {"action": "read_harness", "candidate": "c0000", "rationale": "why " * 5_000},  # rationale too long
        {"action": "search_traces", "pattern": "(a+)+" * 100},            # pattern too long
        write(GOOD, hypothesis="h" * 3_000),                              # hypothesis too long
        write(GOOD, hypothesis="h" * 1_999),                              # at the limits: fine
        {"action": "finish", "note": "n" * 100_000},                      # note too long
        {"action": "full_eval", "candidate": "c0001"},                    # ends the iteration
    ]
    result, meta, store = run(tmp_path, replies)
    invalid = [e for e in store.events() if e.kind == "invalid_action"]
    assert len(invalid) == 5, [e.error for e in invalid]
    assert any("at most" in e.error for e in invalid)
    told = "\n".join(meta.prompts)
    assert "the file is too long (200,0" in told
    # What is kept on disk per event is bounded.
    assert all(len(e.model_dump_json()) < 20_000 for e in store.events())
    assert result.champion_id == "c0001"


def test_prompts_stay_within_the_prompt_budget_after_an_enormous_reply(tmp_path):
    replies = ["x" * 2_000_000, write(GOOD + "#" + "y" * 200_000), write(GOOD), {"action": "full_eval", "candidate": "c0001"},
               {"action": "finish"}]
    _, meta, _ = run(tmp_path, replies)
    assert max(len(p) for p in meta.prompts) <= MAX_PROMPT + 1_000, [len(p) for p in meta.prompts]


def test_a_loop_of_unusable_replies_is_stopped(tmp_path):
    replies = [{"action": "overview", "rationale": f"look again ({i})"} for i in range(30)]
    result, meta, store = run(tmp_path, replies)
    stops = [e for e in store.events() if e.kind == "meta_stop"]
    assert stops and "unusable replies in a row" in stops[0].reason
    assert len(meta.prompts) == 4  # stopped after the fourth unusable reply, not the 30th
    assert [e.kind for e in store.events()].count("no_candidate") == 1
    assert result.stop_reason.startswith("iteration budget used")


def test_trace_reading_before_a_proposal_is_bounded(tmp_path):
    replies = [{"action": "read_harness", "candidate": "c0000", "rationale": f"look again ({i})"} for i in range(30)]
    _, meta, store = run(tmp_path, replies, settings=ProtocolSettings(proposals=1, inspect_steps=2))
    actions = [e for e in store.events() if e.kind == "action"]
    assert len(actions) == 2  # two reads, then read_harness is no longer offered
    assert "'read_harness' is not available now; reply with one of: propose, write, edit" in meta.prompts[3]


def test_a_loop_of_expensive_proposals_ends_within_budget(tmp_path):
    budget = Budget(iterations=3, rollouts=60, meta_tokens=30_000, meta_steps_per_iteration=40)
    replies = [write(GOOD.replace("double", f"double{' ' * i}"), hypothesis=f"try {i}") if i % 2 == 0
               else {"action": "full_eval", "candidate": f"c{i // 2 + 1:04d}"} for i in range(200)]
    result, meta, store = run(tmp_path, replies, budget=budget, tokens=400)
    assert result.spend.rollouts <= 60
    assert result.spend.meta.tokens <= 30_000
    assert len(meta.prompts) < 200  # the budget, not the script, ended it


def test_edits_that_target_the_test_split_or_the_scorer_are_refused(tmp_path):
    replies = [
        {"action": "read_trace", "candidate": "c0000", "task_id": "test-52"},
        {"action": "read_harness", "candidate": "../../src/harnessopt/scorers.py"},
        json.dumps({"action": "edit", "parent": "scorer", "predicted": 0, "hypothesis": "h"})
        + "\n```python\n<<<<<<< SEARCH\ndef\n=======\nx\n>>>>>>> REPLACE\n```",
        write("from harnessopt.scorers import exact\nasync def run(task, ctx):\n    return ''\n", hypothesis="rescore"),
        {"action": "propose", "moves": [1], "predicted": 0.1, "hypothesis": "few-shot examples"},
        write("import importlib\nasync def run(task, ctx):\n    s = importlib.import_module('harnessopt.benchmark')\n"
              "    return str(s)\n", hypothesis="peek"),
        {"action": "screen", "candidates": ["c0003"], "task_ids": ["test-50", "test-51"]},
        {"action": "full_eval", "candidate": "c0003"},
        {"action": "finish"},
    ]
    result, meta, store = run(tmp_path, replies, settings=ProtocolSettings(proposals=2, inspect_steps=4))
    told = meta.prompts[1:]
    assert "held-out test split" in last_turn(told[0])
    assert "unknown candidate" in last_turn(told[1])
    assert "unknown candidate" in last_turn(told[2])
    assert "cannot run" in told[3] and "imports harnessopt.scorers" in told[3]
    assert "held-out test split" in last_turn(told[6])
    # A dynamic import gets past the static check, but the harness still sees only its task and
    # ctx: the module it reaches is harnessopt's code in the worker, with no benchmark in it.
    assert result.champion_id == "c0000"
    # Nothing the meta-agent saw came from the test split (only the final test evaluation ran on it).
    sent = "\n".join(meta.prompts)
    assert "test-53" not in sent
    assert all(r.kind == "test" for r in store.ledger() if r.split == "test")
