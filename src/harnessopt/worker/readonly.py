"""Objects harness code cannot change: `ctx` and what hangs off it (examples, workspace)."""

from __future__ import annotations

from typing import Any


class _ReadOnlyType(type):
    """Classes whose attributes harness code cannot replace (ctx's methods, say)."""

    def __setattr__(cls, name: str, value: Any) -> None:
        raise AttributeError(f"{cls.__name__} is read-only: harness code cannot replace {cls.__name__}.{name}; "
                             "wrap ctx in a helper function of your own instead")

    def __delattr__(cls, name: str) -> None:
        cls.__setattr__(name, None)


class _ReadOnly(metaclass=_ReadOnlyType):
    """Instances are read-only after __init__: `ctx.complete = fake` is an AttributeError that says
    so, rather than a patch that silently changes what later code sees. (Even a patch that gets
    through changes only what the harness asks for: the parent records every call it serves.)"""

    __slots__ = ()

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ctx is read-only: harness code cannot set {type(self).__name__}.{name}; "
                             "wrap ctx in a helper function of your own instead")

    def __delattr__(self, name: str) -> None:
        self.__setattr__(name, None)
