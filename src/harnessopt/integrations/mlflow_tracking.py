"""Optimize runs and compare experiments as MLflow runs (`--mlflow [URI]`, `harnessopt export DIR --mlflow`).

It reads a run directory once the run is over (nothing is logged while it runs, so tracking can
never slow or break a run) and logs, for an optimize run:

    params     the run's options, flattened (task_model, meta_model, feedback, seed, budget.rollouts, ...)
    metrics    search_score (each full evaluation), spot_check_score (each spot-check) and
               champion_search_score, each against `step` = search rollouts spent so far, at the
               time the ledger recorded; test_score_seed, test_score_champion (+ CI), spend totals
    artifacts  champion/harness.py, report.md, the PNG plots, report.html, ledger.tsv, run.json, notebook.md
    tags       harnessopt.run_id, harnessopt.run_dir, harnessopt.champion, harnessopt.stop_reason, ...

A compare experiment is one parent run (the grid's options, each arm's test mean, the experiment
report) with one child run per (arm, seed). Logging the same directory again returns the MLflow run
already logged for it (a run logged before it finished is replaced).

Where: the URI given, else MLFLOW_TRACKING_URI, else `sqlite:///mlflow.db` in the current folder
with artifacts in ./mlruns: MLflow's own local default, which `mlflow ui` opens, no server needed.
(A local SQLite store keeps new experiments' artifacts in mlruns/ beside its database file.)
(MLflow 3.13+ refuses the older ./mlruns file store unless MLFLOW_ALLOW_FILE_STORE=true.) The
MLflow experiment is MLFLOW_EXPERIMENT_NAME, else "harnessopt". Text artifacts are scrubbed of
key-shaped tokens (redaction.py).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from harnessopt.errors import UsageError
from harnessopt.integrations.redaction import scrub
from harnessopt.store import safe_name

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "harnessopt"
RUN_TAG, EXPERIMENT_TAG, FINISHED_TAG = "harnessopt.run_id", "harnessopt.experiment_id", "harnessopt.finished"
_TEXT_SUFFIXES = {".md", ".py", ".json", ".tsv", ".html", ".txt"}


def tracking_uri(uri: str | None = None) -> str:
    return uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def mlflow_client(uri: str | None = None) -> Any:
    """An MlflowClient for `uri` (see tracking_uri); a missing package or an unusable store is a UsageError."""
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise UsageError("--mlflow needs MLflow: pip install 'harnessopt[mlflow]'") from None
    uri = tracking_uri(uri)
    for name in ("mlflow", "alembic"):  # creating a store logs every migration step at INFO
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)  # opens (or creates) the store now: errors name the URI
    except MlflowException as exc:
        text = " ".join(str(exc.message).split())
        if "filesystem tracking backend" in text:
            text = ("this MLflow no longer opens a ./mlruns file store unless MLFLOW_ALLOW_FILE_STORE=true is set; "
                    "`mlflow migrate-filestore` moves old runs to a database")
        raise UsageError(f"--mlflow {uri}: {text[:240]} (a local store needs no server: "
                         f"--mlflow {DEFAULT_TRACKING_URI})") from None
    return client


def _experiment_id(client: Any, name: str | None) -> str:
    name = name or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    found = client.get_experiment_by_name(name)
    if found:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=_artifacts_beside(client.tracking_uri))


def _artifacts_beside(uri: str) -> str | None:
    """For a local SQLite store, artifacts in `mlruns/` beside the database file (MLflow would put
    them in the current folder, wherever that is); other stores choose their own."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri.removeprefix("sqlite:///"))
    return (database.absolute().parent / "mlruns").as_uri()


def _key(text: str) -> str:
    """A valid MLflow param/metric/tag name."""
    return re.sub(r"[^\w.\-/ ]", "_", text)[:250]


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in values.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{name}."))
        else:
            out[_key(name)] = scrub(",".join(map(str, v)) if isinstance(v, list) else str(v))[:6000]
    return out


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _log_batch(client: Any, run_id: str, *, metrics: list[Any] = (), params: dict[str, str] | None = None,
               tags: dict[str, str] | None = None) -> None:
    """Everything in MLflow's batch limits (1000 metrics, 100 params, 100 tags per call)."""
    from mlflow.entities import Param, RunTag

    params_list = [Param(k, v) for k, v in (params or {}).items()]
    tags_list = [RunTag(k, v) for k, v in (tags or {}).items()]
    metrics = list(metrics)
    while metrics or params_list or tags_list:
        client.log_batch(run_id, metrics=metrics[:1000], params=params_list[:100], tags=tags_list[:100])
        metrics, params_list, tags_list = metrics[1000:], params_list[100:], tags_list[100:]


