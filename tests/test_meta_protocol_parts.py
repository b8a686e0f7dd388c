"""Parts of the proposal protocol: reply parsing, edits, the failure digest, the move menu, grammars."""

from __future__ import annotations

import random

import pytest

from harnessopt.meta import actions as A
from harnessopt.meta.digest import build_digest, echoes_prompt, tags_of
from harnessopt.meta.menu import build_menu, compose, describe_menu, rank_by_digest
from harnessopt.meta.reply import Edit, ReplyError, apply_edits, split_reply
from harnessopt.meta.views import FeedbackView
from harnessopt.patterns import PatternError
from harnessopt.records import ModelCall, RolloutError, RolloutTrace

PARENT = '''"""A harness."""

PROMPT = "Classify: {{ task.input }}"


async def run(task, ctx):
    reply = await ctx.chat([{"role": "user", "content": ctx.render(PROMPT, task=task)}], max_tokens=16)
    return reply.strip()
'''


# --------------------------------------------------------------------------- replies


def test_a_fenced_file_after_the_header_is_the_code_and_quotes_stay_unescaped():
    text = '{"action": "write", "hypothesis": "use \\"few-shot\\""}\n```python\nX = "a \\"b\\""\nasync def run(task, ctx):\n    return X\n```\ntrailing words'
    reply = split_reply(text)
    assert A.parse_action(reply.header).action == "write"
    assert reply.code == 'X = "a \\"b\\""\nasync def run(task, ctx):\n    return X\n'
    assert reply.edits == []


def test_an_unclosed_fence_cut_at_max_tokens_still_yields_the_code():
    reply = split_reply('{"action": "write"}\n```python\nasync def run(task, ctx):\n    return "x"\n')
    assert reply.code.startswith("async def run")


def test_search_replace_blocks_are_parsed_and_applied():
    text = ('{"action": "edit", "hypothesis": "h"}\n```python\n<<<<<<< SEARCH\n    return reply.strip()\n=======\n'
            '    return reply.strip().lower()\n>>>>>>> REPLACE\n```')
    reply = split_reply(text)
    assert reply.code is None and len(reply.edits) == 1
    new = apply_edits(PARENT, reply.edits)
    assert "return reply.strip().lower()" in new and new.count("return") == 1


def test_an_edit_that_does_not_match_says_which_block_and_what_to_do():
    with pytest.raises(ReplyError, match="edit block 1: the SEARCH text is not in the parent"):
        apply_edits(PARENT, [Edit(search="return nothing", replace="x")])
    with pytest.raises(ReplyError, match="occurs 2 times"):
        apply_edits("a = 1\na = 1\n", [Edit(search="a = 1", replace="b")])


def test_trailing_whitespace_differences_are_forgiven_in_edits():
    new = apply_edits(PARENT, [Edit(search="PROMPT = \"Classify: {{ task.input }}\"   ", replace="PROMPT = \"X\"")])
    assert 'PROMPT = "X"\n' in new


def test_a_reply_without_json_is_refused_in_one_line():
    with pytest.raises(ReplyError, match="no JSON object"):
        split_reply("I think we should add few-shot examples.")


def test_a_header_cut_inside_a_string_is_returned_for_closing():
    reply = split_reply('{"action": "propose", "moves": [1, 3], "hypothesis": "the model echo')
    assert reply.header.startswith('{"action": "propose"') and reply.code is None


# --------------------------------------------------------------------------- digest


def trace(task_id, answer, *, score=0.0, explanation="", status="ok", prompt="Which intent is this? Command: turn on",
          error=None, kind="chat"):
    call = ModelCall(kind=kind, model="m", prompt=prompt if kind == "complete" else None,
                     messages=[{"role": "user", "content": prompt}] if kind == "chat" else None,
                     response=answer, prompt_tokens=10, completion_tokens=5)
    return RolloutTrace(cache_key=task_id, candidate_id="c0000", task_id=task_id, task_input="turn on the lights",
                        trial=0, split="search", harness_hash="h", model="m", model_calls=[call], answer=answer,
                        score=score, explanation=explanation, status=status, error=error)


