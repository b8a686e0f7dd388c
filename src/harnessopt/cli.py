"""The `harnessopt` command line."""

from __future__ import annotations

import argparse
import errno
import asyncio
import os
import sys
from typing import Sequence

from harnessopt.cli_integrations import (
    add_integration_commands,
    add_mlflow_flag,
    cmd_export,
    cmd_gate,
    mlflow_log,
    mlflow_preflight,
)

EXIT_BAD_INPUT = 2
EXIT_ALL_FAILED = 1  # an evaluation ran, and not one rollout succeeded


def build_parser() -> argparse.ArgumentParser:
    # Run options come from their pydantic declarations (options.py): one definition for the
    # flags, the config files and the Python API.
    from harnessopt.comparison import GridSpec
    from harnessopt.options import EvalOptions, OptimizeConfig, add_flags

    parser = argparse.ArgumentParser(prog="harnessopt", description="Improve agent harnesses automatically.")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("eval", help="evaluate a harness on a benchmark split, with full traces")
    add_flags(ev, EvalOptions)
    ev.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")

    op = sub.add_parser("optimize", help="improve a harness with a meta-agent that reads traces")
    op.add_argument("--config", metavar="FILE", help="options as a .toml file (field names as keys, [budget] as a "
                                                     "table); options given here override it")
    add_flags(op, OptimizeConfig)
    op.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run with the options it was started with")
    op.add_argument("--json", action="store_true", help="print the result as JSON")
    add_mlflow_flag(op)

    sh = sub.add_parser("show", help="print a run's ledger and champion lineage")
    sh.add_argument("run_dir")

    cp = sub.add_parser("compare", help="run a grid of optimize runs: feedback modes x model pairings x seeds",
                        description="Each (arm, seed) is an independent optimize run with the same seed harness, "
                                    "benchmark, splits and budgets. Example: harnessopt compare --harness H "
                                    "--benchmark home_intents --feedback traces,scores --seeds 3")
    cp.add_argument("--grid", metavar="FILE", help="grid spec as .toml, .yaml/.yml or .json (options given here override it)")
    cp.add_argument("--resume", metavar="EXPERIMENT_DIR", help="continue an experiment: finished runs are skipped, killed ones resumed")
    add_flags(cp, GridSpec, help_overrides={"out": "root folder of experiment directories (default traces)",
                                            "concurrency": "rollouts at once within a run (default 2)"})
    cp.add_argument("--no-report", action="store_true", help="do not write report.md/.png/.html at the end")
    cp.add_argument("--json", action="store_true", help="print the result as JSON")
    add_mlflow_flag(cp)

    rp = sub.add_parser("report", help="write report.md, PNG plots and report.html for a run or an experiment")
    rp.add_argument("dir", help="a run directory or an experiment directory")
    rp.add_argument("--no-html", action="store_true", help="skip report.html")
    rp.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    add_integration_commands(sub)
    return parser


