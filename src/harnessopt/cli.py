"""The `harnessopt` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Sequence

EXIT_BAD_INPUT = 2


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from harnessopt.llm import DEFAULT_META_MODEL, LOCAL_MODEL

    parser = argparse.ArgumentParser(prog="harnessopt", description="Improve agent harnesses automatically.")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("eval", help="evaluate a harness on a benchmark split, with full traces")
    ev.add_argument("--harness", required=True, help="path of the harness .py file")
    ev.add_argument("--benchmark", required=True, help="built-in name (home_intents, banking77, gsm8k, humaneval) or a spec .toml")
    ev.add_argument("--data", help="local data directory or file, instead of the benchmark's hub id")
    ev.add_argument("--split", default="test", choices=["train", "search", "test"])
    ev.add_argument("--limit", type=_positive_int, help="evaluate only the first N tasks of the split (seeded order)")
    ev.add_argument("--trials", type=_positive_int, default=1)
    ev.add_argument("--task-model", default=LOCAL_MODEL, help=f"any litellm model string (default {LOCAL_MODEL}, offline)")
    ev.add_argument("--concurrency", type=_positive_int, default=2)
    ev.add_argument("--temperature", type=float, default=0.0)
    ev.add_argument("--max-tokens", type=_positive_int, default=256)
    ev.add_argument("--timeout", type=_positive_float, default=60.0, help="wall-clock seconds per rollout")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--out", default="traces", help="root folder of run directories (default: traces)")
    ev.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")

    op = sub.add_parser("optimize", help="improve a harness with a meta-agent that reads traces")
    op.add_argument("--harness", help="seed harness .py file")
    op.add_argument("--benchmark", help="built-in name or spec .toml")
    op.add_argument("--data", help="local data directory or file, instead of the benchmark's hub id")
    op.add_argument("--task-model", default=LOCAL_MODEL, help="model that runs the harness (any litellm string)")
    op.add_argument("--meta-model", default=DEFAULT_META_MODEL, help="model that rewrites the harness (same as --task-model for a same-model pairing), "
                    "or 'random' for the random-pattern-search control")
    op.add_argument("--feedback", default="traces", choices=["traces", "summary", "scores"], help="what the meta-agent sees of rollouts")
    op.add_argument("--iterations", type=_positive_int, default=5)
    op.add_argument("--max-rollouts", type=_positive_int, default=400, help="task rollouts for the whole search (spot-checks and full evaluations)")
    op.add_argument("--max-task-tokens", type=_positive_int)
    op.add_argument("--max-task-usd", type=_positive_float)
    op.add_argument("--max-meta-tokens", type=_positive_int)
    op.add_argument("--max-meta-usd", type=_positive_float)
    op.add_argument("--max-wall-clock", type=_positive_float, help="seconds for the whole search")
    op.add_argument("--eval-wall-clock", type=_positive_float, help="seconds per evaluation; cut and scored on what finished")
    op.add_argument("--meta-steps", type=_positive_int, default=12, help="meta-agent actions per iteration")
    op.add_argument("--trials", type=_positive_int, default=1)
    op.add_argument("--search-limit", type=_positive_int, help="use the first N search-split tasks")
    op.add_argument("--test-limit", type=_positive_int, help="use the first N test-split tasks for the final evaluation")
    op.add_argument("--concurrency", type=_positive_int, default=2)
    op.add_argument("--timeout", type=_positive_float, default=60.0, help="wall-clock seconds per rollout")
    op.add_argument("--no-noise-rerun", action="store_true", help="skip rerunning the seed to measure the noise floor")
    op.add_argument("--test-every-champion", action="store_true", help="also test every promoted champion (recorded, never shown)")
    op.add_argument("--prompts-dir", help="directory of jinja2 templates overriding the meta prompts")
    op.add_argument("--seed", type=int, default=0)
    op.add_argument("--out", default="traces")
    op.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run (all other options come from it)")
    op.add_argument("--json", action="store_true", help="print the result as JSON")

    sh = sub.add_parser("show", help="print a run's ledger and champion lineage")
    sh.add_argument("run_dir")

    # compare: every option defaults to None so that a --grid file's values are only overridden
    # by options actually given; GridSpec holds the real defaults.
    cp = sub.add_parser("compare", help="run a grid of optimize runs: feedback modes x model pairings x seeds",
                        description="Each (arm, seed) is an independent optimize run with the same seed harness, "
                                    "benchmark, splits and budgets. Example: harnessopt compare --harness H "
                                    "--benchmark home_intents --feedback traces,scores --seeds 3")
    cp.add_argument("--grid", metavar="FILE", help="grid spec as .toml, .yaml/.yml or .json (options given here override it)")
    cp.add_argument("--resume", metavar="EXPERIMENT_DIR", help="continue an experiment: finished runs are skipped, killed ones resumed")
    cp.add_argument("--name", help="experiment name (part of its directory name)")
    cp.add_argument("--harness", help="seed harness .py file (the same for every arm)")
    cp.add_argument("--benchmark", help="built-in name or spec .toml")
    cp.add_argument("--data", help="local data directory or file, instead of the benchmark's hub id")
    cp.add_argument("--feedback", help="comma-separated feedback modes, e.g. traces,summary,scores (default traces,scores)")
    cp.add_argument("--models", help="model aliases, e.g. A=local/gemma-3-270m,B=openai/gpt-4o-mini; MODEL@t0.9 = same model at temperature 0.9")
    cp.add_argument("--pairs", help="comma-separated META:TASK pairings of aliases, e.g. A:A,A:B,B:A,B:B (default A:A)")
    cp.add_argument("--seeds", help="number of seeds (3 -> 0,1,2) or a comma-separated list (default 3)")
    cp.add_argument("--split-seed", type=int, help="seed of the benchmark's splits, shared by every run (default 0)")
    cp.add_argument("--iterations", type=_positive_int)
    cp.add_argument("--max-rollouts", type=_positive_int, help="search rollouts per run")
    cp.add_argument("--max-task-tokens", type=_positive_int)
    cp.add_argument("--max-task-usd", type=_positive_float)
    cp.add_argument("--max-meta-tokens", type=_positive_int)
    cp.add_argument("--max-meta-usd", type=_positive_float)
    cp.add_argument("--max-wall-clock", type=_positive_float, help="seconds for each run's search")
    cp.add_argument("--meta-steps", type=_positive_int, help="meta-agent actions per iteration")
    cp.add_argument("--trials", type=_positive_int)
    cp.add_argument("--search-limit", type=_positive_int)
    cp.add_argument("--test-limit", type=_positive_int)
    cp.add_argument("--concurrency", type=_positive_int, help="rollouts at once within a run")
    cp.add_argument("--parallel", type=_positive_int, help="runs at once (default 2)")
    cp.add_argument("--timeout", type=_positive_float, help="wall-clock seconds per rollout")
    cp.add_argument("--out", help="root folder of experiment directories (default: traces)")
    cp.add_argument("--no-report", action="store_true", help="do not write report.md/.png/.html at the end")
    cp.add_argument("--json", action="store_true", help="print the result as JSON")

    rp = sub.add_parser("report", help="write report.md, PNG plots and report.html for a run or an experiment")
    rp.add_argument("dir", help="a run directory or an experiment directory")
    rp.add_argument("--no-html", action="store_true", help="skip report.html")
    rp.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return parser


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harnessopt.benchmark import load_benchmark
    from harnessopt.evaluation import check_tasks, evaluate_async
    from harnessopt.harness import load_harness

    console = Console(stderr=True)
    harness = load_harness(args.harness)
    bench = load_benchmark(args.benchmark, data=args.data, seed=args.seed)
    tasks = bench.tasks(args.split, limit=args.limit)
    check_tasks(bench.name, args.split, tasks)  # bad data is one line, before any progress bar
    total = len(tasks) * args.trials

    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("score {task.fields[score]:.3f}  errors {task.fields[errors]}"), TimeElapsedColumn(),
        console=console, transient=False, disable=not console.is_terminal and bool(os.environ.get("CI")),
    ) as progress:
        bar = progress.add_task(f"{bench.name}/{args.split}", total=total, score=0.0, errors=0)
        seen: list[float] = []
        errors = 0

        def on_rollout(trace) -> None:
            nonlocal errors
            seen.append(trace.score)
            errors += int(trace.status != "ok")
            progress.update(bar, advance=1, score=sum(seen) / len(seen), errors=errors)

        result = asyncio.run(evaluate_async(
            harness, bench, split=args.split, limit=args.limit, trials=args.trials,
            task_model=args.task_model, concurrency=args.concurrency, out=args.out, seed=args.seed,
            temperature=args.temperature, max_tokens=args.max_tokens, timeout_s=args.timeout,
            progress=on_rollout,
        ))

    if args.json:
        print(result.model_dump_json(indent=2, exclude={"tasks"}))
    else:
        print_result_table(result)
    return 0


def print_result_table(result) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{result.benchmark} / {result.split} / {result.model}")
    for column in ("harness", "score", "95% CI", "tasks", "trials", "errors", "timeouts", "tokens", "cost $", "wall s"):
        table.add_column(column, justify="right" if column != "harness" else "left")
    table.add_row(
        result.candidate_id, f"{result.score:.3f}", f"{result.ci_low:.3f}-{result.ci_high:.3f}",
        str(result.n_tasks), str(result.trials), str(result.n_errors), str(result.n_timeouts),
        f"{result.usage.tokens:,}", f"{result.usage.cost_usd:.4f}", f"{result.wall_s:.1f}",
    )
    console = Console()
    if not console.is_terminal:  # piped output: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(table)
    console.print(f"run directory: {result.run_dir}")


def cmd_optimize(args: argparse.Namespace) -> int:
    from harnessopt.budget import Budget
    from harnessopt.errors import UsageError
    from harnessopt.optimizer import OptimizeConfig, optimize_async, print_progress

    if args.resume:
        result = asyncio.run(optimize_async(resume=args.resume, progress=print_progress))
    else:
        if not args.harness or not args.benchmark:
            raise UsageError("optimize needs --harness FILE and --benchmark NAME (or --resume RUN_DIR)")
        budget = Budget(
            iterations=args.iterations, rollouts=args.max_rollouts, task_tokens=args.max_task_tokens,
            task_usd=args.max_task_usd, meta_tokens=args.max_meta_tokens, meta_usd=args.max_meta_usd,
            wall_clock_s=args.max_wall_clock, eval_wall_clock_s=args.eval_wall_clock,
            meta_steps_per_iteration=args.meta_steps,
        )
        config = OptimizeConfig(
            harness=args.harness, benchmark=args.benchmark, data=args.data, task_model=args.task_model,
            meta_model=args.meta_model, feedback=args.feedback, budget=budget, seed=args.seed,
            trials=args.trials, search_limit=args.search_limit, test_limit=args.test_limit,
            concurrency=args.concurrency, timeout_s=args.timeout, measure_noise=not args.no_noise_rerun,
            test_every_champion=args.test_every_champion, prompts_dir=args.prompts_dir, out=args.out,
        )
        result = asyncio.run(optimize_async(config, progress=print_progress))
    if args.json:
        print(result.model_dump_json(indent=2, exclude={"history", "champion_code"}))
        return 0
    print(f"seed      {result.seed_id}: search {result.seed_search:.3f}  test {result.seed_test.score:.3f} "
          f"({result.seed_test.ci_low:.3f}-{result.seed_test.ci_high:.3f}, {result.seed_test.n_tasks} tasks)")
    print(f"champion  {result.champion_id}: search {result.champion_search:.3f}  test {result.champion_test.score:.3f} "
          f"({result.champion_test.ci_low:.3f}-{result.champion_test.ci_high:.3f})")
    print(f"candidates {result.candidates}, promotions {len(result.promotions)}, stopped: {result.stop_reason}")
    print(f"spend: {result.spend.rollouts} rollouts, task tokens {result.spend.task.tokens:,}, "
          f"meta tokens {result.spend.meta.tokens:,}, ${result.spend.task.cost_usd + result.spend.meta.cost_usd:.4f}")
    print(f"champion harness: {result.champion_path}")
    print(f"run directory: {result.run_dir}")
    return 0


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


def _compare_fields(args: argparse.Namespace) -> dict:
    from harnessopt.comparison import parse_models_arg

    fields = {
        "name": args.name, "harness": args.harness, "benchmark": args.benchmark, "data": args.data,
        "feedback": args.feedback, "pairs": args.pairs, "split_seed": args.split_seed, "trials": args.trials,
        "search_limit": args.search_limit, "test_limit": args.test_limit, "concurrency": args.concurrency,
        "parallel": args.parallel, "timeout_s": args.timeout, "out": args.out,
    }
    if args.models:
        fields["models"] = parse_models_arg(args.models)
    if args.seeds:
        try:
            fields["seeds"] = ([int(x) for x in args.seeds.split(",") if x.strip()] if "," in args.seeds
                               else int(args.seeds))
        except ValueError:
            from harnessopt.errors import UsageError

            raise UsageError(f"--seeds {args.seeds!r}: give a count (3) or a list (0,1,2)") from None
    budget = {
        "iterations": args.iterations, "rollouts": args.max_rollouts, "task_tokens": args.max_task_tokens,
        "task_usd": args.max_task_usd, "meta_tokens": args.max_meta_tokens, "meta_usd": args.max_meta_usd,
        "wall_clock_s": args.max_wall_clock, "meta_steps_per_iteration": args.meta_steps,
    }
    return {k: v for k, v in fields.items() if v is not None}, {k: v for k, v in budget.items() if v is not None}


def cmd_compare(args: argparse.Namespace) -> int:
    from harnessopt.comparison import compare_async, load_grid, make_grid
    from harnessopt.errors import UsageError
    from harnessopt.optimizer import print_progress

    if args.resume:
        result = asyncio.run(compare_async(resume=args.resume, progress=print_progress))
    else:
        fields, budget = _compare_fields(args)
        if args.grid:
            spec = load_grid(args.grid)
            fields = {**spec.model_dump(), **fields}
            fields["budget"] = {**spec.budget.model_dump(), **budget}
            spec = make_grid(**fields)
        else:
            if "harness" not in fields or "benchmark" not in fields:
                raise UsageError("compare needs --harness FILE and --benchmark NAME (or --grid FILE, or --resume DIR)")
            spec = make_grid(**fields, budget=budget)
        print(f"experiment: {len(spec.arms())} arm(s) x {len(spec.seeds)} seed(s) = {len(spec.runs())} runs, "
              f"{spec.parallel} at once; budget per run: {spec.budget_text()}", file=sys.stderr)
        result = asyncio.run(compare_async(spec, progress=print_progress))
    failed = [r for r in result.runs if r.status != "finished"]
    if not args.no_report:
        from harnessopt.report import write_report
        from harnessopt.report.data import load_experiment

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
    if failed:
        print(f"{len(failed)} run(s) did not finish; continue with: harnessopt compare --resume {result.experiment_dir}",
              file=sys.stderr)
        return 1
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from harnessopt.report import write_report
    from harnessopt.report.data import is_experiment_dir, load_experiment

    files = write_report(args.dir, html=not args.no_html, plots=not args.no_plots)
    if is_experiment_dir(args.dir):
        for c in load_experiment(args.dir).comparisons:
            print(f"- {c.sentence}")
    for path in files.values():
        print(path)
    return 0


COMMANDS = {"eval": cmd_eval, "optimize": cmd_optimize, "show": cmd_show, "compare": cmd_compare,
            "report": cmd_report}


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


def _validate_args(args: argparse.Namespace) -> None:
    """Checks that need no data: model strings and keys, the --out folder. Done before anything
    starts (a progress bar, a run directory), so bad input is one line and nothing else."""
    from pathlib import Path

    from harnessopt.errors import UsageError
    from harnessopt.llm import preflight

    if args.command == "eval":
        preflight(args.task_model)
    elif args.command == "optimize" and not getattr(args, "resume", None):
        from harnessopt.optimizer import preflight_models

        preflight_models(args.task_model, args.meta_model)
    out = getattr(args, "out", None)
    if args.command in ("eval", "optimize") and out and Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out} is a file, not a folder; pass a folder for run directories")


def _quiet_libraries() -> None:
    """Libraries must not log their own copy of an error the CLI reports in one line (datasets
    logs "Failed to load JSON ..." before raising, for example)."""
    import logging

    os.environ.setdefault("DATASETS_VERBOSITY", "critical")  # read when datasets is imported
    for name in ("datasets", "huggingface_hub", "fsspec"):
        if name in sys.modules or name == "datasets":
            logging.getLogger(name).setLevel(logging.CRITICAL)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input (one line on stderr: what is wrong and the fix), 130 interrupted."""
    from harnessopt.errors import USER_ERRORS

    _quiet_libraries()
    parser = build_parser()
    _one_line_errors(parser)
    try:
        args = parser.parse_args(argv)
    except _ArgumentError as exc:
        print(f"harnessopt: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        _validate_args(args)
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"harnessopt: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("harnessopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
