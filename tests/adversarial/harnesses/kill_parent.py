"""Hostile harness: kills the optimizer that started it."""

import os
import signal


async def run(task, ctx):
    os.kill(os.getppid(), signal.SIGKILL)
    return "parent killed"
