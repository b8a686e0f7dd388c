"""The errors that mean "the user's input is wrong": the CLI prints them as one line, exit 2."""

from __future__ import annotations


class UsageError(ValueError):
    """A bad argument to a public function; the message names it and the fix."""


def _user_errors() -> tuple[type[BaseException], ...]:
    from harnessopt.benchmark import BenchmarkError
    from harnessopt.harness import HarnessError
    from harnessopt.llm import PermanentLLMError
    from harnessopt.store import StoreError

    return (UsageError, HarnessError, BenchmarkError, StoreError, PermanentLLMError)


def __getattr__(name: str):
    if name == "USER_ERRORS":
        return _user_errors()
    raise AttributeError(name)
