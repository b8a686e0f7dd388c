"""Hostile harness: exits the interpreter with sys.exit."""

import sys


async def run(task, ctx):
    sys.exit(3)
