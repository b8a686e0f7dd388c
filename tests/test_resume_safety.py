"""A run directory under concurrent, damaged or interrupted use (stub models, real worker processes).

One writer at a time; damaged caches are run again; a deleted or damaged ledger; tampered code;
a resume keeps the run's clock, elapsed time and absolute paths; a replay that takes another
path keeps both histories; warnings a user must not miss.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harnessopt.budget import Budget
from harnessopt.cli import main
from harnessopt.errors import UsageError
from harnessopt.events import MetaStopped, ResumeDiverged
from harnessopt.ledger import LEDGER_HEADER
from harnessopt.meta.protocol import ProtocolSettings
from harnessopt.meta.ranking import RankingProposer
from harnessopt.optimizer import optimize_async
from harnessopt.records import Score  # noqa: F401  (the scorers below build them)
from harnessopt.store import LedgerRow, RunStore, StoreError
from scripted import Crash, ScriptedMetaGateway, ScriptedProposer
from stubs import StubGateway
from test_optimize import GOOD, arith_benchmark, config, double_model, run, write

SCRIPT = [[write(GOOD), {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"]},
           {"action": "full_eval", "candidate": "c0001"}]]


def finished_run(tmp_path, **kw):
    result, gateway = run(config(tmp_path, budget=Budget(iterations=1, rollouts=400), **kw), ScriptedProposer(SCRIPT))
    return result, gateway


def resume(run_dir, gateway=None, proposer=None, **kw):
    gateway = gateway or StubGateway(double_model)
    return asyncio.run(optimize_async(resume=run_dir, proposer=proposer or ScriptedProposer(SCRIPT), gateway=gateway,
                                      benchmark=arith_benchmark(), **kw)), gateway


def _without_time(rows):
    return [r.model_copy(update={"time": 0.0}) for r in rows]


# --------------------------------------------------------------------------- one writer at a time


def _hold_lock(run_dir) -> subprocess.Popen:
    code = ("import sys, time\nfrom harnessopt.store import RunStore\n"
            "store = RunStore.open(sys.argv[1], writer=True)\nprint('held', flush=True)\ntime.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_and_a_dead_holder_does_not_block(tmp_path, capsys):
    result, _ = finished_run(tmp_path)
    before = (tmp_path / "runs").stat().st_mtime, RunStore.open(result.run_dir).ledger()
    holder = _hold_lock(result.run_dir)
    try:
        assert main(["optimize", "--resume", result.run_dir]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "is in use by harnessopt pid" in err and str(holder.pid) in err, err
        with pytest.raises(UsageError, match=f"pid {holder.pid} on "):
            resume(result.run_dir)
    finally:
        holder.send_signal(signal.SIGKILL)  # a holder killed outright leaves the lock file behind...
        holder.wait()
    assert (tmp_path / "runs" / os.path.basename(result.run_dir) / "run.lock").exists()
    again, gateway = resume(result.run_dir)  # ...which does not block: the kernel dropped the lock
    assert again.champion_id == result.champion_id and gateway.usage.calls == 0
    assert _without_time(RunStore.open(result.run_dir).ledger()) == _without_time(before[1])  # nothing doubled


def test_an_experiment_has_one_writer_too(tmp_path, capsys):
    from harnessopt.runlock import DirectoryLock

    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / "experiment.json").write_text(json.dumps({"format": 2, "spec": {}, "runs": []}))
    lock = DirectoryLock(exp, "experiment.lock").acquire()
    try:
        assert main(["compare", "--resume", str(exp)]) == 2
        assert "this experiment directory is in use by harnessopt pid" in capsys.readouterr().err
    finally:
        lock.release()
    assert not (exp / "experiment.lock").exists()  # a clean release removes the file


# --------------------------------------------------------------------------- damaged or deleted files


def test_a_truncated_rollout_file_is_run_again_and_said_once(tmp_path, caplog):
    result, _ = finished_run(tmp_path)
    damaged = sorted((tmp_path / "runs").glob("*/rollouts/c0001/search-7/0.json"))[0]
    whole = json.loads(damaged.read_text())
    damaged.write_bytes(damaged.read_bytes()[:100])  # `head -c 100`
    resumed, gateway = resume(result.run_dir)
    assert gateway.usage.calls == 1  # exactly the damaged rollout, paid again
    assert json.loads(damaged.read_text())["answer"] == whole["answer"]  # whole again
    assert resumed.champion_id == result.champion_id and resumed.champion_test == result.champion_test
    said = [r.getMessage() for r in caplog.records if "damaged rollout file" in r.getMessage()]
    assert len(said) == 1 and str(damaged) in said[0]


def test_a_deleted_ledger_is_rebuilt_with_its_header(tmp_path, capsys):
    result, _ = finished_run(tmp_path)
    ledger = tmp_path / "runs" / os.path.basename(result.run_dir) / "ledger.tsv"
    rows = RunStore.open(result.run_dir).ledger()
    ledger.unlink()
    assert main(["show", result.run_dir]) == 2
    err = capsys.readouterr().err
    assert "ledger.tsv: missing" in err and "--resume" in err
    _, gateway = resume(result.run_dir)
    assert gateway.usage.calls == 0 and ledger.read_text().startswith(LEDGER_HEADER)
    assert _without_time(RunStore.open(result.run_dir).ledger()) == _without_time(rows)
    assert main(["show", result.run_dir]) == 0 and "c0001" in capsys.readouterr().out
    from harnessopt.report.data import load_run

    assert load_run(result.run_dir).summary.rollouts == result.spend.rollouts > 0


def test_a_ledger_that_is_not_utf8_stops_a_resume_before_anything_runs(tmp_path, capsys):
    result, _ = finished_run(tmp_path)
    ledger = tmp_path / "runs" / os.path.basename(result.run_dir) / "ledger.tsv"
    data = ledger.read_bytes().replace(b"seed baseline", b"seed \xff baseline")
    ledger.write_bytes(data)
    started = time.monotonic()
    assert main(["optimize", "--resume", result.run_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "ledger.tsv: line 2 is not UTF-8" in err and "rebuild" in err, err
    assert time.monotonic() - started < 30 and ledger.read_bytes() == data  # no replay, nothing changed


def test_a_tampered_candidate_is_detected_on_resume(tmp_path):
    result, _ = finished_run(tmp_path)
    code = tmp_path / "runs" / os.path.basename(result.run_dir) / "candidates" / "c0001" / "harness.py"
    original = code.read_text()
    code.write_text(original.replace("double", "triple"))
    with pytest.raises(StoreError, match="c0001/harness.py: changed since the run wrote it"):
        resume(result.run_dir)
    import shutil

    shutil.rmtree(code.parent)  # the fix the message offers: the resume writes it again
    resume(result.run_dir)
    assert code.read_text() == original


# --------------------------------------------------------------------------- the run's clock and paths


class SlowIterations:
    """Iterations that take `seconds` each (the first takes `first`, in the first session only)
    and end with an event; in the first session, a simulated kill (Crash) after iteration
    `crash_after`. A resumed session replays the same events without the wait."""

    name = "slow"

    def __init__(self, seconds: float, first_session: bool, crash_after: int | None = None, first: float = 0.0):
        self.seconds, self.first_session, self.crash_after, self.first = seconds, first_session, crash_after, first

    async def run_iteration(self, wb) -> None:
        if wb.state.iteration > 1 or self.first_session:
            await asyncio.sleep(self.first if wb.state.iteration == 1 else self.seconds)
        wb.event(MetaStopped(reason="done waiting"))
        if self.first_session and wb.state.iteration == self.crash_after:
            raise Crash("killed")


class WaitAfterLastEvent(SlowIterations):
    """Records its event first, then waits: nothing is written between the event and the check
    that ends the search, which happens well after it."""

    async def run_iteration(self, wb) -> None:
        wb.event(MetaStopped(reason="about to wait"))
        if self.first_session:
            await asyncio.sleep(self.first)


def test_a_resume_keeps_the_clock_elapsed_time_and_absolute_paths(tmp_path, monkeypatch):
    cfg = config(tmp_path, budget=Budget(iterations=5, rollouts=400, wall_clock_s=5.0))
    with pytest.raises(Crash):
        run(cfg, SlowIterations(3.0, True, crash_after=1, first=2.5))
    run_dir = next((tmp_path / "runs").iterdir())
    monkeypatch.chdir(tmp_path)
    resumed, _ = resume(os.path.relpath(run_dir), proposer=SlowIterations(3.0, False))
    # The killed session used the baseline's time plus 2.5 s of the 5 s budget: iteration 2 (3 s)
    # crosses it, so iteration 3 never starts. A clock granted afresh would have allowed it.
    assert resumed.stop_reason == "wall-clock budget used" and resumed.spend.iterations == 2
    assert resumed.spend.elapsed_s >= 5.5
    info = RunStore.open(run_dir).info()
    assert info["result"]["run_dir"] == str(run_dir) and os.path.isabs(resumed.run_dir)
    first, second = info["sessions"]
    assert first["elapsed_at_start"] == 0 and 2.5 <= second["elapsed_at_start"] < 5.0


def test_a_replay_stops_on_the_wall_clock_where_the_run_did(tmp_path):
    """Killed during the final test, after the search stopped on its wall-clock budget: the resume
    replays the same stop (the recorded clock), not one more iteration."""

    from harnessopt.runner import LocalProcessExecutor

    class CrashOnTest(LocalProcessExecutor):
        async def run(self, job, broker):
            if job.task.id.startswith("test-"):
                raise Crash("killed during the held-out test")
            return await super().run(job, broker)

    cfg = config(tmp_path, budget=Budget(iterations=5, rollouts=400, wall_clock_s=3.0))
    with pytest.raises(Crash):
        run(cfg, WaitAfterLastEvent(0.0, True, first=3.5), executor=CrashOnTest(2))
    run_dir = next((tmp_path / "runs").iterdir())
    resumed, _ = resume(run_dir, proposer=WaitAfterLastEvent(0.0, False))
    assert resumed.spend.iterations == 1 and resumed.stop_reason == "wall-clock budget used"
    store = RunStore.open(run_dir)
    assert not (run_dir / "diverged").exists() and not any(isinstance(e, ResumeDiverged) for e in store.events())
    assert [e.kind for e in store.events()].count("search_finished") == 1


def test_a_replay_that_takes_another_path_keeps_both_histories(tmp_path, caplog):
    store = RunStore.create(tmp_path, {"kind": "optimize"}, run_id="r")
    for i in range(3):
        store.append_ledger(LedgerRow(iter=i, candidate=f"c{i}", kind="full", split="search", n_tasks=2, trials=1,
                                      score=0.5, decision="rejected"))
        store.append_event(MetaStopped(iter=i, reason=f"r{i}"))
    store.close()
    resumed = RunStore.open(store.path, writer=True)
    resumed.check_whole()
    resumed.append_ledger(LedgerRow(iter=0, candidate="c0", kind="full", split="search", n_tasks=2, trials=1,
                                    score=0.5, decision="rejected"))  # the same: replayed, not written
    resumed.append_event(MetaStopped(iter=0, reason="r0"))
    resumed.append_ledger(LedgerRow(iter=1, candidate="c1", kind="full", split="search", n_tasks=2, trials=1,
                                    score=0.9, decision="promoted"))  # another path from here on
    resumed.close()
    rows = RunStore.open(store.path).ledger()
    assert [(r.candidate, r.decision) for r in rows] == [("c0", "rejected"), ("c1", "promoted")]
    events = RunStore.open(store.path).events()
    assert [e.kind for e in events] == ["meta_stop", "resume_diverged"] and events[1].row == 2
    moved = store.path / events[1].moved_to
    assert len((moved / "ledger.tsv").read_text().splitlines()) == 1 + 2  # header + the killed run's 2 rows
    assert len((moved / "events.jsonl").read_text().splitlines()) == 2
    assert any("took another path" in r.getMessage() for r in caplog.records)


# --------------------------------------------------------------------------- what a user must not miss


def test_a_champion_worse_than_the_seed_on_test_is_a_warning(tmp_path):
    only_search = ('async def run(task, ctx):\n    verb = "double " if int(task.input) < 40 else "echo "\n'
                   '    return (await ctx.complete(verb + task.input)).strip()\n')
    only_test = only_search.replace("< 40", ">= 40")
    proposer = ScriptedProposer([[write(only_search), {"action": "full_eval", "candidate": "c0001"}]])
    result, _ = run(config(tmp_path, harness=only_test, budget=Budget(iterations=1, rollouts=400)), proposer)
    assert result.champion_id == "c0001" and (result.seed_test.score, result.champion_test.score) == (1.0, 0.0)
    [warning] = result.warnings
    assert "c0001 scores below the seed harness on the held-out test (0.000 vs 1.000)" in warning
    assert RunStore.open(result.run_dir).info()["result"]["warnings"] == [warning]


def test_an_evaluation_where_every_rollout_fails_exits_non_zero_with_the_first_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "boom.py").write_text('async def run(task, ctx):\n    raise ValueError("no model for " + task.id)\n')
    from test_bad_input import make_data

    make_data(tmp_path / "spec", [{"text": f"q{i}", "label": "a"} for i in range(6)])
    code = main(["eval", "--harness", "boom.py", "--benchmark", "spec/mini.toml", "--out", "runs", "--limit", "3"])
    out, err = capsys.readouterr()
    assert code == 1, err
    assert "3 of 3 rollouts failed; first errors:" in err and "ValueError: no model for" in err
    assert "every rollout failed" in err.splitlines()[-1]


@pytest.mark.parametrize("verdict, expected", [
    ("raise ZeroDivisionError('bad scorer')", "bad scorer"),
    ("return float('nan')", "returned nan"),
    ("return 1.5", "returned 1.5"),
    ("return Score(value=0.5).model_copy(update={'value': float('nan')})", "returned nan, outside [0, 1]"),
])
def test_a_scorer_that_raises_or_returns_no_score_counts_as_a_scorer_error(tmp_path, verdict, expected):
    from harnessopt.benchmark import Benchmark
    from harnessopt.evaluation import evaluate_async

    def scorer(answer, task, **_):
        exec(f"def f():\n    {verdict}", globals(), namespace := {})
        return namespace["f"]()

    bench = Benchmark.from_records("s", train=[{"id": "t0", "input": "1", "target": "1"}],
                                   test=[{"id": f"x{i}", "input": str(i), "target": str(i)} for i in range(2)],
                                   search=[{"id": "s0", "input": "1", "target": "1"}], scorer=scorer)
    (tmp_path / "h.py").write_text("async def run(task, ctx):\n    return task.input\n")
    result = asyncio.run(evaluate_async(str(tmp_path / "h.py"), bench, out=str(tmp_path / "runs"),
                                        gateway=StubGateway()))
    assert (result.n_scorer_errors, result.n_errors, result.score) == (2, 2, 0.0)
    assert expected in result.errors_sample[0]


def test_a_verdict_whose_explanation_merely_reads_like_an_error_is_a_score(tmp_path):
    """Scorer errors are typed (Score.error), not recognised by the explanation's wording."""
    from harnessopt.benchmark import Benchmark
    from harnessopt.evaluation import evaluate_async
    from harnessopt.records import Score

    bench = Benchmark.from_records("s", train=[{"id": "t0", "input": "1", "target": "1"}],
                                   test=[{"id": "x0", "input": "0", "target": "0"}],
                                   search=[{"id": "s0", "input": "1", "target": "1"}],
                                   scorer=lambda answer, task, **_: Score(value=1.0, explanation="scorer error: none"))
    (tmp_path / "h.py").write_text("async def run(task, ctx):\n    return task.input\n")
    result = asyncio.run(evaluate_async(str(tmp_path / "h.py"), bench, out=str(tmp_path / "runs"),
                                        gateway=StubGateway()))
    assert (result.n_scorer_errors, result.n_errors, result.score) == (0, 0, 1.0)


