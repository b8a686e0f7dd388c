"""Model access: the gateway over litellm (retries, accounting), the embedded offline models,
metered calls against a budget, and preflight checks of model strings."""

from harnessopt.llm.errors import LLMError, PermanentLLMError, TransientLLMError
from harnessopt.llm.gateway import Gateway
from harnessopt.llm.metered import (
    CallRequest,
    DirectoryCache,
    Meter,
    ResponseCache,
    estimate_call,
    metered_call,
)
from harnessopt.llm.preflight import preflight, preflight_gateway
from harnessopt.llm.registry import (
    DEFAULT_META_MODEL,
    DEFAULT_TASK_MODEL,
    LOCAL_MODEL,
    LOCAL_MODELS,
    ModelInfo,
    describe_model,
    is_local_model,
)

__all__ = [
    "DEFAULT_META_MODEL",
    "DEFAULT_TASK_MODEL",
    "LOCAL_MODEL",
    "LOCAL_MODELS",
    "CallRequest",
    "DirectoryCache",
    "Gateway",
    "LLMError",
    "Meter",
    "ModelInfo",
    "PermanentLLMError",
    "ResponseCache",
    "TransientLLMError",
    "describe_model",
    "estimate_call",
    "is_local_model",
    "metered_call",
    "preflight",
    "preflight_gateway",
]
