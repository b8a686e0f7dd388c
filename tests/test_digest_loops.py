"""The failure digest on agent loops (step cap, repeated call, ignored tool error, answer before
evidence, malformed answer) and read_trace paging a long trajectory step by step."""

from __future__ import annotations

from harnessopt.meta.digest import build_digest, loop_tags, step_ceiling, tags_of
from harnessopt.meta.views import PAGE_CHARS, FeedbackView, trace_steps
from harnessopt.records import LogLine, ModelCall, RolloutTrace, ToolCall

SYSTEM = {"role": "system", "content": "You are an agent. Tools: read, search."}
TASK = {"role": "user", "content": "Question: which code?"}


def loop_trace(task_id: str, steps: list[tuple[str, dict, str | None, str | None]], *, answer: str = "E1",
               score: float = 0.0, logs: tuple[str, ...] = (), explanation: str = "expected 'e2', got 'e1'",
               show_errors: bool = True) -> RolloutTrace:
    """An agent loop: per step a model call (its reply is the action) and the tool call it asked
    for, (tool, args, result, error); the next model call sees the observation (or not)."""
    messages, calls, tools, clock = [SYSTEM, TASK], [], [], 100.0
    for name, args, result, error in steps:
        reply = f'{{"action": "{name}", "args": {args}}}'
        calls.append(ModelCall(kind="chat", model="m", messages=list(messages), response=reply, started_at=clock))
        tools.append(ToolCall(name=f"workspace.{name}", args=args, result=result, error=error, started_at=clock + 1))
        observation = f"ERROR: {error}" if error else str(result)
        messages = messages + [{"role": "assistant", "content": reply},
                               {"role": "user", "content": observation if (show_errors or not error) else "ok"}]
        clock += 2
    calls.append(ModelCall(kind="chat", model="m", messages=list(messages), response=answer, started_at=clock))
    return RolloutTrace(cache_key=task_id, candidate_id="c0001", task_id=task_id, task_input="which code?", trial=0,
                        split="search", harness_hash="h", model="m", model_calls=calls, tool_calls=tools,
                        logs=[LogLine(t=clock, msg=m) for m in logs], answer=answer, score=score,
                        explanation=explanation)


READ = ("read", {"path": "logs/app.log"}, "10:00 ERROR (code E2)", None)
LIST = ("list", {"path": "."}, "logs/app.log  (2 lines)", None)
MISSING = ("read", {"path": "log.txt"}, None, "'log.txt' does not exist; list the workspace to see its files")


def _tags(t, ceiling=None):
    return tags_of(t, labels=None, task_shape="short_answer", step_ceiling=ceiling)


def test_step_cap_from_a_log_line_or_a_call_ceiling():
    assert "step_cap" in _tags(loop_trace("a", [READ], logs=("step cap reached (6 steps) without a final answer",)))
    capped = [loop_trace(f"t{i}", [LIST, READ, LIST, READ, LIST]) for i in range(3)]
    short = loop_trace("s", [READ])
    assert step_ceiling(capped + [short]) == 6
    assert step_ceiling(capped[:2] + [short]) is None  # two at the top is not yet a ceiling
    assert "step_cap" in _tags(capped[0], ceiling=6) and "step_cap" not in _tags(short, ceiling=6)


def test_repeated_tool_call():
    assert "repeated_tool_call" in loop_tags(loop_trace("a", [LIST, READ, READ]))
    assert "repeated_tool_call" not in loop_tags(loop_trace("b", [LIST, READ]))


def test_tool_error_ignored_when_repeated_or_never_shown():
    assert "tool_error_ignored" in loop_tags(loop_trace("a", [MISSING, MISSING]))  # the same failing call again
    assert "tool_error_ignored" in loop_tags(loop_trace("b", [MISSING, READ], show_errors=False))  # swallowed
    assert "tool_error_ignored" not in loop_tags(loop_trace("c", [MISSING, READ]))  # shown, then recovered


