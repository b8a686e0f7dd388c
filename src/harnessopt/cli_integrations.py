"""The command line's bridges to CI, MLflow and OpenTelemetry: `gate`, `export`, and `--mlflow`.

Kept beside cli.py (which registers them) so that each module stays small. Like cli.py, this
imports its heavy modules only inside the commands.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

EXIT_REGRESSION = 1  # gate: the candidate is significantly worse (or the gate could not judge)
EXIT_EXPORT_FAILED = 1  # tracking or export destination failed; the run itself is safe on disk


def add_integration_commands(sub: argparse._SubParsersAction) -> None:
    from harnessopt.options import GateOptions, add_flags

    gt = sub.add_parser("gate", help="fail a CI job when a harness change makes scores significantly worse",
                        description="Evaluate --baseline and --candidate on the same tasks and compare them with a "
                                    "paired test. Exit 0: better, no difference, or a tolerated drop; 1: significantly "
                                    "worse by more than --max-drop (or every rollout of one side failed); 2: bad input.")
    add_flags(gt, GateOptions)
    gt.add_argument("--json", action="store_true", help="print the verdict as JSON instead of a table")

    ex = sub.add_parser("export", help="send a run's rollouts to OpenTelemetry, or a run to MLflow",
                        description="harnessopt export --otel DIR [--file F | --endpoint URL]; "
                                    "harnessopt export DIR --mlflow [URI]")
    ex.add_argument("dir", nargs="?", help="a run directory or an experiment directory")
    ex.add_argument("--otel", action="store_true", help="export every rollout as an OpenTelemetry GenAI span tree")
    ex.add_argument("--file", metavar="FILE", help="--otel: write OTLP/JSON here (default DIR/otel-traces.json)")
    ex.add_argument("--endpoint", metavar="URL", help="--otel: send to this OTLP/HTTP endpoint, e.g. http://localhost:4318")
    add_mlflow_flag(ex)


def add_mlflow_flag(parser: argparse.ArgumentParser) -> None:
    # A switch of the command, like --json: where results are reported is not a run option (it is
    # not stored in run.json, where a tracking URI with credentials would not belong, and it may
    # be given with --resume).
    parser.add_argument("--mlflow", nargs="?", const="", default=None, metavar="URI",
                        help="log the finished run to MLflow (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db "
                             "with artifacts in ./mlruns, no server needed); needs the mlflow extra")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def mlflow_preflight(args: argparse.Namespace) -> None:
    """A bad --mlflow (no package, unusable store) is bad input now, not after an hour-long run."""
    if args.mlflow is not None:
        from harnessopt.integrations.mlflow_tracking import mlflow_client

        mlflow_client(args.mlflow or None)


def mlflow_log(args: argparse.Namespace, path: str) -> int:
    """Log a finished run or experiment to MLflow (with --mlflow); exit code 1 if that failed.
    The report files are logged too, written first if missing (unless --no-report)."""
    if args.mlflow is None:
        return 0
    from harnessopt.errors import USER_ERRORS
    from harnessopt.integrations.mlflow_tracking import log_to_mlflow, tracking_uri

    try:
        run_id = log_to_mlflow(path, uri=args.mlflow or None, write_report=not getattr(args, "no_report", False))
    except USER_ERRORS:
        raise  # bad input (not an optimize run, ...): exit 2 like any other
    except Exception as exc:  # noqa: BLE001 - the run is done; say why tracking failed, in one line
        retry = f"harnessopt export {path} --mlflow {args.mlflow}".rstrip()
        print(f"harnessopt: error: mlflow: {_one_line(exc)[:300]}; the run is complete on disk; retry with: {retry}",
              file=sys.stderr)
        return EXIT_EXPORT_FAILED
    print(f"mlflow: run {run_id} in {tracking_uri(args.mlflow or None)}", file=sys.stderr)
    return 0


def cmd_gate(args: argparse.Namespace) -> int:
    from harnessopt.benchmark import load_benchmark
    from harnessopt.cli import _check_out
    from harnessopt.harness import load_harness
    from harnessopt.llm import preflight
    from harnessopt.options import GateOptions, build, given_options
    from harnessopt.regression_gate import gate_async, print_gate_result

    opts = build(GateOptions, {}, flags=given_options(args), command="harnessopt gate")
    preflight(opts.task_model)  # model strings and keys: before anything starts
    _check_out(opts.out)
    baseline, candidate = load_harness(opts.baseline), load_harness(opts.candidate)
    bench = load_benchmark(opts.benchmark, data=opts.data, seed=opts.seed)
    limit = f" (first {opts.limit} tasks)" if opts.limit else ""
    print(f"gate: baseline and candidate on {bench.name}/{opts.split}{limit} x {opts.trials} trial(s)", file=sys.stderr)
    options = opts.model_dump(exclude={"baseline", "candidate", "benchmark"})
    total = 2 * len(bench.tasks(opts.split, limit=opts.limit)) * opts.trials
    with _progress_bar("gate", total) as advance:
        result = asyncio.run(gate_async(baseline, candidate, bench, progress=advance, **options))
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        print_gate_result(result)
    return 0 if result.passed else EXIT_REGRESSION


@contextmanager
def _progress_bar(label: str, total: int) -> Iterator[Callable[[Any], None]]:
    """A rollout progress bar on stderr (not in CI logs); yields the per-rollout callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=not console.is_terminal and bool(os.environ.get("CI"))) as progress:
        bar = progress.add_task(label, total=total)
        yield lambda trace: progress.update(bar, advance=1)


def cmd_export(args: argparse.Namespace) -> int:
    from harnessopt.errors import UsageError

    if args.dir is None and args.mlflow and Path(args.mlflow).is_dir():
        args.dir, args.mlflow = args.mlflow, ""  # `export --mlflow RUN_DIR`: the directory, default store
    if args.dir is None or args.otel == (args.mlflow is not None):
        raise UsageError("export needs a directory and one of --otel or --mlflow: harnessopt export --otel DIR "
                         "[--file F | --endpoint URL], or harnessopt export DIR --mlflow [URI]")
    if not args.otel and (args.file or args.endpoint):
        raise UsageError("--file and --endpoint go with --otel")
    if args.mlflow is not None:  # the directory is checked before the store is opened (or created)
        return mlflow_log(args, args.dir)
    from harnessopt.integrations.otel_export import ExportFailed, export_otel

    try:
        done = export_otel(args.dir, file=args.file, endpoint=args.endpoint)
    except ExportFailed as exc:
        print(f"harnessopt: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_EXPORT_FAILED
    print(f"otel: {done.spans} spans from {done.rollouts} rollouts of {done.runs} run(s) -> {done.destination}")
    return 0
