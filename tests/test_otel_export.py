"""OpenTelemetry export of rollouts: span trees in the GenAI conventions, OTLP/JSON files, an OTLP/HTTP
endpoint on loopback, and no secret in anything exported (stub model; real sandboxed workers)."""

import asyncio
import json
import threading
from pathlib import Path
from typing import ClassVar
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

pytest.importorskip("opentelemetry.sdk.trace", reason="needs the otel extra")

from harnessopt.benchmark import Benchmark  # noqa: E402
from harnessopt.cli import main  # noqa: E402
from harnessopt.evaluation import evaluate_async  # noqa: E402
from harnessopt.harness import harness_from_source  # noqa: E402
from harnessopt.integrations.otel_export import collect_spans, otlp_json  # noqa: E402
from stubs import StubGateway  # noqa: E402

KEY = "sk-proj-abcdefghijklmnop1234"  # key-shaped: must never leave the machine
ENV_SECRET = "env-secret-value-98765"
HARNESS = f'''
async def run(task, ctx):
    shots = ctx.examples.similar(task.input, k=1)
    total = await ctx.tool("calculator", expression="6*7")
    ctx.log("checking {KEY} for " + task.id)
    if task.id == "t2":
        raise ValueError("deliberate failure, key {KEY}")
    messages = [{{"role": "system", "content": "Answer with a label."}},
                {{"role": "user", "content": task.input + " {ENV_SECRET}"}}]
    text = await ctx.chat(messages, max_tokens=5, temperature=0.0)
    return text.strip() + " " + str(total)
'''


def benchmark() -> Benchmark:
    def items(split, n):
        return [{"id": f"{split}{i}", "input": f"lights please {i}", "target": "lights_on 42"} for i in range(n)]
    return Benchmark.from_records("lights", train=items("r", 2), search=items("s", 1), test=items("t", 3),
                                  scorer="exact")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One run for the module (worker start-up is the slow part); the key-like variable stays set
    while the module's tests export, as it would be on a user's machine."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOME_SERVICE_API_KEY", ENV_SECRET)
        result = asyncio.run(evaluate_async(
            harness_from_source(HARNESS, "lights_harness.py"), benchmark(), split="test",
            out=tmp_path_factory.mktemp("otel") / "traces", gateway=StubGateway(lambda text: " lights_on"),
            task_model="openai/gpt-4o-mini"))
        assert result.n_rollouts == 3 and result.n_errors == 1
        yield result.run_dir


def by_name(spans):
    out = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def test_each_rollout_is_a_span_tree_with_genai_attributes(run_dir):
    spans, rollouts, runs = collect_spans(run_dir)
    assert (rollouts, runs) == (3, 1)
    named = by_name(spans)
    roots = named["invoke_agent lights_harness"]
    assert len(roots) == 3 and all(r.parent is None for r in roots)
    assert len({r.context.trace_id for r in roots}) == 3  # one trace per rollout
    ok = next(r for r in roots if r.attributes["harnessopt.task.id"] == "t0")
    a = ok.attributes
    assert a["gen_ai.operation.name"] == "invoke_agent" and a["gen_ai.agent.name"] == "lights_harness"
    assert (a["gen_ai.provider.name"], a["gen_ai.request.model"]) == ("openai", "gpt-4o-mini")
    assert a["harnessopt.status"] == "ok" and a["harnessopt.score"] == 1.0 and a["harnessopt.answer"] == "lights_on 42"
    children = [s for s in spans if s.parent is not None and s.parent.span_id == ok.context.span_id]
    assert sorted(s.name for s in children) == ["chat gpt-4o-mini", "execute_tool calculator",
                                                "execute_tool examples.similar"]
    chat = next(s for s in children if s.name.startswith("chat"))
    c = chat.attributes
    assert c["gen_ai.operation.name"] == "chat" and c["gen_ai.request.max_tokens"] == 5
    assert c["gen_ai.request.temperature"] == 0.0 and c["gen_ai.provider.name"] == "openai"
    assert c["gen_ai.usage.input_tokens"] > 0 and c["gen_ai.usage.output_tokens"] == 1
    assert a["gen_ai.usage.input_tokens"] == c["gen_ai.usage.input_tokens"]
    assert ok.start_time <= chat.start_time <= chat.end_time <= ok.end_time
    (details,) = [e for e in chat.events if e.name == "gen_ai.client.inference.operation.details"]
    inputs = json.loads(details.attributes["gen_ai.input.messages"])
    assert [m["role"] for m in inputs] == ["system", "user"]
    assert inputs[1]["parts"][0] == {"type": "text", "content": "lights please 0 ***"}
    outputs = json.loads(details.attributes["gen_ai.output.messages"])
    assert outputs[0]["role"] == "assistant" and outputs[0]["parts"][0]["content"] == " lights_on"
    calc = next(s for s in children if s.name == "execute_tool calculator")
    assert calc.attributes["gen_ai.tool.name"] == "calculator" and calc.attributes["gen_ai.tool.call.result"] == "42"
    assert json.loads(calc.attributes["gen_ai.tool.call.arguments"]) == {"expression": "6*7"}
    assert calc.attributes["harnessopt.start_estimated"] is False  # the worker records each tool call's start
    assert ok.start_time <= calc.start_time <= calc.end_time <= ok.end_time
    assert [e.name for e in ok.events] == ["harnessopt.log"]


