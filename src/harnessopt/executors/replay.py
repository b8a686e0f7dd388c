"""Calls already served for a rollout, served again (free) when the rollout is restarted.

When a Ray worker dies mid-rollout, the driver restarts the rollout on another worker. The model
calls the lost attempt made were paid for; the restart makes the same calls again (the harness,
task, trial and seed are the same), and gets the answers already paid for instead of paying
again. A call still in flight when its worker was lost is not cancelled: the restart waits for
its answer. Calls are matched by their kind and exact arguments, in the order they were made; a
call the lost attempt never made goes to the broker as usual.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict, deque
from typing import Any

from harnessopt.executors.ray_host import BrokerRequest
from harnessopt.records import ModelCall, ToolCall
from harnessopt.runner import Broker, RolloutJob

def _key(request: BrokerRequest) -> str:
    return json.dumps([request.op, request.name, request.args], sort_keys=True, default=str)


class CallReplay:
    def __init__(self) -> None:
        self._served: dict[str, list[asyncio.Future]] = defaultdict(list)
        self._unused: dict[str, deque[asyncio.Future]] = {}
        self.replayed = 0

    def new_attempt(self) -> None:
        """Everything served so far (or still being served) may be served once more, to the next attempt."""
        self._unused = {key: deque(calls) for key, calls in self._served.items()}

    async def serve(self, request: BrokerRequest, job: RolloutJob, broker: Broker) -> ModelCall | ToolCall:
        key = _key(request)
        unused = self._unused.get(key)
        if unused:
            self.replayed += 1
            call = unused.popleft()
        else:
            call = asyncio.ensure_future(self._ask(request, job, broker))
            self._served[key].append(call)
        # Shielded: the attempt may be lost (and its waiters cancelled) while the call is paid for.
        return await asyncio.shield(call)

    @staticmethod
    async def _ask(request: BrokerRequest, job: RolloutJob, broker: Broker) -> Any:
        if request.op == "model":
            return await broker.model_call(job, request.name, request.args)
        return await broker.tool_call(job, request.name, request.args)

    def cancel_pending(self) -> None:
        """The rollout is over: calls its harness left running are stopped, as in a local run."""
        for calls in self._served.values():
            for call in calls:
                if not call.done():
                    call.cancel()
                elif not call.cancelled():
                    call.exception()  # retrieved: no "exception was never retrieved" warning
