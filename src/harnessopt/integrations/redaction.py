"""Scrub secrets from text that leaves the run directory (exported spans, tracked artifacts).

The gateway already keeps API keys out of what a run records; prompts, responses, tool results
and harness code are checked again here all the same: a harness may paste a key into a prompt,
a model may echo one. Values of key-like environment variables and key-shaped tokens (sk-...,
Bearer ..., api_key=...) become "***", with the same rules the gateway's error messages use.
"""

from __future__ import annotations

from typing import Any

from harnessopt.llm.errors import _redact  # one set of key patterns for the whole project

REDACTED = "***"


def scrub(text: str) -> str:
    """`text` without key-like environment variable values or key-shaped tokens."""
    return _redact(text, []) if text else text


def scrub_value(value: Any) -> Any:
    """Strings scrubbed inside any JSON-like value (dicts, lists); other values as they are."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {scrub(str(k)): scrub_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v) for v in value]
    return value
