import os
import time
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest

from harnessopt.examples import ExampleIndex, tokenize
from harnessopt.records import Example

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def ex(i: int, text: str, target: str = "x") -> Example:
    return Example(id=f"e{i}", input=text, target=target)


CORPUS = [
    ex(0, "turn on the kitchen lights", "lights_on"),
    ex(1, "play some jazz in the living room", "play_music"),
    ex(2, "what is the weather in Paris tomorrow", "weather_query"),
    ex(3, "set an alarm for 7 am", "set_alarm"),
    ex(4, "my card has not arrived yet", "card_arrival"),
    ex(5, "lock the front door", "lock_door"),
]


def test_tokenize():
    assert tokenize("Hello, World! It's 7am") == ["hello", "world", "it", "s", "7am"]


def test_similar_ranks_obvious_neighbour_first():
    idx = ExampleIndex(CORPUS)
    assert idx.similar("When will my new card arrive? It has not arrived", k=3)[0].id == "e4"
    assert idx.similar("Weather in Paris?", k=1)[0].id == "e2"
    assert idx.similar("please lock the door", k=2)[0].id == "e5"


def test_similar_caps_k_and_is_deterministic():
    idx = ExampleIndex(CORPUS)
    assert len(idx.similar("lights", k=100)) == len(CORPUS)
    assert idx.similar("", k=2) == CORPUS[:2]
    assert idx.similar("zzz unknown words", k=3) == CORPUS[:3]  # all scores tie: train order
    a = [e.id for e in idx.similar("the", k=6)]
    assert a == [e.id for e in idx.similar("the", k=6)]
    assert idx.similar("anything", k=0) == []


def test_ties_break_by_position():
    dup = [ex(0, "reset my password"), ex(1, "reset my password"), ex(2, "other text")]
    assert [e.id for e in ExampleIndex(dup).similar("reset my password", k=2)] == ["e0", "e1"]


def test_sample_all_len():
    idx = ExampleIndex(CORPUS)
    assert len(idx) == 6 and idx.all() == CORPUS
    assert idx.sample(3, seed=1) == idx.sample(3, seed=1)
    assert {tuple(e.id for e in idx.sample(3, seed=s)) for s in range(10)} != {tuple(e.id for e in idx.sample(3, seed=1))}
    assert len(idx.sample(50, seed=0)) == 6
    assert len(set(e.id for e in idx.sample(6, seed=0))) == 6


def test_empty_index():
    idx = ExampleIndex([])
    assert len(idx) == 0 and idx.similar("x") == [] and idx.sample(3) == []


@pytest.mark.skipif(not (DATA / "banking77" / "train.csv").is_file(), reason="shared banking77 data absent")
def test_banking77_index_build_time():
    import csv

    with open(DATA / "banking77" / "train.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    examples = [Example(id=str(i), input=r["text"], target=r["category"]) for i, r in enumerate(rows)]
    t0 = time.perf_counter()
    idx = ExampleIndex(examples)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    hits = idx.similar("I still haven't received my new card, when will it arrive?", k=8)
    query = time.perf_counter() - t0
    print(f"\nbanking77 index: {len(idx)} examples, build {build:.3f}s, one query {query * 1000:.1f}ms")
    assert build < 3.0 and query < 1.0
    assert sum(h.target == "card_arrival" for h in hits) >= 4


def test_scores_match_rank_bm25():
    import numpy as np

    texts = ["the card did not arrive", "card arrived broken", "exchange rate for euros", "the the rate", "arrive"]
    idx = ExampleIndex([ex(i, t) for i, t in enumerate(texts)])
    for q in ["card arrive", "the rate the", "nothing here", "euros"]:
        ours, _ = idx._scores(tokenize(q))
        assert np.allclose(ours, idx._bm25.get_scores(tokenize(q)))


def test_an_excluded_example_never_comes_back_and_the_rest_is_unchanged():
    exs = [Example(id=f"e{i}", input=text, target=str(i)) for i, text in
           enumerate(["turn on the lights", "turn on the lights now", "play some jazz", "set an alarm"])]
    idx = ExampleIndex(exs)
    assert [e.id for e in idx.similar("turn on the lights", k=2)] == ["e0", "e1"]
    assert [e.id for e in idx.similar("turn on the lights", k=2, exclude_id="e0")] == ["e1", "e2"]
    assert "e0" not in [e.id for e in idx.similar("turn on the lights", k=10, exclude_id="e0")]
    assert len(idx.similar("x", k=10, exclude_id="e3")) == 3 and idx.size(exclude_id="e3") == 3
    assert "e2" not in [e.id for e in idx.sample(4, seed=1, exclude_id="e2")]
    assert [e.id for e in idx.all(exclude_id="e1")] == ["e0", "e2", "e3"]
    # an id that is not a train example (a search or test task) changes nothing
    assert idx.sample(3, seed=5, exclude_id="t9") == idx.sample(3, seed=5)
    assert idx.similar("jazz lights", k=4, exclude_id="t9") == idx.similar("jazz lights", k=4)