def test_answer_before_evidence_and_malformed_answers():
    assert "answer_before_evidence" in loop_tags(loop_trace("a", [LIST]))
    assert "answer_before_evidence" in loop_tags(loop_trace("b", [LIST, MISSING]))
    assert "answer_before_evidence" not in loop_tags(loop_trace("c", [LIST, READ]))
    for answer in ("Thought: I should read the log\nAction: read", '{"action": "answer", "input": "E2"}',
                   "```\nE2\n```", "E2\nE3", "x" * 120):
        assert "malformed_answer" in loop_tags(loop_trace("d", [READ], answer=answer)), answer
    assert "malformed_answer" in loop_tags(loop_trace("e", [READ], answer="The code is E2",
                                                      explanation="the answer holds 'e2' but also other text"))
    assert "malformed_answer" not in loop_tags(loop_trace("f", [READ], answer="E1"))


def test_loop_tags_only_for_failed_multi_step_rollouts():
    assert _tags(loop_trace("a", [LIST], score=1.0)) == []
    single = RolloutTrace(cache_key="k", candidate_id="c", task_id="s", task_input="x", trial=0, split="search",
                          harness_hash="h", model="m", answer="Thought: long\nanswer",
                          model_calls=[ModelCall(kind="chat", model="m", messages=[TASK], response="x")])
    assert _tags(single) == ["wrong_answer"]  # one call, no tools: no loop tags


def vote_trace(task_id: str, samples: int = 5) -> RolloutTrace:
    """A majority vote: the same prompt sampled several times, no tool call, a wrong label."""
    calls = [ModelCall(kind="chat", model="m", messages=[TASK], response="lights_on") for _ in range(samples)]
    return RolloutTrace(cache_key=task_id, candidate_id="c0002", task_id=task_id, task_input="turn it off", trial=0,
                        split="search", harness_hash="h", model="m", model_calls=calls, answer="lights_on", score=0.0,
                        explanation="expected 'lights_off', got 'lights_on'")


def test_a_vote_or_retry_harness_is_not_an_agent_loop():
    votes = [vote_trace(f"v{i}") for i in range(4)]
    assert step_ceiling(votes) is None  # five calls every time is a vote's size, not a step cap
    digest = build_digest(votes, candidate="c0002", labels=["lights_on", "lights_off"], task_shape="classification")
    assert {c.key for c in digest.clusters} == {"wrong_label"}
    assert not any(f.startswith("agent loop") for f in digest.facts)
    logged = votes[0].model_copy(update={"logs": [LogLine(t=1.0, msg="step cap reached (5 steps)")]})
    assert "step_cap" in tags_of(logged, labels=None, task_shape="classification")  # the harness said so


def test_digest_clusters_and_facts_for_loops():
    traces = [loop_trace(f"t{i}", [LIST, READ, READ, LIST, READ]) for i in range(3)] + [loop_trace("u", [LIST])]
    digest = build_digest(traces, candidate="c0001", labels=None, task_shape="short_answer")
    keys = {c.key: c.count for c in digest.clusters}
    assert keys["step_cap"] == 3 and keys["repeated_tool_call"] == 3 and keys["answer_before_evidence"] == 1
    names = {c.key: c.name for c in digest.clusters}
    assert names["step_cap"] == "the loop hit its step cap"
    assert any(f.startswith("agent loop: 4 rollouts with tool calls") for f in digest.facts)
    assert "the loop hit its step cap: 3/4" in FeedbackView("summary").digest(digest)


def test_read_trace_pages_through_a_long_trajectory_step_by_step():
    steps = [("read", {"path": f"f{i}.txt"}, f"line of file {i}\n" * 40, None) for i in range(30)]
    t = loop_trace("long", steps)
    blocks = trace_steps(t)
    assert len(blocks) == 61  # 31 model calls and 30 tool calls, interleaved in time order
    assert blocks[0].startswith("step 1: model call") and blocks[1].startswith("step 2: tool workspace.read")
    # the second call repeats the whole conversation; only what is new is shown
    assert "(the first 3 messages as in the previous model call)" in blocks[2]
    assert blocks[2].count("line of file 0") == 40 and "line of file 1" not in blocks[2]
    pages = FeedbackView("traces").trace_pages(t)
    assert len(pages) > 5 and all(len(p) <= PAGE_CHARS + 40 for p in pages)
    assert pages[0].startswith("(steps 1-") and "rollout c0001 / long" in pages[0]
    assert pages[-1].rstrip().endswith("answer: 'E1'")
    text = "\n".join(pages)
    for n in range(1, 62):
        assert text.count(f"step {n}: ") == 1, n
    assert FeedbackView("summary").trace_pages(t)[0].endswith("trace text is not shown)")
