"""Hostile harness: kills its own process group."""

import os
import signal


async def run(task, ctx):
    os.killpg(os.getpgrp(), signal.SIGKILL)
