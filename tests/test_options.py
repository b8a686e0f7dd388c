"""Options declared once: every run option is a flag of optimize and compare, config files, overrides."""

from __future__ import annotations

from typing import Literal, get_args, get_origin

import pytest

from harnessopt.budget import Budget
from harnessopt.cli import build_parser, grid_spec, main, optimize_config
from harnessopt.comparison import GridSpec
from harnessopt.errors import UsageError
from harnessopt.options import MAX_CONCURRENCY, OptimizeConfig, RunOptions, flags_of

BASE = ["--harness", "h.py", "--benchmark", "home_intents"]


def _value_for(flag) -> tuple[list[str], object]:
    """A valid, non-default command-line value for a flag, and what the config should then hold."""
    field = RunOptions
    for part in flag.path[:-1]:
        field = field.model_fields[part].annotation
    info = field.model_fields[flag.path[-1]]
    if flag.is_bool:
        return [flag.name], not info.default
    if get_origin(info.annotation) is Literal:  # a choice: another allowed value
        value = next(v for v in get_args(info.annotation) if v != info.default)
        return [flag.name, str(value)], value
    kinds = set(getattr(info.annotation, "__args__", ())) | {info.annotation}
    if int in kinds:
        low = max([m.ge for m in info.metadata if getattr(m, "ge", None) is not None], default=0)
        high = min([m.le for m in info.metadata if getattr(m, "le", None) is not None], default=10**9)
        value = min(max(7, low + 1), high)
        return [flag.name, str(value)], value
    if float in kinds:
        return [flag.name, "0.5"], 0.5
    if flag.path == ("ray_address",):  # an address, used only with --executor ray
        return ["--executor", "ray", flag.name, "auto"], "auto"
    return [flag.name, "some-value"], "some-value"


def _get(record, path):
    for part in path:
        record = getattr(record, part)
    return record


@pytest.mark.parametrize("flag", flags_of(RunOptions), ids=lambda f: f.name)
def test_every_run_option_is_a_flag_of_optimize_and_of_compare(flag, tmp_path):
    argv, expected = _value_for(flag)  # given after BASE: it wins for --harness and --benchmark too
    parser = build_parser()
    config = optimize_config(parser.parse_args(["optimize", *BASE, *argv]))
    assert _get(config, flag.path) == expected
    spec = grid_spec(parser.parse_args(["compare", *BASE, *argv]))
    run = spec.run_config(spec.arms()[0], 0, tmp_path)
    if flag.path != ("out",):  # a run's out is the experiment's runs folder
        assert _get(run, flag.path) == expected


def test_adding_a_field_is_all_it_takes(tmp_path):
    """The flags are the fields: none is missing, none is declared twice."""
    optimize = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["optimize"]._actions}
    fields = {"opt:" + ".".join(f.path) for f in flags_of(OptimizeConfig)}
    assert fields <= optimize
    assert {f.path for f in flags_of(GridSpec)} >= {f.path for f in flags_of(RunOptions)}
    assert len({f.name for f in flags_of(GridSpec)}) == len(flags_of(GridSpec))


def test_config_file_with_flags_on_top(tmp_path):
    (tmp_path / "seed.py").write_text("async def run(task, ctx):\n    return ''\n")
    (tmp_path / "exp.toml").write_text(
        'harness = "seed.py"\nbenchmark = "home_intents"\nmeta_model = "random"\nsearch_limit = 10\n'
        'feedback = "summary"\n\n[budget]\niterations = 3\nrollouts = 120\neval_wall_clock_s = 30\n')
    parser = build_parser()
    config = optimize_config(parser.parse_args(["optimize", "--config", str(tmp_path / "exp.toml"),
                                                "--iterations", "4", "--search-limit", "12"]))
    assert config.harness == str((tmp_path / "seed.py").resolve())  # relative to the file
    assert (config.budget.iterations, config.budget.rollouts, config.budget.eval_wall_clock_s) == (4, 120, 30)
    assert (config.search_limit, config.feedback, config.meta_model) == (12, "summary", "random")


@pytest.mark.parametrize("content, expected", [
    ('harness = "h.py"\nbenchmark = "b"\nseedz = 3\n', "seedz: not an option"),
    ('harness = "h.py"\nbenchmark = "b"\n[budget]\nwall_clock_s = nan\n', "budget.wall_clock_s: expected a finite number"),
    ('harness = "h.py"\n', "missing benchmark"),
    ('harness = "h.py"\nbenchmark = "b"\nfeedback = "everything"\n', "feedback: invalid choice"),
    ("harness = [1,\n", "cannot parse"),
])
def test_bad_config_files_name_the_file_and_key(tmp_path, capsys, content, expected):
    (tmp_path / "exp.toml").write_text(content)
    assert main(["optimize", "--config", str(tmp_path / "exp.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tmp_path / "exp.toml") in err and expected in err, err


@pytest.mark.parametrize("argv, expected", [
    (["eval", *BASE, "--timeout", "nan"], "argument --timeout: expected a finite number"),
    (["optimize", *BASE, "--max-wall-clock", "nan"], "argument --max-wall-clock: expected a finite number"),
    (["optimize", *BASE, "--eval-wall-clock", "inf"], "argument --eval-wall-clock: expected a finite number"),
    (["optimize", *BASE, "--temperature", "3"], "argument --temperature: must be at most 2"),
    (["compare", *BASE, "--meta-temperature", "-1"], "argument --meta-temperature: must be at least 0"),
    (["eval", *BASE, "--concurrency", "10000"], f"argument --concurrency: must be at most {MAX_CONCURRENCY}"),
    (["optimize", *BASE, "--out", ""], "argument --out: an empty path would write into the current directory"),
    (["eval", *BASE, "--out", " "], "argument --out: an empty path"),
    (["optimize", "--resume", "somewhere", "--iterations", "9"], "--iterations: --resume continues a run with the options"),
    (["compare", "--resume", "somewhere", "--parallel", "9"], "--resume continues an experiment with the grid"),
])
def test_every_number_is_validated_and_resume_refuses_options(argv, expected, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and expected in err, err
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_python_api_validates_the_same_way():
    with pytest.raises(ValueError, match="finite"):
        Budget(wall_clock_s=float("nan"))
    with pytest.raises(ValueError, match="less than or equal"):
        OptimizeConfig(harness="h.py", benchmark="b", concurrency=MAX_CONCURRENCY + 1)
    with pytest.raises(UsageError, match="feedback"):
        grid_spec(build_parser().parse_args(["compare", *BASE, "--feedback", "traces,nope"]))


def test_protocol_options_reach_the_proposal_protocol(tmp_path):
    from harnessopt.optimizer import protocol_settings

    args = build_parser().parse_args(["optimize", "--harness", "h.py", "--benchmark", "home_intents",
                                      "--menu-order", "digest", "--promotion-confidence", "0.9"])
    config = optimize_config(args)
    assert protocol_settings(config).menu_order == "digest" and config.promotion_confidence == 0.9
    assert protocol_settings(OptimizeConfig(harness="h.py", benchmark="home_intents")).menu_order == "shuffled"
    with pytest.raises(UsageError, match="menu"):
        optimize_config(build_parser().parse_args(["optimize", "--harness", "h.py", "--benchmark", "home_intents",
                                                   "--menu-order", "sorted"]))
