"""MLflow tracking of optimize runs and compare experiments, read back with MLflow's own client
(scripted meta-agent and stub task model; a local SQLite store, no server)."""

import asyncio
import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="needs the mlflow extra")

from mlflow import MlflowClient  # noqa: E402

from harnessopt.benchmark import Benchmark  # noqa: E402
from harnessopt.budget import Budget  # noqa: E402
from harnessopt.cli import main  # noqa: E402
from harnessopt.comparison import compare_async, make_grid  # noqa: E402
from harnessopt.integrations.mlflow_tracking import log_experiment, log_run  # noqa: E402
from harnessopt.optimizer import OptimizeConfig, optimize_async  # noqa: E402
from harnessopt.store import RunStore  # noqa: E402
from scripted import ScriptedProposer  # noqa: E402
from stubs import StubGateway  # noqa: E402

KEY = "sk-abcdefghijklmnopqrstu"
SEED = f'# contact: {KEY}\nasync def run(task, ctx):\n    return (await ctx.complete("echo " + task.input)).strip()\n'
GOOD = 'async def run(task, ctx):\n    return (await ctx.complete("double " + task.input)).strip()\n'


def double_model(prompt: str) -> str:
    verb, _, n = prompt.partition(" ")
    return f" {int(n) * 2}" if verb == "double" else f" {n}"


def arith_benchmark() -> Benchmark:
    def item(n, split):
        return {"id": f"{split}-{n}", "input": str(n), "target": str(2 * n)}
    return Benchmark.from_records("arith", train=[item(n, "train") for n in range(100, 104)],
                                  search=[item(n, "search") for n in range(1, 13)],
                                  test=[item(n, "test") for n in range(50, 56)], scorer="exact")


def winning_proposer():
    return ScriptedProposer([[{"action": "write_harness", "code": GOOD, "hypothesis": "double"},
                              {"action": "spot_check", "candidate": "c0001", "task_ids": ["search-1", "search-2"]},
                              {"action": "full_eval", "candidate": "c0001"}]])


@pytest.fixture(scope="module")
def optimize_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow_opt")
    (root / "seed.py").write_text(SEED)
    config = OptimizeConfig(harness=str(root / "seed.py"), benchmark="arith", budget=Budget(iterations=1, rollouts=100),
                            out=str(root / "runs"), meta_model="scripted", feedback="traces", seed=3)
    return asyncio.run(optimize_async(config, proposer=winning_proposer(), gateway=StubGateway(double_model),
                                      benchmark=arith_benchmark()))


@pytest.fixture(scope="module")
def store_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow_store') / 'mlflow.db'}"


def test_an_optimize_run_is_an_mlflow_run_with_params_metrics_and_artifacts(optimize_run, store_uri, tmp_path):
    run_id = log_run(optimize_run.run_dir, uri=store_uri, experiment="opt")
    client = MlflowClient(store_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == optimize_run.run_dir.rsplit("/", 1)[-1]
    p = run.data.params
    assert (p["feedback"], p["seed"], p["meta_model"], p["task_model"]) == ("traces", "3", "scripted",
                                                                             "local/gemma-3-270m")
    assert (p["budget.iterations"], p["budget.rollouts"]) == ("1", "100")
    m = run.data.metrics
    assert m["test_score_champion"] == optimize_run.champion_test.score == 1.0
    assert m["test_score_seed"] == optimize_run.seed_test.score == 0.0
    assert m["rollouts"] == optimize_run.spend.rollouts
    # One point per full evaluation against the search rollouts spent when it was recorded.
    history = [(h.step, h.value) for h in client.get_metric_history(run_id, "search_score")]
    assert history == [(12, 0.0), (24, 0.0), (36, 1.0)]  # baseline, noise rerun, the promoted candidate
    assert [(h.step, h.value) for h in client.get_metric_history(run_id, "spot_check_score")] == [(26, 1.0)]
    assert [h.value for h in client.get_metric_history(run_id, "champion_search_score")][-1] == 1.0
    tags = run.data.tags
    assert tags["harnessopt.champion"] == "c0001" and tags["harnessopt.finished"] == "true"
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"champion", "report.md", "report.html", "ledger.tsv", "run.json", "plots"} <= names
    plots = [a.path for a in client.list_artifacts(run_id, "plots")]
    assert plots and all(path.endswith(".png") for path in plots)
    database = store_uri.removeprefix("sqlite:///")
    assert run.info.artifact_uri.startswith((Path(database).parent / "mlruns").as_uri())  # beside the store
    local = client.download_artifacts(run_id, "champion/harness.py", str(tmp_path))
    assert Path(local).read_text() == GOOD


def test_logging_the_same_run_again_returns_the_same_mlflow_run(optimize_run, store_uri):
    first = log_run(optimize_run.run_dir, uri=store_uri, experiment="again")
    assert log_run(optimize_run.run_dir, uri=store_uri, experiment="again") == first
    client = MlflowClient(store_uri)
    experiment = client.get_experiment_by_name("again")
    assert len(client.search_runs([experiment.experiment_id])) == 1