def test_the_meta_prompts_budget_line_does_not_change_with_the_clock():
    """A resumed run replays its meta replies from the cache only if the prompts are the same; the
    elapsed time stays out of what the meta model is shown (the progress line keeps it)."""
    from harnessopt.budget import BudgetTracker

    now = [100.0]
    tracker = BudgetTracker(Budget(iterations=3, wall_clock_s=600.0), clock=lambda: now[0])
    before, shown_before = tracker.describe(clock=False), tracker.describe()
    now[0] += 250.0
    assert tracker.describe(clock=False) == before and "wall cap 600 s" in before
    assert tracker.describe() != shown_before and "wall 350/600 s" in tracker.describe()


def test_a_replay_stopped_before_it_catches_up_leaves_the_finished_runs_files_whole(tmp_path):
    """Ctrl-C during a rerun of a finished run: the replay rewrites the notebook, the meta
    transcripts and run.json's spend as they were earlier in the run; stopped there, it must not
    leave them cut back (found by the SIGINT trials of test_kill_resume)."""
    settings = ProtocolSettings(proposals=2, eval_policy="ladder", screen_tasks=2, proposal_mode="rank", pool_size=4)
    replies = [{"action": "rank", "hypothesis": "h", "picks": [1, 2]}] * 2

    class StopsInIteration2(RankingProposer):
        async def run_iteration(self, wb):
            if wb.state.iteration == 2:
                raise Crash("Ctrl-C during the replay")
            await super().run_iteration(wb)

    cfg = config(tmp_path, budget=Budget(iterations=2, rollouts=400))
    result = asyncio.run(optimize_async(cfg, proposer=RankingProposer(ScriptedMetaGateway(replies), "scripted-meta",
                                                                      settings=settings, seed=1),
                                        gateway=StubGateway(double_model), benchmark=arith_benchmark()))
    run_dir = Path(result.run_dir)

    def files():
        paths = [run_dir / "notebook.md", *sorted((run_dir / "meta").glob("*.jsonl"))]
        return {p.relative_to(run_dir).as_posix(): p.read_text() for p in paths}

    before, spend = files(), json.loads((run_dir / "run.json").read_text())["spend"]
    assert "- iter 2:" in before["notebook.md"] and "meta/002.jsonl" in before
    with pytest.raises(Crash):
        resume(run_dir, proposer=StopsInIteration2(ScriptedMetaGateway(replies), "scripted-meta", settings=settings, seed=1))
    assert files() == before
    assert json.loads((run_dir / "run.json").read_text())["spend"] == spend
    # and a full rerun still rewrites nothing differently
    again, _ = resume(run_dir, proposer=RankingProposer(ScriptedMetaGateway(replies), "scripted-meta", settings=settings,
                                                        seed=1))
    assert files() == before and again.champion_id == result.champion_id
