"""The errors that mean "the user's input is wrong": the CLI prints them as one line, exit 2.

`UserError` sits at the bottom of the package (it imports nothing), so any module can raise a
subclass of it and the CLI catches them all with one name, without knowing the modules.
"""

from __future__ import annotations


class UserError(Exception):
    """Input the user can fix: a bad argument, file, spec or model name. The message is one line
    that names what is wrong and how to fix it. (Not a ValueError itself: subclasses that were
    ValueErrors stay ValueErrors, and code that catches ValueError catches no new errors.)"""


class UsageError(UserError, ValueError):
    """A bad argument to a public function; the message names it and the fix."""


# What the CLI catches as bad input (kept as a name: callers catch `USER_ERRORS`).
USER_ERRORS: tuple[type[BaseException], ...] = (UserError,)