def test_secrets_never_reach_the_tracking_store(optimize_run, store_uri, tmp_path):
    run_id = log_run(optimize_run.run_dir, uri=store_uri, experiment="secrets")
    client = MlflowClient(store_uri)
    report = Path(client.download_artifacts(run_id, "report.md", str(tmp_path))).read_text()
    assert "c0000" in report and KEY not in report  # the seed harness's code is shown in the report
    for artifact in ("run.json", "ledger.tsv"):
        assert KEY not in Path(client.download_artifacts(run_id, artifact, str(tmp_path))).read_text()


def test_a_compare_experiment_is_a_parent_run_with_one_child_per_cell(tmp_path, store_uri):
    (tmp_path / "seed.py").write_text(SEED)
    spec = make_grid(harness=str(tmp_path / "seed.py"), benchmark="arith", feedback="traces,scores", seeds=1,
                     models={"A": "local/gemma-3-270m"}, budget=Budget(iterations=1, rollouts=100),
                     out=str(tmp_path / "exp"), parallel=1)
    result = asyncio.run(compare_async(spec, benchmark=arith_benchmark(),
                                       proposer_factory=lambda entry, config: winning_proposer(),
                                       gateway_factory=lambda entry, config: StubGateway(double_model)))
    parent_id = log_experiment(result.experiment_dir, uri=store_uri, experiment="grid")
    client = MlflowClient(store_uri)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["harnessopt.kind"] == "compare"
    assert parent.data.params["feedback"] == "traces,scores"
    arms = {k.split("/")[0] for k in parent.data.metrics if k.endswith("/champion_test")}
    assert arms == {"traces-A-A", "scores-A-A"}
    experiment = client.get_experiment_by_name("grid")
    children = client.search_runs([experiment.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'")
    assert sorted(c.data.tags["harnessopt.arm"] for c in children) == ["scores-A-A", "traces-A-A"]
    assert all(c.data.metrics["test_score_champion"] == 1.0 for c in children)
    assert "report.md" in {a.path for a in client.list_artifacts(parent_id)}
    assert log_experiment(result.experiment_dir, uri=store_uri, experiment="grid") == parent_id
    if importlib.util.find_spec("opentelemetry.sdk") is not None:  # every run of an experiment exports too
        from harnessopt.integrations.otel_export import collect_spans

        _, rollouts, runs = collect_spans(result.experiment_dir)
        assert runs == 2 and rollouts == sum(len(RunStore.open(r.run_dir).all_rollouts()) for r in result.runs)


def test_cli_export_mlflow_uses_the_default_local_store(optimize_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["export", "--mlflow", optimize_run.run_dir]) == 0
    assert "mlflow: run" in capsys.readouterr().err and (tmp_path / "mlflow.db").is_file()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("harnessopt").experiment_id])
    assert run.data.metrics["test_score_champion"] == 1.0


def test_mlflow_bad_input_is_a_one_line_error(optimize_run, tmp_path, capsys, store_uri):
    from harnessopt import evaluate_async
    from harnessopt.harness import harness_from_source

    result = asyncio.run(evaluate_async(harness_from_source(GOOD, "h.py"), arith_benchmark(), out=tmp_path / "t",
                                        gateway=StubGateway(double_model), limit=1))
    for argv, expected in (
        (["export", result.run_dir, "--mlflow", store_uri], "MLflow tracking logs optimize runs and compare experiments"),
        (["export", str(tmp_path), "--mlflow", store_uri], "not a run directory"),
        (["export", optimize_run.run_dir, "--mlflow", "nonsense://where"], "--mlflow nonsense://where:"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err


def test_an_unfinished_run_is_logged_killed_and_replaced_once_finished(optimize_run, store_uri, tmp_path):
    import json
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(optimize_run.run_dir, copy)
    info = json.loads((copy / "run.json").read_text())
    info["finished"] = False  # as a killed run leaves it
    (copy / "run.json").write_text(json.dumps(info))
    first = log_run(copy, uri=store_uri, experiment="partial")
    client = MlflowClient(store_uri)
    assert client.get_run(first).info.status == "KILLED"
    assert client.get_run(first).data.tags["harnessopt.finished"] == "false"
    info["finished"] = True  # resumed to the end
    (copy / "run.json").write_text(json.dumps(info))
    second = log_run(copy, uri=store_uri, experiment="partial")
    assert second != first and client.get_run(second).info.status == "FINISHED"
    assert client.get_run(first).info.lifecycle_stage == "deleted"


def test_without_the_extra_mlflow_is_a_one_line_error_before_the_run(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "mlflow", None)  # as if the mlflow extra were not installed
    (tmp_path / "seed.py").write_text(GOOD)
    code = main(["optimize", "--harness", str(tmp_path / "seed.py"), "--benchmark", "home_intents",
                 "--out", str(tmp_path / "runs"), "--mlflow"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "harnessopt: error: --mlflow needs MLflow: pip install 'harnessopt[mlflow]'"
    assert not (tmp_path / "runs").exists()
