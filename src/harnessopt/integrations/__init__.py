"""Bridges to tools people already use, each behind an optional extra:

    mlflow_tracking.py   optimize runs and compare experiments as MLflow runs   (pip install 'harnessopt[mlflow]')
    otel_spans.py        rollout traces as OpenTelemetry GenAI span trees       (pip install 'harnessopt[otel]')
    otel_export.py       those spans to an OTLP JSON file or an OTLP/HTTP endpoint
    redaction.py         what leaves the machine is scrubbed of key-shaped tokens first

They only read finished run directories: nothing here changes how a run runs.
"""
