"""The workspace_tasks benchmark: it loads offline, it is what its generator writes, and every
task is solvable: each task's reference solution, run in a sandboxed copy of its workspace,
scores 1 through the benchmark's own scorer (answer or check on the final files), while an
untouched workspace or a wrong answer scores 0."""

from __future__ import annotations

import importlib.util
import json
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from harnessopt.benchmark import BenchmarkError, load_benchmark
from harnessopt.records import WorkspaceChanges
from harnessopt.workspace_scorer import answer_matches
from harnessopt.workspace_tools import run_in_workspace

SPLITS = ("train", "search", "test")


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("workspace_tasks")


def _generator(repo):
    spec = importlib.util.spec_from_file_location("make_workspace_tasks", repo / "benchmark_specs/data/make_workspace_tasks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_loads_offline_in_seconds_with_families_in_every_split(bench):
    started = time.perf_counter()
    again = load_benchmark("workspace_tasks")
    assert time.perf_counter() - started < 10
    assert again.fingerprint == bench.fingerprint
    sizes = bench.summary()["sizes"]
    assert sum(sizes.values()) >= 200 and all(sizes[s] > 0 for s in SPLITS), sizes
    for split in SPLITS:
        families = Counter(t.extra["family"] for t in bench.tasks(split))
        assert len(families) >= 5, (split, families)
    task = bench.tasks("test", limit=1)[0]
    assert task.workspace and all(isinstance(v, str) for v in task.workspace.values())
    assert set(task.extra) == {"family"}  # check and solution stay hidden
    assert set(bench.hidden_fields(task.id)) == {"check", "solution"}


def test_committed_data_is_what_the_generator_writes(repo):
    generated = _generator(repo).generate(seed=0)
    for split, rows in generated.items():
        text = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
        committed = (repo / f"benchmark_specs/data/workspace_tasks/{split}.jsonl").read_text(encoding="utf-8")
        assert text == committed, f"{split}.jsonl differs from make_workspace_tasks.py's output: rerun it"


def _solve(bench, task):
    """Run the task's reference solution in a sandboxed copy of its workspace and score it."""
    solution = bench.hidden_fields(task.id)["solution"]
    result = run_in_workspace(task.workspace, "python", solution, timeout_s=20)
    after = result.files or {}
    changes = WorkspaceChanges(changed={p: t for p, t in after.items() if task.workspace.get(p) != t},
                               deleted=[p for p in task.workspace if p not in after])
    lines = result.stdout.strip().splitlines()
    answer = lines[-1] if lines else ""
    return result, answer, bench.score(task, answer, workspace=changes)


def test_every_task_is_solved_by_its_reference_solution(bench):
    tasks = [t for s in SPLITS for t in bench.tasks(s)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(lambda t: (t, *_solve(bench, t)), tasks))
    failed = [(t.id, r.exit_code, r.stderr[-300:], answer, score.explanation)
              for t, r, answer, score in outcomes if score.value != 1.0]
    assert not failed, failed[:5]
    checked = [t for t, *_ in outcomes if bench.hidden_fields(t.id)["check"]]
    assert len(checked) >= 40  # the file-changing families are scored on the final files


def test_an_untouched_workspace_or_a_wrong_answer_scores_zero(bench):
    tasks = [t for s in SPLITS for t in bench.tasks(s)]
    checked = [t for t in tasks if bench.hidden_fields(t.id)["check"]]
    answered = [t for t in tasks if not bench.hidden_fields(t.id)["check"]]
    for task in answered:
        assert bench.score(task, "").value == 0.0
        assert bench.score(task, f"the answer is {task.target}").value == 0.0
    with ThreadPoolExecutor(max_workers=2) as pool:
        scores = list(pool.map(lambda t: bench.score(t, t.target, workspace=WorkspaceChanges()), checked))
    passed = [t.id for t, s in zip(checked, scores) if s.value != 0.0]
    assert not passed, f"checks that pass without any change: {passed[:5]}"
    assert all("check failed on the final workspace" in s.explanation for s in scores)


def test_a_change_outside_the_goal_fails_the_check(bench):
    task = next(t for t in bench.tasks("test") if t.extra["family"] == "edit_config")
    result, _, solved = _solve(bench, task)
    assert solved.value == 1.0
    changed = {p: t for p, t in result.files.items() if task.workspace.get(p) != t}
    other = next(p for p in task.workspace if p.endswith(".ini") and p != task.target)
    spoiled = WorkspaceChanges(changed={**changed, other: task.workspace[other] + "extra = 1\n"})
    assert bench.score(task, task.target, workspace=spoiled).value == 0.0


@pytest.mark.parametrize("answer, target, ok, says", [
    ("E1234", "E1234", True, "exact match"),
    ("  `e1234`. ", "E1234", True, "exact match"),
    ('"team-core"', "team-core", True, "exact match"),
    ("1,234.50", "1234.50", True, "same number"),
    ("$1234.5", "1234.50", True, "same number"),
    ("1234.56", "1234.50", False, "expected '1234.50'"),
    ("The code is E1234", "E1234", False, "holds 'e1234' but also other text"),
    ("E12345", "E1234", False, "expected 'e1234'"),
    ("3", "3", True, "exact match"),
    ("3 files", "3", False, "holds '3' but also other text"),
])
def test_answer_matching(answer, target, ok, says):
    matched, why = answer_matches(answer, target)
    assert matched is ok and says in why, why


@pytest.mark.parametrize("files, message", [
    ([{"path": "../escape.txt", "content": "x"}], "must be relative and stay inside the workspace"),
    ([{"path": "/etc/passwd", "content": "x"}], "must be relative and stay inside the workspace"),
    ([{"path": "a.txt", "content": 3}], "holds a int, not text"),
    ([{"path": "a", "content": "x"}, {"path": "a/b", "content": "y"}], "is both a file and a folder"),
    ("not files", "give a list of {path, content} records"),
])
def test_bad_workspace_cells_fail_loading_with_the_row(tmp_path, files, message):
    (tmp_path / "data").mkdir()
    row = {"question": "q", "answer": "a", "files": files}
    for split in ("train", "test"):
        (tmp_path / "data" / f"{split}.jsonl").write_text(json.dumps(row) + "\n")
    (tmp_path / "ws.toml").write_text(
        'name = "ws"\n[source]\ndata_dir = "data"\nfiles = { train = "train.jsonl", test = "test.jsonl" }\n'
        '[fields]\ninput = "question"\ntarget = "answer"\nworkspace = "files"\n'
        '[splits]\ntrain = "train"\nsearch = { from = "train", n = 0 }\ntest = "test"\n[scorer]\nname = "workspace"\n')
    with pytest.raises(BenchmarkError, match=r"row 0 of .*fields\.workspace.*" + re.escape(message)):
        load_benchmark(str(tmp_path / "ws.toml"))
