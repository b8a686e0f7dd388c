"""Calls already served for a rollout, served again (free) when the rollout is restarted.

When a Ray worker dies mid-rollout, the driver restarts the rollout on another worker. The model
calls the lost attempt made were paid for; the restart makes the same calls again (the harness,
task, trial and seed are the same), and gets the answers already paid for instead of paying
again. Calls are matched by their kind and exact arguments, in the order they were made; a call
the lost attempt never made goes to the broker as usual.
"""

from __future__ import annotations

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
        self._served: dict[str, list[ModelCall | ToolCall]] = defaultdict(list)
        self._unused: dict[str, deque[ModelCall | ToolCall]] = {}
        self.replayed = 0

    def new_attempt(self) -> None:
        """Everything served so far may be served once more, to the next attempt."""
        self._unused = {key: deque(results) for key, results in self._served.items()}

    async def serve(self, request: BrokerRequest, job: RolloutJob, broker: Broker) -> ModelCall | ToolCall:
        key = _key(request)
        unused = self._unused.get(key)
        if unused:
            self.replayed += 1
            return unused.popleft()
        result: Any
        if request.op == "model":
            result = await broker.model_call(job, request.name, request.args)
        else:
            result = await broker.tool_call(job, request.name, request.args)
        self._served[key].append(result)
        return result