def test_echo_is_detected_only_when_most_of_the_answer_comes_from_the_prompt():
    assert echoes_prompt(trace("t", "Which intent is this? Command: turn on the"))
    assert not echoes_prompt(trace("t", "lights_on"))
    assert not echoes_prompt(trace("t", "The user wants brighter rooms, probably lights_on"))


def test_tags_follow_the_scorer_verdict_and_status():
    labels = ["lights_on", "lights_off"]
    assert tags_of(trace("a", "lights_on", score=1.0), labels=labels, task_shape="classification") == []
    assert tags_of(trace("a", "", explanation="no label in answer ''"), labels=labels,
                   task_shape="classification") == ["empty_answer"]
    wrong = trace("b", "lights_off", explanation="matched label 'lights_off' (exact); expected 'lights_on'")
    assert tags_of(wrong, labels=labels, task_shape="classification") == ["wrong_label"]
    boom = trace("c", None, status="error", error=RolloutError(type="KeyError", message="'x'"))
    assert tags_of(boom, labels=labels, task_shape="classification") == ["exception:KeyError"]
    assert tags_of(trace("d", "12", explanation="extracted 12; wrong"), labels=None, task_shape="math") == ["wrong_number"]


def test_the_digest_clusters_failures_with_counts_examples_facts_and_confusions():
    traces = [trace(f"t{i}", "Which intent is this? Command: turn on the",
                    explanation="no label in answer 'Which'; expected 'lights_on'") for i in range(3)]
    traces.append(trace("t9", "lights_off", explanation="matched label 'lights_off' (exact); expected 'lights_on'"))
    traces.append(trace("t8", "lights_on", score=1.0, explanation="matched label 'lights_on' (exact)"))
    d = build_digest(traces, candidate="c0000", labels=["lights_on", "lights_off"], task_shape="classification")
    counts = {c.key: c.count for c in d.clusters}
    assert counts["not_a_label"] == 3 and counts["echo"] == 3 and counts["wrong_label"] == 1
    assert d.failed == 4 and d.rollouts == 5 and d.score == pytest.approx(0.2)
    assert d.clusters[0].examples and d.clusters[0].examples[0].task_id == "t0"
    assert d.confusions == ["expected 'lights_on', answered 'lights_off' (1x)"]
    assert any("chat 5" in f for f in d.facts)


def test_the_digest_shown_differs_per_feedback_mode():
    traces = [trace("t0", "Which intent is this? Command: turn on the", explanation="no label in answer 'Which'; expected 'x'")]
    d = build_digest(traces, candidate="c0000", labels=["x"], task_shape="classification")
    shown = {mode: FeedbackView(mode).digest(d) for mode in ("traces", "summary", "scores")}
    assert "Which intent is this" in shown["traces"] and "e.g." in shown["traces"]
    assert "answer is not one of the labels: 1/1" in shown["summary"] and "Which intent" not in shown["summary"]
    assert "labels" not in shown["scores"] and "mean score 0.000" in shown["scores"]
    assert FeedbackView("scores").digest_line(d) == "" and "not_a_label" in FeedbackView("summary").digest_line(d)


# --------------------------------------------------------------------------- menu


def test_the_menu_lists_new_code_only_and_picks_compose():
    rng = random.Random(0)
    menu = build_menu(PARENT, "classification", seen_hashes=set(), rng=rng)
    names = [m.label for m in menu]
    assert "completion_mode" in names and "retrieval_fewshot" in names
    assert len({m.source for m in menu}) == len(menu)  # every line is distinct code
    by = {m.label: m.number for m in menu}
    steps, source = compose(PARENT, menu, [by["completion_mode"], by["retrieval_fewshot"]], "classification")
    assert [s.pattern for s in steps] == ["completion_mode", "retrieval_fewshot"]
    assert "ctx.complete" in source and "ctx.examples.similar" in source
    with pytest.raises(PatternError, match="not on the menu"):
        compose(PARENT, menu, [999], "classification")


