"""Agent-loop patterns (task shape `agent`): each changes the loop of a workspace harness, they
compose through the embedded recipe, the move menu offers them, and the generated loops behave as
their docstrings say when a scripted model drives them through the real sandbox."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

import harnessopt
from harnessopt.benchmark import load_benchmark
from harnessopt.harness import harness_from_source
from harnessopt.meta.menu import build_menu, compose
from harnessopt.patterns import PatternError, applicable, apply_pattern, embedded_recipe, recipe_for_source
from test_workspace_harnesses import ScriptedChat, _action

REPO = Path(__file__).resolve().parents[1]
NAIVE = (REPO / "harnesses" / "workspace_tasks_naive.py").read_text()
AGENT = (REPO / "harnesses" / "workspace_tasks_agent.py").read_text()
LOOP_PATTERNS = ["json_actions", "step_cap", "clip_observations", "workspace_survey", "loop_recovery",
                 "working_advice"]


def stack(source: str, names: list[str]) -> str:
    for name in names:
        source = apply_pattern(source, name, {}, "agent").source
    return source


@pytest.fixture(scope="module")
def one_task():
    bench = load_benchmark("workspace_tasks")
    assert bench.spec.task_shape == "agent"
    task = next(t for t in bench.tasks("search") if t.extra["family"] == "first_error")
    only = type(bench).from_records("one", search=[task], train=[task.model_copy(update={"id": "x"})],
                                    test=[task.model_copy(update={"id": "y"})], scorer="workspace")
    return only, task


def run_with(tmp_path, source: str, one_task, replies: list[str]):
    bench, task = one_task
    path = tmp_path / "gen.py"
    path.write_text(source)
    chat = ScriptedChat(replies)
    result = harnessopt.evaluate(path, bench, split="search", out=tmp_path / "run", gateway=chat, timeout_s=60)
    trace = json.loads(next(Path(result.run_dir).glob("rollouts/*/*/*.json")).read_text())
    return result, trace, chat


def test_only_loop_patterns_apply_to_agent_harnesses_and_each_changes_the_loop():
    assert {p.name for p in applicable("agent")} == set(LOOP_PATTERNS) | {"text_actions"}
    with pytest.raises(PatternError, match="agent"):
        apply_pattern(NAIVE, "retrieval_fewshot", {}, "agent")
    with pytest.raises(PatternError, match="agent"):
        apply_pattern((REPO / "harnesses" / "home_intents_naive.py").read_text(), "step_cap", {}, "classification")
    sources = {name: apply_pattern(NAIVE, name, {}, "agent").source for name in LOOP_PATTERNS}
    assert len(set(sources.values()) | {NAIVE}) == len(LOOP_PATTERNS) + 1
    for name, source in sources.items():
        harness_from_source(source)  # static checks
        assert embedded_recipe(source).applied[-1].startswith(name)
    assert 'response_format=schema(' in sources["json_actions"] and "stop=" not in sources["json_actions"]
    assert "MAX_STEPS = 10" in sources["step_cap"]
    assert "def clip(" in sources["clip_observations"] and "def clip(" not in sources["step_cap"]
    assert "async def task_message(" in sources["workspace_survey"]
    assert "MAX_ERRORS = 3" in sources["loop_recovery"] and "already ran this exact" in sources["loop_recovery"]
    assert "How to work" in sources["working_advice"]


def test_patterns_compose_in_any_order_and_reapplying_replaces_their_part():
    names = list(LOOP_PATTERNS)
    random.Random(3).shuffle(names)
    everything = stack(NAIVE, names)
    loop = embedded_recipe(everything).loop
    assert (loop.actions, loop.max_steps, loop.observation_chars, loop.survey_lines, loop.max_errors, loop.advice) \
        == ("json", 10, 1800, 3, 3, True)
    again = apply_pattern(everything, "step_cap", {"max_steps": 14}, "agent")
    assert again.recipe.loop.max_steps == 14 and again.recipe.loop.actions == "json"
    with pytest.raises(PatternError, match="does not change"):
        apply_pattern(everything, "working_advice", {}, "agent")
    back = apply_pattern(everything, "text_actions", {}, "agent").source
    assert "Final Answer:" in back and "response_format" not in back


def test_hand_written_agent_harnesses_give_their_loop_as_the_starting_recipe():
    naive, embedded = recipe_for_source(NAIVE, "agent")
    assert not embedded and naive.loop.actions == "text" and naive.loop.max_steps == 6
    assert naive.loop.max_errors is None and naive.loop.survey_lines is None
    agent, _ = recipe_for_source(AGENT, "agent")
    loop = agent.loop
    assert (loop.actions, loop.max_steps, loop.observation_chars, loop.max_errors, loop.advice) == ("json", 10, 1800, 3, True)


def test_the_move_menu_offers_loop_changes_that_compose():
    menu = build_menu(NAIVE, "agent", seen_hashes=set(), rng=random.Random(0))
    labels = " ".join(m.label for m in menu)
    for name in LOOP_PATTERNS:
        assert name in labels
    assert "retrieval_fewshot" not in labels and "completion_mode" not in labels
    by_pattern = {m.steps[0].pattern: m.number for m in menu if len(m.steps) == 1 and not m.steps[0].params}
    steps, source = compose(NAIVE, menu, [by_pattern["json_actions"], by_pattern["loop_recovery"]], "agent")
    assert [s.pattern for s in steps] == ["json_actions", "loop_recovery"]
    assert '["answer"] if last else ACTIONS' in source


def test_generated_naive_loop_with_a_lower_step_cap_stops_there(tmp_path, one_task):
    source = apply_pattern(NAIVE, "step_cap", {"max_steps": 3}, "agent").source
    result, trace, chat = run_with(tmp_path, source, one_task, ['Action: list\nAction Input: {"path": "."}'])
    assert len(chat.calls) == 3 and result.score == 0.0
    assert chat.calls[0]["params"].stop == ["Observation:"]
    assert any("step cap reached (3 steps)" in line["msg"] for line in trace["logs"])
    # the generated text loop refuses the repeat only with loop_recovery: here all three ran
    assert sum(c["name"] == "workspace.list" for c in trace["tool_calls"]) == 3


def test_generated_full_loop_surveys_clips_refuses_repeats_and_forces_an_answer(tmp_path, one_task):
    _, task = one_task
    source = stack(NAIVE, ["json_actions", "workspace_survey", "loop_recovery", "working_advice"])
    source = apply_pattern(source, "clip_observations", {"chars": 300}, "agent").source
    replies = [_action("read", "logs"), _action("read", "logs"), "not json", "still not json",
               _action("answer", "", task.target)]
    result, trace, chat = run_with(tmp_path, source, one_task, replies)
    assert result.score == 1.0, trace["explanation"]
    first = chat.calls[0]["messages"]
    assert "How to work" in first[0]["content"]
    assert "Files in the workspace:" in first[1]["content"] and "The first lines of each file:" in first[1]["content"]
    assert trace["tool_calls"][0]["name"] == "workspace.list"  # the survey ran before the first model call
    said = [c["messages"][-1]["content"] for c in chat.calls[1:]]
    assert "already ran this exact read at step 1" in said[1]
    assert all(len(s) < 300 + 200 for s in said)  # clipped (plus the notes the loop adds)
    # three failed steps in a row: the model is told to answer, and may only answer
    assert "Answer now" in said[3]
    assert chat.calls[4]["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"] == ["answer"]
    assert chat.calls[0]["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"][-1] == "answer"
