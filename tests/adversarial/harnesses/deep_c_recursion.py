"""Hostile harness: recursion through C code (which overflows the C stack at a high limit)."""

import sys


class Bottomless:
    def __getattr__(self, name):
        return getattr(self, name + "x")


async def run(task, ctx):
    sys.setrecursionlimit(10**8)
    return str(Bottomless().answer)
