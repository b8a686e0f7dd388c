"""The `harnessopt` command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Sequence

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

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
    from harnessopt.llm import LOCAL_MODEL

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
    return parser


def cmd_eval(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harnessopt.benchmark import load_benchmark
    from harnessopt.evaluate import evaluate_async
    from harnessopt.harness import load_harness

    console = Console(stderr=True)
    harness = load_harness(args.harness)
    bench = load_benchmark(args.benchmark, data=args.data, seed=args.seed)
    n_tasks = len(bench.tasks(args.split, limit=args.limit))
    total = n_tasks * args.trials

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
    console.print(table)
    console.print(f"run directory: {result.run_dir}")


COMMANDS = {"eval": cmd_eval}


def main(argv: Sequence[str] | None = None) -> int:
    from harnessopt.errors import USER_ERRORS

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        print(f"harnessopt: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("harnessopt: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