def test_the_digest_orders_the_menu_and_says_which_failures_each_move_addresses():
    traces = [trace(f"t{i}", "Which intent is this? Command: turn on the",
                    explanation="no label in answer 'Which'; expected 'lights_on'") for i in range(4)]
    digest = build_digest(traces, candidate="c0000", labels=["lights_on"], task_shape="classification")
    menu = build_menu(PARENT, "classification", seen_hashes=set(), rng=random.Random(0))
    ranked = rank_by_digest(menu, digest)
    assert sorted(m.label for m in ranked) == sorted(m.label for m in menu)
    assert [m.number for m in ranked] == list(range(1, len(menu) + 1))
    first = {s.pattern for s in ranked[0].steps}
    assert first & {"completion_mode", "retrieval_fewshot", "label_constraint"}  # echo 4/4 and not a label 4/4
    unrelated = [m for m in ranked if {s.pattern for s in m.steps} <= {"chat_mode", "self_consistency", "verify_retry"}]
    assert unrelated and all(ranked.index(m) > ranked.index(ranked[0]) for m in unrelated)
    shown = describe_menu(ranked, digest).splitlines()
    completion = next(line for line in shown if line.split(". ", 1)[1].startswith("completion_mode:"))
    assert completion.endswith("[addresses: echo 4/4]")
    assert "[addresses" not in describe_menu(ranked)  # no digest (feedback mode scores): no links


def test_a_move_whose_code_was_already_tried_is_left_off_the_menu():
    first = build_menu(PARENT, "classification", seen_hashes=set(), rng=random.Random(0))
    from harnessopt.harness import source_hash

    tried = {source_hash(first[0].source)}
    again = build_menu(PARENT, "classification", seen_hashes=tried, rng=random.Random(0))
    assert first[0].source not in {m.source for m in again}


# --------------------------------------------------------------------------- headers and grammar


def test_proposal_headers_require_a_hypothesis_and_a_prediction_and_enumerate_ids():
    schema = A.header_schema(A.Propose, A.id_enums(["c0000", "c0001"], ["t1"]), menu=[1, 2, 3, 4])
    assert schema["required"] == ["action", "moves", "predicted", "hypothesis"]
    assert schema["properties"]["moves"]["items"]["enum"] == [1, 2, 3, 4]
    assert schema["properties"]["parent"]["enum"] == ["c0000", "c0001"]
    assert list(schema["properties"])[:2] == ["action", "moves"]  # decisive fields first


def test_the_reply_grammar_offers_exactly_the_allowed_headers_and_parses():
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    from harnessopt.meta.grammar import reply_grammar

    gbnf = reply_grammar(A.PROPOSE_TYPES, candidates=["c0000"], task_ids=["t1"], menu=[1, 2, 3])
    assert gbnf.startswith("root ::= propose-header | write-header fence | edit-header edit-fence")
    llama_grammar.LlamaGrammar.from_string(gbnf, verbose=False)  # parses as GBNF


def test_a_prediction_outside_minus_one_to_one_is_clamped_not_refused():
    assert A.parse_action({"action": "propose", "moves": [1], "predicted": 2.5}).predicted == 1.0
    assert A.parse_action({"action": "write", "predicted": -3}).predicted == -1.0


def test_the_menu_order_is_shuffled_per_draw_but_seeded():
    first = [m.label for m in build_menu(PARENT, "classification", seen_hashes=set(), rng=random.Random(1))]
    again = [m.label for m in build_menu(PARENT, "classification", seen_hashes=set(), rng=random.Random(1))]
    other = [m.label for m in build_menu(PARENT, "classification", seen_hashes=set(), rng=random.Random(2))]
    assert first == again and first != other


def test_a_step_that_changes_nothing_is_skipped_inside_a_composition():
    from harnessopt.meta.menu import Step, apply_steps

    chat = apply_steps(PARENT, [Step(pattern="chat_mode")], "classification")
    both = apply_steps(chat, [Step(pattern="chat_mode"), Step(pattern="retrieval_fewshot")], "classification")
    assert "ctx.examples.similar" in both
    with pytest.raises(PatternError, match="does not change"):
        apply_steps(chat, [Step(pattern="chat_mode")], "classification")
