"""End to end on the embedded model: the regression gate, OpenTelemetry export and MLflow tracking."""

import json

import pytest

from harnessopt import evaluate
from harnessopt.cli import main

pytestmark = pytest.mark.e2e


def test_gate_fails_a_worse_harness_and_passes_the_reverse_reusing_every_rollout(repo, tmp_path, capsys):
    fewshot, naive = str(repo / "harnesses/home_intents_fewshot.py"), str(repo / "harnesses/home_intents_naive.py")
    common = ["--benchmark", "home_intents", "--limit", "8", "--out", str(tmp_path), "--json"]
    assert main(["gate", "--baseline", fewshot, "--candidate", naive, *common]) == 1
    worse = json.loads(capsys.readouterr().out)
    assert worse["verdict"] == "worse" and worse["baseline"]["score"] >= 0.5 > worse["candidate"]["score"]
    assert worse["baseline"]["ran"] == worse["candidate"]["ran"] == 8 and worse["ci_high"] < 0
    assert main(["gate", "--baseline", naive, "--candidate", fewshot, *common]) == 0
    better = json.loads(capsys.readouterr().out)
    assert better["verdict"] == "better" and better["passed"] is True
    assert better["baseline"]["ran"] == better["candidate"]["ran"] == 0  # both sides reused from the first gate
    assert better["mean_diff"] == pytest.approx(-worse["mean_diff"])


def test_otel_export_of_a_real_model_run(repo, tmp_path):
    pytest.importorskip("opentelemetry.sdk.trace")
    result = evaluate(repo / "harnesses/home_intents_fewshot.py", "home_intents", split="test", limit=2, out=tmp_path)
    out = tmp_path / "spans.json"
    assert main(["export", "--otel", result.run_dir, "--file", str(out)]) == 0
    spans = [s for rs in json.loads(out.read_text())["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]
    calls = [s for s in spans if s["name"] == "text_completion gemma-3-270m"]
    assert len(calls) >= 2 and all(s["kind"] == 1 for s in calls)  # INTERNAL: the model runs in-process
    attrs = {a["key"]: a["value"] for a in calls[0]["attributes"]}
    assert attrs["gen_ai.provider.name"] == {"stringValue": "llama_cpp"}
    assert int(attrs["gen_ai.usage.input_tokens"]["intValue"]) > 50
    (details,) = calls[0]["events"]
    inputs = {a["key"]: a["value"]["stringValue"] for a in details["attributes"]}["gen_ai.input.messages"]
    assert "Intent:" in json.loads(inputs)[0]["parts"][0]["content"]
    assert sum(s["name"] == "invoke_agent home_intents_fewshot" for s in spans) == 2


def test_optimize_with_mlflow_on_the_real_model(repo, tmp_path, capsys):
    mlflow = pytest.importorskip("mlflow")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["optimize", "--harness", str(repo / "harnesses/home_intents_naive.py"), "--benchmark", "home_intents",
                 "--meta-model", "random", "--iterations", "1", "--max-rollouts", "16", "--search-limit", "4",
                 "--test-limit", "4", "--out", str(tmp_path / "runs"), "--seed", "1", "--mlflow", uri])
    assert code == 0, capsys.readouterr().err
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("harnessopt").experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["meta_model"] == "random"
    assert "test_score_champion" in run.data.metrics and run.data.metrics["rollouts"] <= 16
    assert client.get_metric_history(run.info.run_id, "search_score")[0].step == 4  # the seed's baseline
    assert "champion" in {a.path for a in client.list_artifacts(run.info.run_id)}
