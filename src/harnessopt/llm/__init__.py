"""Model access: the gateway over litellm (retries, accounting) and the embedded offline model."""

from harnessopt.llm.gateway import Gateway, LLMError, PermanentLLMError, TransientLLMError
from harnessopt.llm.local import LOCAL_MODEL, is_local_model

__all__ = [
    "LOCAL_MODEL",
    "Gateway",
    "LLMError",
    "PermanentLLMError",
    "TransientLLMError",
    "is_local_model",
]
