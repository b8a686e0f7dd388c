"""The pairwise judgement probe's scoring (bench/meta_judgement.py): what counts as judged right when
a pair is asked in both orders, and the guessing odds its p-value assumes."""

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

spec = importlib.util.spec_from_file_location(
    "meta_judgement", Path(__file__).resolve().parents[1] / "bench" / "meta_judgement.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)


@pytest.mark.parametrize("said, truth, expected", [
    (["A", "B"], ["A", "B"], "right"),       # follows the harnesses through the swap
    (["B", "A"], ["A", "B"], "wrong"),       # consistently prefers the worse one
    (["A", "A"], ["A", "B"], "position"),    # names the first slot whatever is in it
    (["B", "B"], ["A", "B"], "position"),
    (["T", "B"], ["A", "B"], "other"),       # off format once
    (["", ""], ["A", "B"], "other"),
    (["B"], ["B"], "right"),                 # one order asked
    (["A"], ["B"], "wrong"),
])
def test_outcome_of_a_pair(said, truth, expected):
    assert probe.outcome(said, truth) == expected


def test_guessing_odds_of_both_orders_are_a_quarter():
    # 15 of 30 is chance for one question, far above chance when both orders must be right
    assert probe.binomial_p(15, 30) == pytest.approx(0.5722, abs=1e-3)
    assert probe.binomial_p(15, 30, odds=4) < 0.01
    assert probe.binomial_p(0, 30, odds=4) == pytest.approx(1.0)
    assert probe.binomial_p(8, 30, odds=4) > probe.binomial_p(9, 30, odds=4)
