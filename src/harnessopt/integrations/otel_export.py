"""`harnessopt export --otel DIR`: the rollouts of a run (or of every run of an experiment) as OTLP traces.

    --file out.json   one OTLP/JSON object {"resourceSpans": [...]} on one line: the OpenTelemetry
                      file-exporter format. Jaeger's UI loads it ("JSON File" upload); an
                      OpenTelemetry Collector reads it (otlpjsonfile receiver) or takes it as an
                      OTLP/HTTP POST body with Content-Type application/json.
    --endpoint URL    sent now with the OTLP/HTTP (protobuf) exporter; a bare http://host:4318 gets
                      /v1/traces appended. Headers (an API key, say) come from the standard
                      OTEL_EXPORTER_OTLP_HEADERS variable and are never written anywhere.

Without either, the file is DIR/otel-traces.json. Each run is one OpenTelemetry resource
(service.name "harnessopt", service.instance.id = the run id); each rollout is one trace
(otel_spans.py). Nothing in the run directory is changed except that file.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from harnessopt.errors import UsageError
from harnessopt.files import atomic_write
from harnessopt.records import Record

DEFAULT_FILE = "otel-traces.json"
BATCH = 512  # spans per OTLP/HTTP request


class ExportFailed(RuntimeError):
    """The destination refused or could not be reached (not the user's input: exit 1)."""


class OtelExport(Record):
    runs: int
    rollouts: int
    spans: int
    destination: str  # the file written, or the endpoint the spans were sent to


def _sdk() -> Any:
    try:
        import opentelemetry.sdk.trace as sdk_trace
    except ImportError:
        raise UsageError("export --otel needs the OpenTelemetry SDK: pip install 'harnessopt[otel]'") from None
    return sdk_trace


def run_dirs(path: str | Path) -> list[Path]:
    """`path` itself (a run directory) or every run directory of an experiment directory."""
    from harnessopt.report.data import is_experiment_dir, is_run_dir

    path = Path(path)
    if is_run_dir(path):
        return [path]
    if is_experiment_dir(path):
        return sorted(p for p in (path / "runs").glob("*") if is_run_dir(p))
    raise UsageError(f"{path}: neither a run directory (run.json) nor an experiment directory (experiment.json); "
                     "pass a directory that eval, optimize, gate or compare wrote")


def collect_spans(path: str | Path) -> tuple[list[Any], int, int]:
    """Every rollout under `path` as finished SDK spans; returns (spans, rollouts, runs)."""
    sdk_trace = _sdk()
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON

    from harnessopt import __version__
    from harnessopt.integrations.otel_spans import DerivedIds, emit_rollout
    from harnessopt.store import RunStore

    spans: list[Any] = []
    rollouts = 0
    dirs = run_dirs(path)
    for run_dir in dirs:
        store = RunStore.open(run_dir)
        info = store.info()
        config = info.get("config") or {}
        resource = Resource.create({
            "service.name": "harnessopt", "service.version": __version__, "service.instance.id": store.run_id,
            "harnessopt.run_id": store.run_id, "harnessopt.run_kind": str(info.get("kind", "")),
            "harnessopt.benchmark": str(config.get("benchmark", info.get("benchmark", ""))),
        })
        ids = DerivedIds()
        memory = InMemorySpanExporter()
        # Explicit sampler and limits: OTEL_* variables of the environment must not drop spans or events.
        limits = sdk_trace.SpanLimits(max_events=100_000, max_span_attributes=256, max_event_attributes=256)
        provider = sdk_trace.TracerProvider(resource=resource, id_generator=ids, sampler=ALWAYS_ON,
                                            span_limits=limits, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(memory))
        tracer = provider.get_tracer("harnessopt", __version__)
        for rollout in store.all_rollouts():
            emit_rollout(tracer, ids, rollout, run_id=store.run_id)
            rollouts += 1
        spans += memory.get_finished_spans()
        provider.shutdown()
    return spans, rollouts, len(dirs)


def otlp_json(spans: list[Any]) -> dict[str, Any]:
    """Spans as an OTLP/JSON ExportTraceServiceRequest (ids as hex strings, enums as integers)."""
    import base64

    from google.protobuf.json_format import MessageToDict
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    data = MessageToDict(encode_spans(spans), use_integers_for_enums=True)
    for resource in data.get("resourceSpans", []):
        for scope in resource.get("scopeSpans", []):
            for span in scope.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if span.get(key):  # protobuf's JSON mapping writes bytes as base64; OTLP/JSON wants hex
                        span[key] = base64.b64decode(span[key]).hex()
    return data


def write_otlp_file(spans: list[Any], path: str | Path) -> Path:
    path = Path(path)
    if path.is_dir():
        raise UsageError(f"--file {path} is a folder; pass a file name such as {path / DEFAULT_FILE}")
    if not path.parent.is_dir():
        raise UsageError(f"--file {path}: the folder {path.parent} does not exist; create it or pick another path")
    atomic_write(path, json.dumps(otlp_json(spans), ensure_ascii=False, separators=(",", ":")) + "\n")
    return path


def traces_url(endpoint: str) -> str:
    """An OTLP/HTTP traces URL: http(s)://host:port[/path]; a bare host gets /v1/traces."""
    parsed = urlparse(endpoint)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise UsageError(f"--endpoint {endpoint!r}: expected an OTLP/HTTP URL such as http://localhost:4318/v1/traces")
    return endpoint if parsed.path not in ("", "/") else endpoint.rstrip("/") + "/v1/traces"


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter logs each failed attempt; the CLI says it once, in one line."""
    log = logging.getLogger("opentelemetry.exporter")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


def send_otlp(spans: list[Any], endpoint: str, *, timeout_s: float = 10.0) -> str:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SpanExportResult
    except ImportError:
        raise UsageError("export --otel --endpoint needs the OTLP exporter: pip install 'harnessopt[otel]'") from None
    url = traces_url(endpoint)
    exporter = OTLPSpanExporter(endpoint=url, timeout=timeout_s)
    try:
        with _quiet_exporter():
            for start in range(0, len(spans), BATCH):
                if exporter.export(spans[start:start + BATCH]) is not SpanExportResult.SUCCESS:
                    raise ExportFailed(f"{url}: the OTLP endpoint did not accept the spans (sent {start} of "
                                       f"{len(spans)}); check the URL, that a collector listens there, and "
                                       "OTEL_EXPORTER_OTLP_HEADERS if it needs a key")
    finally:
        exporter.shutdown()
    return url


def export_otel(path: str | Path, *, file: str | Path | None = None, endpoint: str | None = None,
                timeout_s: float = 10.0) -> OtelExport:
    """Export the rollouts under `path` to `file` (default DIR/otel-traces.json) or to `endpoint`."""
    if file is not None and endpoint is not None:
        raise UsageError("export --otel: pass --file FILE or --endpoint URL, not both")
    if endpoint is not None:
        traces_url(endpoint)  # a bad URL is bad input, before any work
    spans, rollouts, runs = collect_spans(path)
    if endpoint is not None:
        destination = send_otlp(spans, endpoint, timeout_s=timeout_s)
    else:
        destination = str(write_otlp_file(spans, file if file is not None else Path(path) / DEFAULT_FILE))
    return OtelExport(runs=runs, rollouts=rollouts, spans=len(spans), destination=destination)


__all__ = ["DEFAULT_FILE", "ExportFailed", "OtelExport", "collect_spans", "export_otel", "otlp_json", "run_dirs",
           "send_otlp", "traces_url", "write_otlp_file"]