def _log_files(client: Any, run_id: str, files: dict[str, Path]) -> None:
    """Log each file under its artifact path ("champion/harness.py"); text is scrubbed on the way."""
    with tempfile.TemporaryDirectory() as tmp:
        for artifact, source in files.items():
            if not source.is_file():
                continue
            folder = artifact.rpartition("/")[0]
            staged = Path(tmp) / artifact
            staged.parent.mkdir(parents=True, exist_ok=True)
            if source.suffix in _TEXT_SUFFIXES:
                staged.write_text(scrub(source.read_text(encoding="utf-8", errors="replace")), encoding="utf-8")
            else:
                staged.write_bytes(source.read_bytes())
            client.log_artifact(run_id, str(staged), artifact_path=folder or None)


def _already_logged(client: Any, experiment_id: str, tag: str, value: str) -> str | None:
    """The MLflow run already logged for this directory, if it was logged finished; an unfinished
    earlier log (and its children) is deleted, to be replaced by this one."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = '{value}'")
    for r in runs:
        if r.data.tags.get(FINISHED_TAG) == "true":
            return r.info.run_id
    for r in runs:
        for child in client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{r.info.run_id}'"):
            client.delete_run(child.info.run_id)
        client.delete_run(r.info.run_id)
    return None


def _run_metrics(run: Any) -> list[Any]:
    from mlflow.entities import Metric

    metrics = []
    for row in run.ledger:
        if row.split == "search" and row.score is not None:
            t, step = _ms(row.time), row.cum_rollouts
            name = "spot_check_score" if row.kind == "spot" else "search_score"
            metrics.append(Metric(name, row.score, t, step))
            if row.champion_score is not None:
                metrics.append(Metric("champion_search_score", row.champion_score, t, step))
        if row.kind in ("full", "spot", "noise", "meta"):
            metrics.append(Metric("spend_usd", row.cum_usd, _ms(row.time), row.cum_rollouts))
    s = run.summary
    last = _ms(max((r.time for r in run.ledger), default=0.0))
    totals = {
        "test_score_seed": s.seed_test, "test_score_champion": s.champion_test, "test_improvement": s.improvement,
        "test_ci_low_champion": s.champion_test_ci[0] if s.champion_test_ci else None,
        "test_ci_high_champion": s.champion_test_ci[1] if s.champion_test_ci else None,
        "search_score_seed": s.seed_search, "search_score_champion": s.champion_search, "noise_floor": s.noise_floor,
        "rollouts": s.rollouts, "test_rollouts": s.test_rollouts, "rollouts_to_best": s.rollouts_to_best,
        "task_tokens": s.task_tokens, "meta_tokens": s.meta_tokens, "task_usd": s.task_usd, "meta_usd": s.meta_usd,
        "candidates_proposed": s.candidates_proposed, "promoted": s.promoted,
    }
    final_step = run.ledger[-1].cum_rollouts if run.ledger else 0
    return metrics + [Metric(k, float(v), last, final_step) for k, v in totals.items() if v is not None]


def log_run(run_dir: str | Path, *, uri: str | None = None, experiment: str | None = None,
            parent_run_id: str | None = None, client: Any = None, write_report: bool = True) -> str:
    """Log one optimize run directory as an MLflow run; returns the MLflow run id."""
    from harnessopt.report.data import is_run_dir, load_run

    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise UsageError(f"{run_dir}: not a run directory (no run.json); pass a directory that optimize wrote")
    run = load_run(run_dir)
    if run.info.get("kind") != "optimize":
        raise UsageError(f"{run_dir}: a run of kind {run.info.get('kind')!r}; MLflow tracking logs optimize runs and "
                         "compare experiments: pass an optimize run directory or an experiment directory")
    client = client or mlflow_client(uri)
    experiment_id = _experiment_id(client, experiment)
    if parent_run_id is None:
        existing = _already_logged(client, experiment_id, RUN_TAG, run.run_id)
        if existing:
            return existing
    if write_report and not (run_dir / "report.md").is_file():
        from harnessopt.report import write_report as write

        write(run_dir)
    s = run.summary
    tags = {RUN_TAG: run.run_id, "harnessopt.run_dir": str(run_dir.absolute()), "harnessopt.kind": "optimize",
            FINISHED_TAG: str(s.finished).lower(), "harnessopt.champion": s.champion_id,
            "harnessopt.stop_reason": s.stop_reason, "harnessopt.benchmark": s.benchmark,
            "mlflow.note.content": scrub(f"harnessopt optimize run {run.run_id}: {s.benchmark}, feedback {s.feedback}, "
                                         f"meta {s.meta_model}, task {s.task_model}, seed {s.seed}")}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    created = float(run.info.get("created_at") or 0.0)
    mlrun = client.create_run(experiment_id, start_time=_ms(created) if created else None, tags=tags,
                              run_name=run.run_id)
    run_id = mlrun.info.run_id
    try:
        _log_batch(client, run_id, metrics=_run_metrics(run), params=flatten(run.info.get("config") or {}))
        files = {"champion/harness.py": run_dir / "candidates" / safe_name(s.champion_id) / "harness.py"}
        files |= {name: run_dir / name for name in ("report.md", "report.html", "ledger.tsv", "run.json", "notebook.md")}
        files |= {f"plots/{p.name}": p for p in sorted(run_dir.glob("*.png"))}
        _log_files(client, run_id, files)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    end = max((r.time for r in run.ledger), default=created)
    client.set_terminated(run_id, status="FINISHED" if s.finished else "KILLED", end_time=_ms(end) if end else None)
    return run_id


def log_experiment(experiment_dir: str | Path, *, uri: str | None = None, experiment: str | None = None,
                   client: Any = None, write_report: bool = True) -> str:
    """Log a compare experiment: a parent MLflow run with one child per (arm, seed); returns the parent's id."""
    import json

    from mlflow.entities import Metric

    from harnessopt.report.data import is_experiment_dir
    from harnessopt.report.experiment_data import load_experiment

    path = Path(experiment_dir)
    if not is_experiment_dir(path):
        raise UsageError(f"{path}: not an experiment directory (no experiment.json); pass a directory compare wrote")
    client = client or mlflow_client(uri)
    experiment_id = _experiment_id(client, experiment)
    exp = load_experiment(path)
    existing = _already_logged(client, experiment_id, EXPERIMENT_TAG, exp.id)
    if existing:
        return existing
    if write_report and not (path / "report.md").is_file():
        from harnessopt.report import write_report as write

        write(path)
    finished = bool(exp.run_status) and all(v == "finished" for v in exp.run_status.values())
    info = json.loads((path / "experiment.json").read_text(encoding="utf-8"))
    created = float(info.get("created_at") or 0.0)
    parent = client.create_run(experiment_id, run_name=exp.id, start_time=_ms(created) if created else None, tags={
        EXPERIMENT_TAG: exp.id, "harnessopt.experiment_dir": str(path.absolute()), "harnessopt.kind": "compare",
        FINISHED_TAG: str(finished).lower(),
        "mlflow.note.content": scrub("\n".join(f"- {c.sentence}" for c in exp.comparisons) or exp.id)})
    parent_id = parent.info.run_id
    try:
        now = _ms(created)
        metrics = []
        for arm in exp.arms:
            for name, value in (("champion_test", arm.champion_test), ("improvement", arm.improvement),
                                ("rollouts", arm.rollouts), ("usd", arm.usd)):
                if value is not None:
                    metrics.append(Metric(_key(f"{arm.name}/{name}"), float(value), now, 0))
        for c in exp.comparisons:
            metrics.append(Metric(_key(f"{c.arm_a}_vs_{c.arm_b}/mean_diff"), c.mean_diff, now, 0))
            metrics.append(Metric(_key(f"{c.arm_a}_vs_{c.arm_b}/p_value"), c.p_value, now, 0))
        _log_batch(client, parent_id, metrics=metrics, params=flatten(exp.spec))
        for run_id, run in exp.runs.items():
            child = log_run(run.path, parent_run_id=parent_id, client=client, experiment=experiment,
                            write_report=write_report)
            client.set_tag(child, "harnessopt.arm", exp.run_arm.get(run_id, ""))
        files = {name: path / name for name in ("report.md", "report.html", "experiment.json")}
        files |= {f"plots/{p.name}": p for p in sorted(path.glob("*.png"))}
        _log_files(client, parent_id, files)
    except BaseException:
        client.set_terminated(parent_id, status="FAILED")
        raise
    client.set_terminated(parent_id, status="FINISHED" if finished else "KILLED")
    return parent_id


def log_to_mlflow(path: str | Path, *, uri: str | None = None, experiment: str | None = None,
                  write_report: bool = True) -> str:
    """A run directory or an experiment directory, whichever `path` is; returns the (parent) MLflow run id."""
    from harnessopt.report.data import is_experiment_dir

    if is_experiment_dir(path):
        return log_experiment(path, uri=uri, experiment=experiment, write_report=write_report)
    return log_run(path, uri=uri, experiment=experiment, write_report=write_report)


__all__ = ["DEFAULT_TRACKING_URI", "flatten", "log_experiment", "log_run", "log_to_mlflow", "mlflow_client",
           "tracking_uri"]