def _check_out(out: str) -> None:
    from pathlib import Path

    from harnessopt.errors import UsageError

    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; pass a folder for run directories")


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harnessopt.benchmark import load_benchmark
    from harnessopt.evaluation import check_tasks, evaluate_async
    from harnessopt.executors import check_available
    from harnessopt.harness import load_harness
    from harnessopt.llm import preflight
    from harnessopt.options import EvalOptions, build, given_options

    opts = build(EvalOptions, {}, flags=given_options(args), command="harnessopt eval")
    preflight(opts.task_model)  # model strings and keys: before anything starts
    check_available(opts.executor, opts.ray_address)
    _check_out(opts.out)
    console = Console(stderr=True)
    harness = load_harness(opts.harness)
    bench = load_benchmark(opts.benchmark, data=opts.data, seed=opts.seed)
    tasks = bench.tasks(opts.split, limit=opts.limit)
    check_tasks(bench.name, opts.split, tasks)  # bad data is one line, before any progress bar
    total = len(tasks) * opts.trials

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("score {task.fields[score]:.3f}  errors {task.fields[errors]}"), TimeElapsedColumn(),
        console=console, transient=False, disable=not console.is_terminal and bool(os.environ.get("CI")),
    ) as progress:
        bar = progress.add_task(f"{bench.name}/{opts.split}", total=total, score=0.0, errors=0)
        seen: list[float] = []
        errors = 0

        def on_rollout(trace) -> None:
            nonlocal errors
            seen.append(trace.score)
            errors += int(trace.status != "ok")
            progress.update(bar, advance=1, score=sum(seen) / len(seen), errors=errors)

        result = asyncio.run(evaluate_async(
            harness, bench, split=opts.split, limit=opts.limit, trials=opts.trials,
            task_model=opts.task_model, concurrency=opts.concurrency, out=opts.out, seed=opts.seed,
            temperature=opts.temperature, max_tokens=opts.max_tokens, timeout_s=opts.timeout_s,
            progress=on_rollout, executor=opts.executor, ray_address=opts.ray_address,
            ray_worker_cpus=opts.ray_worker_cpus,
        ))

    if args.json:
        print(result.model_dump_json(indent=2, exclude={"tasks"}))
    else:
        print_result_table(result)
    failed = result.n_errors + result.n_timeouts
    if failed:
        print(f"harnessopt: {failed} of {result.n_rollouts} rollouts failed; first errors:", file=sys.stderr)
        for line in result.errors_sample:
            print(f"  {line}", file=sys.stderr)
    if result.n_rollouts and failed == result.n_rollouts:
        print(f"harnessopt: error: every rollout failed; see the traces in {result.run_dir}", file=sys.stderr)
        return EXIT_ALL_FAILED
    return 0


def print_result_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.benchmark} / {result.split} / {result.model}")
    for column in ("harness", "score", "95% CI", "tasks", "trials", "errors", "scorer errors", "timeouts", "tokens",
                   "cost $", "wall s"):
        table.add_column(column, justify="right" if column != "harness" else "left")
    table.add_row(
        result.candidate_id, f"{result.score:.3f}", f"{result.ci_low:.3f}-{result.ci_high:.3f}",
        str(result.n_tasks), str(result.trials), str(result.n_errors - result.n_scorer_errors),
        str(result.n_scorer_errors), str(result.n_timeouts),
        f"{result.usage.tokens:,}", f"{result.usage.cost_usd:.4f}", f"{result.wall_s:.1f}",
    )
    console = Console()
    if not console.is_terminal:  # piped output: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    console.print(f"run directory: {result.run_dir}")


def cmd_optimize(args: argparse.Namespace) -> int:
    from harnessopt.errors import UsageError
    from harnessopt.optimizer import OptimizeConfig, optimize_async, preflight_models, print_progress
    from harnessopt.options import flag_names, given_options

    given = given_options(args)
    mlflow_preflight(args)
    if args.resume:
        if given or args.config:
            names = flag_names(OptimizeConfig)
            first = next(iter(_paths(given)), None)
            shown = names.get(first, "--config") if first else "--config"
            raise UsageError(f"{shown}: --resume continues a run with the options it was started with (see its "
                             "run.json); drop the option, or start a new run with it")
        result = asyncio.run(optimize_async(resume=args.resume, progress=print_progress))
    else:
        config = optimize_config(args)
        preflight_models(config.task_model, config.meta_model)  # before anything starts
        _check_out(config.out)
        result = asyncio.run(optimize_async(config, progress=print_progress))
    for warning in result.warnings:
        print(f"harnessopt: warning: {warning}", file=sys.stderr)
    logged = mlflow_log(args, result.run_dir)
    if args.json:
        print(result.model_dump_json(indent=2, exclude={"history", "champion_code"}))
        return logged
    print(f"seed      {result.seed_id}: search {result.seed_search:.3f}  test {result.seed_test.score:.3f} "
          f"({result.seed_test.ci_low:.3f}-{result.seed_test.ci_high:.3f}, {result.seed_test.n_tasks} tasks)")
    print(f"champion  {result.champion_id}: search {result.champion_search:.3f}  test {result.champion_test.score:.3f} "
          f"({result.champion_test.ci_low:.3f}-{result.champion_test.ci_high:.3f})")
    print(f"candidates {result.candidates}, promotions {len(result.promotions)}, stopped: {result.stop_reason}")
    print(f"spend: {result.spend.rollouts} rollouts, task tokens {result.spend.task.tokens:,}, "
          f"meta tokens {result.spend.meta.tokens:,}, ${result.spend.task.cost_usd + result.spend.meta.cost_usd:.4f}")
    print(f"champion harness: {result.champion_path}")
    print(f"run directory: {result.run_dir}")
    return logged


def cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from harnessopt.events import Promoted
    from harnessopt.ledger import LEDGER_COLUMNS
    from harnessopt.store import RunStore

    store = RunStore.open(args.run_dir)
    console = Console() if Console().is_terminal else Console(width=200)
    table = Table(title=f"ledger: {store.run_id}")
    columns = [c for c in LEDGER_COLUMNS if c != "time"]
    for c in columns:
        table.add_column(c)
    for row in store.ledger():
        cells = row.model_dump()
        cells["score"] = "" if row.score is None else f"{row.score:.4f}"
        cells["cost_usd"] = f"{row.cost_usd:.4f}"
        table.add_row(*(str(cells[c]) for c in columns))
    console.print(table)
    promoted = [e for e in store.events() if isinstance(e, Promoted)]
    metas = {m.id: m for m in store.candidates()}
    champion = promoted[-1].candidate if promoted else next(iter(metas), "")
    console.print(f"champion: {champion or '-'}")
    lineage = []
    cid = champion
    while cid and cid in metas and cid not in lineage:
        lineage.append(cid)
        cid = metas[cid].parent
    for cid in reversed(lineage):
        m = metas[cid]
        console.print(f"  {cid} <- {m.parent or 'seed'}: {m.hypothesis[:120]}")
    for e in promoted:
        console.print(f"  promoted {e.candidate} (iter {e.iter}): {e.reason}")
    return 0


def optimize_config(args: argparse.Namespace):
    """`optimize`'s OptimizeConfig: the --config file's options, with the flags given on top."""
    from harnessopt.options import OptimizeConfig, build, given_options, read_config_file

    data = read_config_file(args.config) if args.config else {}
    return build(OptimizeConfig, data, flags=given_options(args), file=args.config, command="harnessopt optimize")


def grid_spec(args: argparse.Namespace):
    """`compare`'s GridSpec: the --grid file's options, with the flags given on top."""
    from harnessopt.comparison import GridSpec, load_grid
    from harnessopt.errors import UsageError
    from harnessopt.options import build, given_options

    given = given_options(args)
    if args.grid:
        return load_grid(args.grid, **given)
    if "harness" not in given or "benchmark" not in given:
        raise UsageError("compare needs --harness FILE and --benchmark NAME (or --grid FILE, or --resume DIR)")
    return build(GridSpec, {}, flags=given, command="harnessopt compare")


