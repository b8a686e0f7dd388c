import pytest

from harnessopt.harness import HarnessError, harness_from_source, load_harness


def test_valid_harness_loads_with_hash_and_doc(tmp_path):
    p = tmp_path / "h.py"
    p.write_text('"""Doc line."""\nasync def run(task, ctx):\n    return "x"\n')
    h = load_harness(p)
    assert h.doc == "Doc line."
    assert len(h.hash) == 64
    assert h.hash != harness_from_source('async def run(task, ctx):\n    return "y"\n').hash


@pytest.mark.parametrize(
    "source, needle",
    [
        ("async def run(task, ctx):\n    return (\n", "h.py:"),
        ("def helper():\n    pass\n", "no top-level `run`"),
        ("def run(task, ctx):\n    return ''\n", "must be async"),
        ("async def run(task):\n    return ''\n", "must accept (task, ctx)"),
        ("async def run(task, ctx, extra):\n    return ''\n", "give the extra parameters defaults"),
        ("import harnessopt.store\nasync def run(task, ctx):\n    return ''\n", "imports harnessopt.store"),
        ("from harnessopt import evaluate\nasync def run(task, ctx):\n    return ''\n", "remove the import"),
    ],
)
def test_invalid_harness_errors_name_file_line_and_fix(tmp_path, source, needle):
    p = tmp_path / "h.py"
    p.write_text(source)
    with pytest.raises(HarnessError) as err:
        load_harness(p)
    message = str(err.value)
    assert needle in message
    assert str(p) in message
    assert "\n" not in message


def test_syntax_error_reports_the_line(tmp_path):
    p = tmp_path / "h.py"
    p.write_text("x = 1\n\nasync def run(task, ctx)\n    return ''\n")
    with pytest.raises(HarnessError, match=r"h\.py:3: syntax error"):
        load_harness(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(HarnessError, match="not found"):
        load_harness(tmp_path / "nope.py")
    with pytest.raises(HarnessError, match="directory"):
        load_harness(tmp_path)


def test_shipped_harnesses_validate(repo):
    files = sorted((repo / "harnesses").glob("*.py"))
    assert len(files) >= 5
    for f in files:
        assert load_harness(f).path == str(f)
