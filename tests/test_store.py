import json

import pytest

from harnessopt.events import PromotionDecided
from harnessopt.records import RolloutTrace
from harnessopt.store import CandidateMeta, LedgerRow, RunStore, StoreError, atomic_write, safe_name


def _trace(key: str, cand: str = "c1", task: str = "t/1", trial: int = 0) -> RolloutTrace:
    return RolloutTrace(cache_key=key, candidate_id=cand, task_id=task, task_input="in", trial=trial,
                        split="search", harness_hash="h", model="m", answer="a", score=1.0)


def test_create_writes_layout_and_refuses_existing(tmp_path):
    store = RunStore.create(tmp_path, {"kind": "eval"}, run_id="r1")
    assert json.loads((store.path / "run.json").read_text())["kind"] == "eval"
    assert (store.path / "ledger.tsv").read_text().startswith("iter\tcandidate")
    with pytest.raises(StoreError, match="already exists"):
        RunStore.create(tmp_path, {}, run_id="r1")


def test_open_rejects_foreign_and_other_versions(tmp_path):
    with pytest.raises(StoreError, match="no run.json"):
        RunStore.open(tmp_path)
    store = RunStore.create(tmp_path, {}, run_id="r")
    store.update_info(format=99)
    with pytest.raises(StoreError, match="format 99"):
        RunStore.open(store.path)


def test_rollouts_are_indexed_by_cache_key_after_reopen(tmp_path):
    store = RunStore.create(tmp_path, {}, run_id="r")
    path = store.write_rollout(_trace("abc123"))
    assert path.name == "0.json" and "t_1" in str(path)
    reopened = RunStore.open(store.path)
    hit = reopened.cached("abc123")
    assert hit is not None and hit.answer == "a"
    assert reopened.cached("ffff") is None


def test_safe_name_keeps_distinct_ids_distinct():
    assert safe_name("HumanEval/0") != safe_name("HumanEval_0")
    assert "/" not in safe_name("../../etc/passwd")
    assert safe_name("plain-id_1.x") == "plain-id_1.x"


def test_ledger_rows_round_trip_and_escape_tabs(tmp_path):
    store = RunStore.create(tmp_path, {}, run_id="r")
    store.append_ledger(LedgerRow(candidate="c1", kind="full", split="search", n_tasks=3, trials=2, score=0.5,
                                  charged=5, reused=1, decision="promoted", note="a\tb\nc \"quoted\""))
    store.append_ledger(LedgerRow(iter=1, kind="meta", decision="meta", tokens=120, cost_usd=0.25, note="3 calls"))
    full, meta = RunStore.open(store.path).ledger()
    assert (full.candidate, full.score, full.charged, full.reused, full.decision) == ("c1", 0.5, 5, 1, "promoted")
    assert full.note == 'a b c "quoted"'  # tabs and newlines cannot break a row
    assert (meta.kind, meta.score, meta.tokens, meta.cost_usd) == ("meta", None, 120, 0.25)


def test_events_skip_a_half_written_line(tmp_path):
    store = RunStore.create(tmp_path, {}, run_id="r")
    store.append_event(PromotionDecided(candidate="c1", champion="c0", promote=False, mean_diff=0.0, ci_low=0.0,
                                        ci_high=0.0, noise_floor=0.0, n_tasks=3, reason="x"))
    with open(store.path / "events.jsonl", "a") as f:
        f.write('{"kind": "cut')
    [event] = RunStore.open(store.path).events()
    assert isinstance(event, PromotionDecided) and event.reason == "x"  # typed, and the cut line skipped


def test_candidates_round_trip(tmp_path):
    store = RunStore.create(tmp_path, {}, run_id="r")
    store.add_candidate("async def run(t, c):\n    return ''\n", CandidateMeta(id="c0", harness_hash="h"))
    assert store.has_candidate("c0") and not store.has_candidate("c1")
    assert store.candidate_meta("c0").harness_hash == "h"
    assert "async def run" in store.candidate_source("c0")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "x" / "f.json"
    atomic_write(target, "1")
    atomic_write(target, "2")
    assert target.read_text() == "2"
    assert [p.name for p in target.parent.iterdir()] == ["f.json"]
