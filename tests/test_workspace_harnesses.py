"""The two shipped agent-loop harnesses for workspace_tasks, driven by a scripted model (unit
level), and once each by the embedded model (end to end)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import harnessopt
from harnessopt.benchmark import load_benchmark
from harnessopt.records import LLMResponse, Usage

REPO = Path(__file__).resolve().parents[1]
NAIVE = REPO / "harnesses" / "workspace_tasks_naive.py"
AGENT = REPO / "harnesses" / "workspace_tasks_agent.py"


class ScriptedChat:
    """Replies from a script, in order (the last one repeats); records what each call saw."""

    def __init__(self, replies: list[str]):
        self.replies = replies
        self.calls: list[dict] = []
        self.usage = Usage()

    async def chat(self, model, messages, params=None, **kwargs):
        self.calls.append({"messages": messages, "response_format": kwargs.get("response_format"), "params": params})
        text = self.replies[min(len(self.calls), len(self.replies)) - 1]
        return LLMResponse(model=model, text=text, prompt_tokens=10, completion_tokens=5)


@pytest.fixture(scope="module")
def task_bench():
    bench = load_benchmark("workspace_tasks")
    task = next(t for t in bench.tasks("search") if t.extra["family"] == "first_error")
    return bench, task


def _run(tmp_path, harness, task_bench, replies):
    bench, task = task_bench
    only = type(bench).from_records("one", search=[task], train=[task.model_copy(update={"id": "x"})],
                                    test=[task.model_copy(update={"id": "y"})], scorer="workspace")
    chat = ScriptedChat(replies)
    result = harnessopt.evaluate(harness, only, split="search", out=tmp_path, gateway=chat, timeout_s=60)
    trace = json.loads(next(Path(result.run_dir).glob("rollouts/*/*/*.json")).read_text())
    return result, trace, chat, task


def test_naive_loop_runs_text_actions_until_a_final_answer(tmp_path, task_bench):
    _, task = task_bench
    replies = ['Thought: look\nAction: search\nAction Input: {"pattern": "ERROR", "path": "logs"}',
               "Thought: no action here",
               f"Thought: done\nFinal Answer: {task.target}"]
    result, trace, chat, _ = _run(tmp_path, NAIVE, task_bench, replies)
    assert result.score == 1.0 and len(chat.calls) == 3
    assert trace["tool_calls"][0]["name"] == "workspace.search" and "ERROR" in trace["tool_calls"][0]["result"]
    second = chat.calls[1]["messages"][-1]["content"]
    assert second.startswith("Observation: logs/") and "ERROR" in second
    assert "Invalid format" in chat.calls[2]["messages"][-1]["content"]
    assert chat.calls[0]["params"].stop == ["Observation:"]


def test_naive_loop_stops_at_its_step_cap_and_says_so(tmp_path, task_bench):
    result, trace, chat, _ = _run(tmp_path, NAIVE, task_bench, ['Action: list\nAction Input: {"path": "."}'])
    assert len(chat.calls) == 6 and result.score == 0.0
    assert any("step cap reached" in line["msg"] for line in trace["logs"])


def _action(action: str, path: str = "", value: str = "") -> str:
    return json.dumps({"thought": "t", "action": action, "path": path, "input": value})


def test_agent_lists_first_refuses_repeats_recovers_from_errors_and_answers(tmp_path, task_bench):
    _, task = task_bench
    replies = [_action("search", "logs", "ERROR"), _action("search", "logs", "ERROR"), "not json at all",
               _action("read", "no/such.log"), f"```json\n{_action('answer', '', task.target)}\n```"]
    result, trace, chat, _ = _run(tmp_path, AGENT, task_bench, replies)
    assert result.score == 1.0, trace["explanation"]
    assert trace["tool_calls"][0]["name"] == "workspace.list"  # before the first model call
    assert "Files in the workspace:\nREADME.md" in chat.calls[0]["messages"][1]["content"]
    fmt = chat.calls[0]["response_format"]
    assert fmt["type"] == "json_schema" and "run_shell" in fmt["json_schema"]["schema"]["properties"]["action"]["enum"]
    observations = [c["messages"][-1]["content"] for c in chat.calls[1:]]
    assert "ERROR" in observations[0] and "logs/" in observations[0]
    assert "you already ran this exact search at step 1" in observations[1]
    assert "was not valid JSON" in observations[2] or "no JSON object" in observations[2]
    assert "does not exist" in observations[3]
    searches = [c for c in trace["tool_calls"] if c["name"] == "workspace.search"]
    assert len(searches) == 1  # the repeat was not run again


def test_agent_forces_an_answer_at_its_last_step(tmp_path, task_bench):
    _, trace, chat, _ = _run(tmp_path, AGENT, task_bench, ["garbage"] * 3 + [_action("answer", "", "E0000")])
    # three errors in a row: the next call may only answer
    assert chat.calls[3]["response_format"]["json_schema"]["schema"]["properties"]["action"]["enum"] == ["answer"]
    assert "Too many errors in a row" in chat.calls[3]["messages"][-1]["content"]
    assert trace["answer"] == "E0000" and len(chat.calls) == 4


@pytest.mark.parametrize("harness", [NAIVE, AGENT], ids=["naive", "agent"])
def test_harness_runs_on_the_embedded_model(tmp_path, harness):
    # End to end with the embedded Gemma (fast; it rarely solves these): the loop runs, every
    # call is traced, and the agent's grammar-constrained replies are always valid actions.
    result = harnessopt.evaluate(harness, "workspace_tasks", split="search", limit=1, out=tmp_path,
                                 task_model="local/gemma-3-270m", timeout_s=600, max_tokens=200)
    trace = json.loads(next(Path(result.run_dir).glob("rollouts/*/*/*.json")).read_text())
    assert trace["status"] == "ok", trace["error"]
    assert trace["model_calls"] and all(c["error"] is None for c in trace["model_calls"])
    if harness == AGENT:
        assert trace["tool_calls"][0]["name"] == "workspace.list"
        for call in trace["model_calls"]:
            if call["completion_tokens"] >= call["params"]["max_tokens"]:
                continue  # cut short by max_tokens: the harness reports that to the model
            action = json.loads(call["response"])
            assert set(action) == {"thought", "action", "path", "input"}, action
    assert trace["workspace_changes"] is not None


def test_the_agents_md_example_runs_as_a_harness(tmp_path, task_bench):
    doc = (REPO / "docs" / "AGENTS.md").read_text()
    block = doc.split("## The harness file", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    harness = tmp_path / "my_agent.py"
    harness.write_text(block)
    _, task = task_bench
    replies = ['{"tool": "grep", "pattern": "ERROR", "path": "logs"}', '{"tool": "cat", "path": "x"}',
               '{"tool": "read_file", "file": "x"}', "oops", json.dumps({"answer": task.target})]
    result, trace, chat, _ = _run(tmp_path / "runs", harness, task_bench, replies)
    assert result.score == 1.0 and len(chat.calls) == 5
    assert trace["tool_calls"][0]["name"] == "workspace.search"
    said = [c["messages"][-1]["content"] for c in chat.calls[1:]]
    assert "ERROR" in said[0] and said[1].startswith("Unknown tool") and said[2].startswith("Bad arguments")
    assert said[3].startswith("Invalid JSON")
