"""Prompt formats and decoding constraints for the embedded models (no llama.cpp needed here)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel

from harnessopt.llm.registry import LocalModelError


def content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI-style content parts
        return "".join(
            part.get("text", "") if isinstance(part, dict) else str(part) for part in content
        )
    return str(content)


def plain_messages(messages: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages with text content only, as chat templates expect."""
    return [{"role": str(m.get("role", "user")), "content": content_text(m.get("content"))} for m in messages]


def format_gemma_chat(messages: list[dict[str, Any]]) -> str:
    """Gemma turn format. Gemma has no system role: system text opens the first user turn."""
    system = "\n\n".join(
        content_text(m.get("content")) for m in messages if m.get("role") == "system"
    )
    parts: list[str] = []
    pending_system = system
    for m in messages:
        role = m.get("role")
        if role == "system":
            continue
        text = content_text(m.get("content"))
        turn_role = "model" if role == "assistant" else "user"
        if turn_role == "user" and pending_system:
            text = f"{pending_system}\n\n{text}"
            pending_system = ""
        parts.append(f"<start_of_turn>{turn_role}\n{text}<end_of_turn>\n")
    if pending_system:  # only system messages were given
        parts.append(f"<start_of_turn>user\n{pending_system}<end_of_turn>\n")
    parts.append("<start_of_turn>model\n")
    return "".join(parts)


GEMMA_STOPS = ["<end_of_turn>", "<start_of_turn>"]


class Constraint(BaseModel):
    """What a response_format asks decoding to follow: any JSON, a JSON schema, or a GBNF grammar."""

    kind: Literal["json", "schema", "gbnf"]
    text: str = ""  # the schema as JSON or the GBNF source

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.text}"


def constraint_of(response_format: dict[str, Any] | None) -> Constraint | None:
    """The decoding constraint a response_format asks for; None for free text.

    Accepts ``{"type": "json_object"}`` (any JSON), ``{"type": "json_object", "schema": {...}}``,
    the OpenAI form ``{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}``,
    and, for embedded models only, ``{"type": "grammar", "grammar": "<GBNF source>"}``.
    """
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    if kind == "grammar":
        gbnf = response_format.get("grammar")
        if not isinstance(gbnf, str) or not gbnf.strip():
            raise LocalModelError("response_format {'type': 'grammar'} needs a non-empty 'grammar' string (GBNF)")
        return Constraint(kind="gbnf", text=gbnf)
    if kind == "json_object":
        schema = response_format.get("schema")
    elif kind == "json_schema":
        inner = response_format.get("json_schema") or {}
        schema = inner.get("schema") or response_format.get("schema")
    else:
        raise LocalModelError(f"unsupported response_format type {kind!r} "
                              "(use json_object, json_schema or grammar)")
    if not schema:
        return Constraint(kind="json")
    return Constraint(kind="schema", text=json.dumps(schema))  # key order kept: it orders the output
