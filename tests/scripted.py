"""Test doubles for the meta side (unit tests only): a scripted proposer and a scripted meta model."""

from __future__ import annotations

import json

from harnessopt.meta import actions as A
from harnessopt.records import LLMResponse, Usage


class ScriptedProposer:
    """Plays a fixed list of actions per iteration and keeps every observation."""

    name = "scripted"

    def __init__(self, script: list[list[dict]], crash_at: int | None = None):
        self.script = script
        self.observations: list[str] = []
        self.crash_at = crash_at
        self.steps = 0

    async def run_iteration(self, wb) -> None:
        plan = self.script[wb.state.iteration - 1] if wb.state.iteration - 1 < len(self.script) else []
        for item in plan:
            if self.crash_at is not None and self.steps == self.crash_at:
                raise Crash(f"simulated kill at step {self.steps}")
            self.steps += 1
            self.observations.append(await wb.execute(A.parse_action(item)))


class Crash(BaseException):
    """Stands in for SIGKILL: nothing in harnessopt catches a BaseException subclass."""


class ScriptedMetaGateway:
    """A meta 'model' that answers with scripted JSON actions and records every prompt it is sent."""

    def __init__(self, replies: list[dict]):
        self.replies = list(replies)
        self.prompts: list[str] = []
        self.kwargs: list[dict] = []  # response_format / tools of each request
        self.usage = Usage()

    def supports_tools(self, model: str) -> bool:
        return False

    async def chat(self, model, messages, params=None, **kwargs):
        self.prompts.append("\n".join(m["content"] for m in messages))
        self.kwargs.append(kwargs)
        reply = self.replies.pop(0) if self.replies else {"action": "finish"}
        text = reply if isinstance(reply, str) else json.dumps(reply)  # str: a raw reply (header + code)
        return LLMResponse(model=model, text=text, prompt_tokens=100, completion_tokens=20)