def test_a_failed_rollout_has_an_error_status_and_an_exception_event(run_dir):
    spans, _, _ = collect_spans(run_dir)
    failed = next(s for s in spans if s.attributes.get("harnessopt.task.id") == "t2")
    assert failed.status.status_code.name == "ERROR" and failed.attributes["error.type"] == "ValueError"
    (exc,) = [e for e in failed.events if e.name == "exception"]
    assert exc.attributes["exception.type"] == "ValueError"
    assert "deliberate failure" in exc.attributes["exception.message"]
    assert "Traceback" in exc.attributes["exception.stacktrace"]


def test_the_file_is_otlp_json_with_hex_ids_and_stable_across_exports(run_dir, tmp_path, capsys):
    out = tmp_path / "spans.json"
    assert main(["export", "--otel", run_dir, "--file", str(out)]) == 0
    assert "spans from 3 rollouts of 1 run(s)" in capsys.readouterr().out
    data = json.loads(out.read_text())
    (resource,) = data["resourceSpans"]
    attrs = {a["key"]: a["value"] for a in resource["resource"]["attributes"]}
    assert attrs["service.name"] == {"stringValue": "harnessopt"}
    spans = resource["scopeSpans"][0]["spans"]
    ids = {s["spanId"] for s in spans}
    assert all(len(s["traceId"]) == 32 and len(s["spanId"]) == 16 for s in spans)
    assert all(s["parentSpanId"] in ids for s in spans if "parentSpanId" in s)
    assert {s["kind"] for s in spans} <= {1, 3}  # INTERNAL, CLIENT as integers
    again = tmp_path / "again.json"
    assert main(["export", "--otel", run_dir, "--file", str(again)]) == 0
    assert sorted(s["traceId"] for s in spans) == sorted(
        s["traceId"] for s in json.loads(again.read_text())["resourceSpans"][0]["scopeSpans"][0]["spans"])
    assert main(["export", "--otel", run_dir]) == 0  # default: beside the run's files
    assert json.loads((Path(run_dir) / "otel-traces.json").read_text())["resourceSpans"]


def test_no_secret_is_exported(run_dir):
    text = json.dumps(otlp_json(collect_spans(run_dir)[0]))
    assert KEY not in text and ENV_SECRET not in text
    assert "checking *** for t0" in text and "deliberate failure, key ***" in text


class _Collector(BaseHTTPRequestHandler):
    received: ClassVar[list] = []
    status = 200

    def do_POST(self):  # the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(type(self).status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    _Collector.received, _Collector.status = [], 200
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, _Collector
    server.shutdown()
    server.server_close()


def test_spans_reach_an_otlp_http_endpoint(run_dir, collector, capsys):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server, handler = collector
    url = f"http://127.0.0.1:{server.server_address[1]}"
    assert main(["export", "--otel", run_dir, "--endpoint", url]) == 0
    assert f"-> {url}/v1/traces" in capsys.readouterr().out
    (path, content_type, body), = handler.received
    assert path == "/v1/traces" and content_type == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(body)
    names = [s.name for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert names.count("invoke_agent lights_harness") == 3 and "chat gpt-4o-mini" in names
    assert KEY.encode() not in body and ENV_SECRET.encode() not in body
    handler.status = 400  # a collector that refuses: exit 1, one line
    assert main(["export", "--otel", run_dir, "--endpoint", url + "/v1/traces"]) == 1
    err = capsys.readouterr().err.strip()
    assert "did not accept the spans" in err and len(err.splitlines()) == 1


def test_bad_export_input_is_a_one_line_error(run_dir, tmp_path, capsys):
    for argv, expected in (
        (["export", "--otel", str(tmp_path)], "neither a run directory"),
        (["export", "--otel", run_dir, "--endpoint", "ftp://x"], "expected an OTLP/HTTP URL"),
        (["export", "--otel", run_dir, "--file", "a.json", "--endpoint", "http://x"], "not both"),
        (["export", "--otel", run_dir, "--file", str(tmp_path / "no" / "f.json")], "does not exist"),
        (["export", run_dir], "one of --otel or --mlflow"),
        (["export", run_dir, "--file", "x.json", "--mlflow"], "--file and --endpoint go with --otel"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert expected in err and len(err.splitlines()) == 1, err


def test_without_the_extra_otel_is_a_one_line_error(run_dir, capsys, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "opentelemetry.sdk.trace", None)  # the otel extra missing
    assert main(["export", "--otel", run_dir]) == 2
    assert capsys.readouterr().err.strip() == ("harnessopt: error: export --otel needs the OpenTelemetry SDK: "
                                              "pip install 'harnessopt[otel]'")
