"""Test doubles (unit tests only): a model stub that answers instantly and records what it saw."""

from __future__ import annotations

import asyncio
from typing import Callable

from harnessopt.records import LLMResponse, ModelParams, Usage


class StubGateway:
    """Answers every call with `reply(prompt_or_last_message)`; counts calls like the real gateway."""

    def __init__(self, reply: Callable[[str], str] = lambda text: "stub", delay_s: float = 0.0):
        self.reply = reply
        self.delay_s = delay_s
        self.usage = Usage()
        self.prompts: list[str] = []

    async def _answer(self, model: str, text: str) -> LLMResponse:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.prompts.append(text)
        out = self.reply(text)
        self.usage.calls += 1
        self.usage.prompt_tokens += len(text.split())
        self.usage.completion_tokens += len(out.split())
        return LLMResponse(model=model, text=out, prompt_tokens=len(text.split()),
                           completion_tokens=len(out.split()), latency_s=self.delay_s)

    async def chat(self, model, messages, params: ModelParams | None = None, **_):
        return await self._answer(model, str(messages[-1].get("content", "")))

    async def complete(self, model, prompt, params: ModelParams | None = None, **_):
        return await self._answer(model, prompt)