def _paths(tree: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for k, v in tree.items():
        out += _paths(v, prefix + (k,)) if isinstance(v, dict) else [prefix + (k,)]
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from harnessopt.comparison import compare_async
    from harnessopt.errors import UsageError
    from harnessopt.executors import check_available
    from harnessopt.optimizer import print_progress
    from harnessopt.options import given_options

    given = given_options(args)
    mlflow_preflight(args)
    if args.resume:
        if given or args.grid:
            raise UsageError("--resume continues an experiment with the grid it was started with (see its "
                             "experiment.json); drop the other options, or start a new experiment")
        result = asyncio.run(compare_async(resume=args.resume, progress=print_progress))
    else:
        spec = grid_spec(args)
        check_available(spec.executor, spec.ray_address)
        print(f"experiment: {len(spec.arms())} arm(s) x {len(spec.seeds)} seed(s) = {len(spec.runs())} runs, "
              f"{spec.parallel} at once; budget per run: {spec.budget_text()}", file=sys.stderr)
        result = asyncio.run(compare_async(spec, progress=print_progress))
    failed = [r for r in result.runs if r.status != "finished"]
    if not args.no_report:
        from harnessopt.report import write_report
        from harnessopt.report.experiment_data import load_experiment

        write_report(result.experiment_dir)
        exp = load_experiment(result.experiment_dir)
    if args.json:
        print(result.model_dump_json(indent=2, exclude={"runs": {"__all__": {"result": {"history", "champion_code"}}}}))
    else:
        if not args.no_report:
            print(f"{'arm':<28} {'seeds':>5} {'champion test':>14} {'95% CI':>13} {'improvement':>12} {'rollouts':>9} {'spot/full':>10}")
            for a in exp.arms:
                ci = f"{a.champion_test_ci[0]:.3f}-{a.champion_test_ci[1]:.3f}" if a.champion_test_ci else "-"
                test = f"{a.champion_test:.3f}" if a.champion_test is not None else "-"
                imp = f"{a.improvement:+.3f}" if a.improvement is not None else "-"
                print(f"{a.name:<28} {a.runs_finished:>5} {test:>14} {ci:>13} {imp:>12} {a.rollouts:>9.0f} "
                      f"{a.behaviour.spot_checks:>4}/{a.behaviour.full_evals:<5}")
            for c in exp.comparisons:
                print(f"- {c.sentence}")
            print(f"report: {result.experiment_dir}/report.md, report.html")
        for r in failed:
            print(f"run {r.id}: {r.status}: {r.error}", file=sys.stderr)
        print(f"experiment directory: {result.experiment_dir}")
    logged = mlflow_log(args, result.experiment_dir)
    if failed:
        print(f"{len(failed)} run(s) did not finish; continue with: harnessopt compare --resume {result.experiment_dir}",
              file=sys.stderr)
        return 1
    return logged


def cmd_report(args: argparse.Namespace) -> int:
    from harnessopt.report import write_report
    from harnessopt.report.data import is_experiment_dir
    from harnessopt.report.experiment_data import load_experiment

    files = write_report(args.dir, html=not args.no_html, plots=not args.no_plots)
    if is_experiment_dir(args.dir):
        for c in load_experiment(args.dir).comparisons:
            print(f"- {c.sentence}")
    for path in files.values():
        print(path)
    return 0


COMMANDS = {"eval": cmd_eval, "optimize": cmd_optimize, "show": cmd_show, "compare": cmd_compare,
            "report": cmd_report, "gate": cmd_gate, "export": cmd_export}


class _ArgumentError(Exception):
    """A bad command line, reported as one line (argparse's default prints the whole usage)."""


def _one_line_errors(parser: argparse.ArgumentParser) -> None:
    """Make `parser` and all its subcommands raise _ArgumentError instead of printing usage."""

    def error(self: argparse.ArgumentParser, message: str) -> None:
        raise _ArgumentError(f"{self.prog}: {message} (see `{self.prog} --help`)")

    stack = [parser]
    while stack:
        p = stack.pop()
        p.error = error.__get__(p)  # type: ignore[method-assign]
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack.extend(action.choices.values())


def _quiet_libraries() -> None:
    """Libraries must not log their own copy of an error the CLI reports in one line (datasets
    logs "Failed to load JSON ..." before raising, for example)."""
    import logging

    os.environ.setdefault("DATASETS_VERBOSITY", "critical")  # read when datasets is imported
    for name in ("datasets", "huggingface_hub", "fsspec"):
        if name in sys.modules or name == "datasets":
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _show_warnings() -> None:
    """The library's warnings (a damaged cache file run again, a resume that took another path)
    as one `harnessopt: warning:` line each on stderr."""
    import logging

    class _Stderr(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            print(f"harnessopt: warning: {' '.join(record.getMessage().split())}", file=sys.stderr)

    log = logging.getLogger("harnessopt")
    if not any(type(h).__name__ == "_Stderr" for h in log.handlers):  # once, however often main() runs
        log.addHandler(_Stderr())
    log.setLevel(logging.WARNING)
    import warnings

    def one_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        # Python's own format is two lines (file:line: Category: text, then the source line).
        print(f"harnessopt: warning: {' '.join(str(message).split())}", file=sys.stderr)

    warnings.showwarning = one_line


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 done, 1 every rollout of an evaluation failed, 2 bad input (one line on stderr: what
    is wrong and the fix), 130 interrupted."""
    from harnessopt.errors import USER_ERRORS

    _quiet_libraries()
    _show_warnings()
    parser = build_parser()
    _one_line_errors(parser)
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:
        print(f"harnessopt: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"harnessopt: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"harnessopt: error: no space left on the device{where}; free some space and run again "
              "(an optimize run continues with --resume RUN_DIR, keeping what it wrote)", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("harnessopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
