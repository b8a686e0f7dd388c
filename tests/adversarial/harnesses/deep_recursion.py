"""Hostile harness: raises the recursion limit and recurses without end."""

import sys


async def run(task, ctx):
    sys.setrecursionlimit(10**8)

    def down(n):
        return down(n + 1) + 1

    return str(down(0))
